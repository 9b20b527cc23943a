"""The warning that most of a corpus is not English (the bundled embedder knows English only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.config import IngestSettings
from rag.ingest import read_corpus
from rag.language import ENGLISH_MIN_RATE, corpus_language_warning, english_rate
from tests.conftest import SEEDS

FOREIGN = {
    "de.txt": (
        "Die Bundesregierung hat am Dienstag neue Regeln für den Flugverkehr zwischen Berlin und Moskau beschlossen. "
        "Nach Angaben des Verkehrsministeriums sollen die Verbindungen im Frühjahr wieder aufgenommen werden, wenn "
        "beide Seiten zustimmen. Die Opposition kritisierte den Plan als verfrüht und forderte eine Debatte im "
        "Bundestag. Was die Fluggesellschaften davon halten, ist noch offen; in den nächsten Wochen werden Gespräche "
        "erwartet.\n"
    ),
    "fr.txt": (
        "Le ministre des Affaires étrangères a rencontré mardi son homologue russe à Istanbul pour discuter du "
        "fonctionnement des ambassades. Selon un communiqué publié à l'issue de la réunion, les deux parties ont "
        "convenu de poursuivre les consultations. On ne sait pas encore si les vols directs entre les deux pays "
        "reprendront cette année, a précisé le porte-parole du ministère.\n"
    ),
    "ru.txt": (
        "Министр иностранных дел России провёл во вторник переговоры со своим американским коллегой в Стамбуле. "
        "Стороны обсудили работу посольств и возможность возобновления прямого авиасообщения между двумя странами. "
        "По словам официального представителя министерства, консультации будут продолжены в ближайшие недели, "
        "однако конкретных договорённостей пока не достигнуто.\n"
    ),
}


def _write(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text(FOREIGN[name], encoding="utf-8")
    return folder


def test_the_seeds_are_english_and_get_no_warning() -> None:
    docs = read_corpus([str(SEEDS)], IngestSettings()).documents
    for doc in docs:
        rate = english_rate(doc.text)
        assert rate is not None and rate >= ENGLISH_MIN_RATE, doc.doc_id
    assert corpus_language_warning(docs, "all-minilm-l6-v2") is None


@pytest.mark.parametrize("name", sorted(FOREIGN))
def test_german_french_and_russian_are_not_english(name: str) -> None:
    rate = english_rate(FOREIGN[name])
    assert rate is not None and rate < ENGLISH_MIN_RATE


def test_a_mostly_foreign_corpus_is_warned_about_and_a_mostly_english_one_is_not(tmp_path: Path) -> None:
    foreign = read_corpus([str(_write(tmp_path / "foreign", sorted(FOREIGN)))], IngestSettings()).documents
    warning = corpus_language_warning(foreign, "all-minilm-l6-v2")
    assert warning is not None and warning.startswith("3 of 3 documents are not in English")
    assert "RAG_EMBED_MODEL" in warning and "\n" not in warning
    assert corpus_language_warning(foreign, "/models/multilingual") is None  # another embedder: its own business
    seeds = read_corpus([str(SEEDS)], IngestSettings()).documents
    assert corpus_language_warning([*seeds, foreign[0]], "all-minilm-l6-v2") is None  # one foreign page of six


def test_rag_index_prints_the_warning_once_on_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    corpus = _write(tmp_path / "foreign", sorted(FOREIGN))
    result = CliRunner().invoke(app, ["index", str(corpus)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "not in English" in line]
    assert len(lines) == 1 and lines[0].startswith("warning ")
    assert "Indexed into" in result.stdout  # a warning, not a refusal
