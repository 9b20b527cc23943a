"""The evaluation harness: dataset formats and errors, resume, failures, the gate, and one real run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.evaluation import DatasetError, check_gate, evaluate, load_baseline, load_dataset, read_results
from tests.conftest import REPO, SEEDS, make_settings
from tests.fake_openai import FakeOpenAI

SQUAD = REPO / "tests" / "data" / "squad_small.json"
TRUE_SENTENCE = "Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet [1]."


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ITEM = {
    "id": "x1",
    "kind": "who",
    "question": "Who is the chief of Russia's Northern Fleet?",
    "answerable": True,
    "answer": "Adm. Alexander Moiseyev",
    "keywords": ["Moiseyev"],
    "gold": [
        {"doc_id": "004_ef5f7f6cb4511981.txt", "quote": "Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet"}
    ],
}


def test_squad_contexts_become_a_corpus_with_offsets_preserved(tmp_path: Path) -> None:
    dataset = load_dataset(SQUAD, None, tmp_path)
    assert [i.id for i in dataset.items] == ["nsr1", "nsr2", "nsr3", "sochi1"]
    assert sorted(p.name for p in dataset.corpus.iterdir()) == ["000_Northern_Sea_Route.txt", "001_Sochi_talks.txt"]
    for item in dataset.items:
        for gold in item.gold:
            text = (dataset.corpus / gold.doc_id).read_text(encoding="utf-8")
            assert text[gold.start : gold.end] == gold.quote
    first, impossible, second_paragraph, _ = dataset.items
    assert first.answers == ["Norway", "from Norway to Alaska"] and len(first.gold) == 2
    assert impossible.answerable is False and impossible.kind == "unanswerable" and impossible.gold == []
    # The second paragraph starts after the first one and a blank line.
    first_context_length = len(
        "The Northern Sea Route runs from Norway to Alaska along the Russian Arctic coast. "
        "Russia insists on a special regime for its use."
    )
    assert second_paragraph.gold[0].start == first_context_length + 2 + 101


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ('{"id": "a"\n', r"data.jsonl:1: not JSON"),
        ('{"id": "a", "kind": "who", "answerable": true}\n', r"data.jsonl:1 \(id a\): field 'question' is missing"),
        (json.dumps({**ITEM, "kind": "riddle"}) + "\n", "valid kinds"),
        (json.dumps({**ITEM, "answerable": "yes"}) + "\n", "field 'answerable' must be bool"),
        (json.dumps(ITEM) + "\n" + json.dumps(ITEM) + "\n", r"data.jsonl:2 \(id x1\): duplicate id"),
        (
            json.dumps({**ITEM, "gold": [{"doc_id": ITEM["gold"][0]["doc_id"], "quote": "not in the text"}]}),
            "is not in",
        ),
        (json.dumps({**ITEM, "gold": [{"doc_id": "nope.txt", "quote": "x"}]}), "nope.txt' is not a file"),
        (json.dumps({**ITEM, "gold": []}), "needs at least one gold quote"),
    ],
)
def test_bad_datasets_name_the_line_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_dataset(path, SEEDS, tmp_path)


def test_bad_squad_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing.json", None, tmp_path)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"version": "v2.0", "articles": []}))
    with pytest.raises(DatasetError, match="needs a 'data' list"):
        load_dataset(wrong, None, tmp_path)
    data = json.loads(SQUAD.read_text())
    data["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
    shifted = tmp_path / "shifted.json"
    shifted.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"data\[1\]\.paragraphs\[0\]\.qas\[0\]\.answers\[0\]: answer_start 3"):
        load_dataset(shifted, None, tmp_path)


def test_the_gate_fails_on_a_worse_report_and_passes_on_an_equal_one(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(
        json.dumps(
            {
                "metrics": {"keyword_accuracy_answerable": 0.8, "alce_recall": 0.7, "total_ms_p50": 4000},
                "tolerance": {"default": 0.05, "total_ms_p50": 0.5},
            }
        )
    )
    baseline = load_baseline(path)
    assert check_gate({"keyword_accuracy_answerable": 0.8, "alce_recall": 0.7, "total_ms_p50": 4000}, baseline) == []
    assert check_gate({"keyword_accuracy_answerable": 0.76, "alce_recall": 0.7, "total_ms_p50": 5900}, baseline) == []
    failures = check_gate({"keyword_accuracy_answerable": 0.6, "alce_recall": 0.7, "total_ms_p50": 6100}, baseline)
    assert len(failures) == 2
    assert failures[0].startswith("keyword_accuracy_answerable: 0.6 is below the baseline 0.8")
    assert failures[1].startswith("total_ms_p50: 6100 is above 4000")
    assert check_gate({"alce_recall": 0.7, "total_ms_p50": 1}, baseline) == [
        "keyword_accuracy_answerable: missing from this run (baseline 0.8)"
    ]
    path.write_text("[1, 2]")
    with pytest.raises(DatasetError, match="needs a 'metrics' object"):
        load_baseline(path)
    with pytest.raises(DatasetError, match="--write-baseline"):
        load_baseline(tmp_path / "none.json")


@pytest.fixture()
def fake() -> Iterator[FakeOpenAI]:
    def reply_for(messages: list[dict[str, str]]) -> str:
        return "YES" if "Is the claim supported" in messages[-1]["content"] else TRUE_SENTENCE

    with FakeOpenAI(reply_for=reply_for) as server:
        yield server


def test_a_failed_question_is_recorded_and_an_interrupted_run_resumes(tmp_path: Path, fake: FakeOpenAI) -> None:
    rows = [{**ITEM, "id": f"q{i}"} for i in range(3)]
    dataset = write_jsonl(tmp_path / "three.jsonl", rows)
    settings = make_settings(tmp_path / "unused", llm__base_url=fake.base_url, llm__model="fake", llm__max_retries=0)
    fake.fail_first = 1  # the first request of the run fails with HTTP 500
    out = tmp_path / "out"
    report, results = evaluate(settings, dataset, out, corpus=SEEDS, judge=False)
    assert [r.error is not None for r in results] == [True, False, False]
    assert "HTTP 500" in (results[0].error or "")
    assert report["aggregates"]["failed"] == 1 and report["aggregates"]["keyword_accuracy_answerable"] == 1.0
    assert (out / "report.md").exists() and (out / "report.json").exists()

    # An interrupted run: the last line was cut off half-way.
    lines = (out / "items.jsonl").read_text().splitlines()
    (out / "items.jsonl").write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:40])
    assert set(read_results(out / "items.jsonl")) == {"q0", "q1"}
    asked_before = len(fake.chat_requests)
    report, results = evaluate(settings, dataset, out, corpus=SEEDS, judge=False, resume=True)
    assert len(fake.chat_requests) - asked_before == 2  # q0 (it had failed) and q2 (cut off); not q1
    assert [r.error for r in results] == [None, None, None]
    assert report["aggregates"]["failed"] == 0


def test_squad_eval_indexes_its_own_corpus(tmp_path: Path, fake: FakeOpenAI) -> None:
    fake.reply_for = lambda messages: "The talks lasted four hours [1]."
    settings = make_settings(tmp_path / "unused", llm__base_url=fake.base_url, llm__model="fake", llm__max_retries=0)
    report, results = evaluate(settings, SQUAD, tmp_path / "squad", judge=False, limit=4)
    assert report["dataset"]["corpus"] == str(tmp_path / "squad" / "corpus")
    by_id = {r.id: r for r in results}
    assert by_id["sochi1"].scores["contains_answer"] == 1.0 and by_id["sochi1"].gold_rank == 1
    assert by_id["nsr2"].answerable is False


@pytest.mark.llm
def test_end_to_end_eval_with_the_real_model(tmp_path: Path) -> None:
    dataset = REPO / "evals" / "seeds.jsonl"
    report, results = evaluate(make_settings(tmp_path / "unused"), dataset, tmp_path / "run", limit=3)
    agg = report["aggregates"]
    assert agg["items"] == 3 and agg["failed"] == 0
    for name in ("retrieval_recall@5", "keyword_accuracy_answerable", "alce_recall", "first_token_ms_p50"):
        assert agg[name] is not None, name
    assert report["fingerprint"]["model"].startswith("qwen2.5-coder-1.5b")
    for name in ("report.json", "report.md", "metrics_by_kind.png", "latency.png", "gold_rank.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [r["id"] for r in saved["results"]] == [r.id for r in results]


def test_a_written_baseline_passes_its_own_run_and_catches_a_drop() -> None:
    from rag.evaluation import GATE_METRICS, baseline_from

    aggregates = {name: 0.8 for name in GATE_METRICS} | {"total_ms_p50": 4000.0, "alce_recall": None}
    aggregates |= {"answerable": 10, "abstention_tp": 2, "abstention_fn": 2, "abstention_fp": 1}
    baseline = baseline_from(aggregates)
    assert "alce_recall" not in baseline["metrics"]  # not measured in this run: not gated
    # One item's worth of the questions behind each metric: 10 answerable, 4 unanswerable, 3 abstentions.
    assert baseline["tolerance"]["keyword_accuracy_answerable"] == 0.11
    assert baseline["tolerance"]["abstention_recall"] == 0.26
    assert baseline["tolerance"]["abstention_precision"] == 0.343
    assert baseline["tolerance"]["total_ms_p50"] == 1.0
    assert check_gate(aggregates, baseline) == []
    worse = aggregates | {"keyword_accuracy_answerable": 0.6}
    assert check_gate(worse, baseline) == [
        "keyword_accuracy_answerable: 0.6 is below the baseline 0.8 by more than 0.11"
    ]


def test_two_runs_into_one_folder_are_refused(tmp_path: Path) -> None:
    from rag.errors import RagError
    from rag.store import write_lock

    with write_lock(tmp_path / "out", "rag eval"), pytest.raises(RagError, match="another `rag eval` is writing"):
        evaluate(make_settings(tmp_path / "unused"), SQUAD, tmp_path / "out", judge=False)
