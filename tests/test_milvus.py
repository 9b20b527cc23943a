"""index.backend = milvus on Milvus Lite (the same client code a cluster gets): search equal to the FAISS backend
on the seeds, filters, the versions switched by CURRENT and the alias, a failed update leaving the previous
version serving, `rag ask` citing, `rag serve` beside a live `rag index`, and the errors a user can cause.

Everything is real: the bundled embedder, FAISS, bm25s, pymilvus and Milvus Lite started in-process (or in the
subprocess under test); the model is the fake OpenAI-compatible endpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from rag.assistant import Assistant
from rag.errors import IndexMismatchError, IndexServiceError
from rag.llm import free_port
from rag.store import current_generation, load_index
from tests.conftest import REPO, SEEDS, check_citations, make_settings
from tests.fake_openai import FakeOpenAI

pytest.importorskip("pymilvus", reason="index.backend = milvus needs pymilvus (pip install -e '.[milvus]')")
pytest.importorskip("milvus_lite", reason="the Milvus tests run on Milvus Lite (pip install -e '.[milvus]')")

from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from rag.backends import milvus as milvus_backend

QUERIES = [
    "Who is the chief of Russia's Northern Fleet?",
    "Which team did the Patriots play?",
    "nuclear submarine accident",
    "What did the readers say in the comments?",
    "election results and the vote count",
    "Moiseyev",
    "weather forecast rain",
    "How many people were injured?",
]
FLEET_DOC = "004_ef5f7f6cb4511981.txt"


def milvus_settings(index_dir: Path, **overrides: object) -> Any:
    return make_settings(index_dir, index__backend="milvus", **overrides)


def subprocess_env(index_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {
        **env,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "RAG_INDEX_DIR": str(index_dir),
        "RAG_INDEX_BACKEND": "milvus",
        **extra,
    }


def alias_target(index_dir: Path, record: dict[str, Any]) -> str:
    """The collection the alias names, read in the generation's own Milvus Lite folder."""
    client = MilvusClient(str(index_dir.resolve() / "milvus" / f"{record['collection']}.db"))
    return str(client.describe_alias(record["alias"])["collection_name"])


@pytest.fixture(scope="module")
def milvus_seeds(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    """The seeds indexed once with index.backend = milvus (a Milvus Lite folder per generation)."""
    assistant = Assistant(milvus_settings(tmp_path_factory.mktemp("milvus-seeds")))
    report = assistant.build_index([str(SEEDS)])
    assert report.written and not report.problems
    return assistant


def ids_and_scores(assistant: Assistant, query: str, mode: str, **filters: Any) -> tuple[list[str], list[float]]:
    hits = assistant.search(query, k=8, mode=mode, **filters).hits
    return [h.chunk.chunk_id for h in hits], [h.score for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_search_matches_faiss_on_the_seeds(seeds_assistant: Assistant, milvus_seeds: Assistant, mode: str) -> None:
    record = milvus_seeds.index.manifest["milvus"]
    assert record["rows"] == len(milvus_seeds.index.chunks) == len(seeds_assistant.index.chunks)
    for query in QUERIES:
        faiss_ids, faiss_scores = ids_and_scores(seeds_assistant, query, mode)
        milvus_ids, milvus_scores = ids_and_scores(milvus_seeds, query, mode)
        assert milvus_ids == faiss_ids, (mode, query)
        # Dense: the same inner products; BM25: bm25s's weights summed in another order (float32).
        assert milvus_scores == pytest.approx(faiss_scores, rel=1e-4, abs=1e-5), (mode, query)
    assert milvus_seeds.retriever.backend.__class__.__name__ == "MilvusBackend"


def test_collection_rows_are_the_generation_rows(milvus_seeds: Assistant) -> None:
    index = milvus_seeds.index
    backend = milvus_seeds.retriever.backend
    rows = backend.client.query(  # type: ignore[attr-defined]
        backend.collection,  # type: ignore[attr-defined]
        filter="row >= 0",
        output_fields=["row", "chunk_id", "doc_id", "section"],
        limit=len(index.chunks) + 10,
    )
    got = sorted((r["row"], r["chunk_id"], r["doc_id"], r["section"]) for r in rows)
    assert got == [(i, c.chunk_id, c.doc_id, c.section) for i, c in enumerate(index.chunks)]


@pytest.mark.parametrize(
    "filters",
    [
        {"doc_ids": [FLEET_DOC]},
        {"sections": ["comments"]},
        {"doc_ids": [FLEET_DOC, "000_b63fe8f3e2dac5e7.txt"], "sections": ["article"]},
    ],
)
def test_document_and_section_filters(
    seeds_assistant: Assistant, milvus_seeds: Assistant, filters: dict[str, list[str]]
) -> None:
    found = 0
    for mode in ("hybrid", "dense", "bm25"):
        for query in QUERIES[:4]:
            milvus_ids, _ = ids_and_scores(milvus_seeds, query, mode, **filters)
            assert milvus_ids == ids_and_scores(seeds_assistant, query, mode, **filters)[0], (mode, query)
            for hit in milvus_seeds.search(query, k=8, mode=mode, **filters).hits:
                assert hit.chunk.doc_id in filters.get("doc_ids", [hit.chunk.doc_id])
                assert hit.chunk.section in filters.get("sections", [hit.chunk.section])
            found += len(milvus_ids)
    assert found > 0


def test_ask_cites_on_the_milvus_backend(milvus_seeds: Assistant, fake_openai: FakeOpenAI) -> None:
    fake_openai.reply = "Adm. Alexander Moiseyev is the chief of Russia’s Northern Fleet [1]."
    settings = milvus_settings(milvus_seeds.index_dir, llm__base_url=fake_openai.base_url, llm__model="fake")
    assistant = Assistant(settings)
    answer = assistant.ask("Who is the chief of Russia's Northern Fleet?")
    assert not answer.abstained and answer.citations
    assert answer.citations[0].doc_id == FLEET_DOC
    check_citations(assistant, answer)
    assert assistant.retriever.backend.__class__.__name__ == "MilvusBackend"


def test_update_switches_the_alias_and_keeps_one_previous_version(tmp_path: Path, corpus: Path) -> None:
    index_dir = tmp_path / "index"
    assistant = Assistant(milvus_settings(index_dir))
    assistant.build_index([str(corpus)])
    first = assistant.index.manifest["milvus"]
    assert alias_target(index_dir, first) == first["collection"]
    assert assistant.search("Moiseyev", mode="bm25").hits[0].chunk.doc_id == FLEET_DOC

    # A document whose name holds both quotes: the filter expression must escape them.
    name = 'it\'s a "new" file.txt'
    (corpus / name).write_text("The zeppelin hangar at Lakehurst was rebuilt in 1931.\n", encoding="utf-8")
    report = assistant.build_index()
    assert report.added == [name] and report.chunks_embedded == 1 and not report.problems
    second = assistant.index.manifest["milvus"]
    assert second["collection"] != first["collection"]
    assert alias_target(index_dir, second) == second["collection"]
    hits = assistant.search("zeppelin hangar", k=3, doc_ids=[name]).hits
    assert [h.chunk.doc_id for h in hits] == [name]
    assert assistant.search("zeppelin hangar", k=1, mode="bm25").hits[0].chunk.doc_id == name

    (corpus / name).unlink()
    assistant.build_index()
    third = assistant.index.manifest["milvus"]
    folders = sorted(p.name for p in (index_dir / "milvus").iterdir())
    # The live version and the one before it (a server may still read it); the first is gone.
    assert folders == sorted(f"{r['collection']}.db" for r in (second, third))
    assert name not in assistant.index.documents
    assert all(h.chunk.doc_id != name for h in assistant.search("zeppelin hangar", k=5).hits)


def test_failed_update_leaves_the_previous_version_serving(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index_dir = tmp_path / "index"
    assistant = Assistant(milvus_settings(index_dir))
    assistant.build_index([str(corpus)])
    before = assistant.index.manifest["milvus"]
    generation = current_generation(index_dir)
    expected = ids_and_scores(assistant, QUERIES[0], "hybrid")

    (corpus / "new.txt").write_text("A new document about the harbour of Murmansk and its icebreakers.\n")
    real_insert = MilvusClient.insert
    calls = []

    def failing_insert(self: MilvusClient, collection_name: str, data: Any, **kwargs: Any) -> Any:
        calls.append(len(data))
        if len(calls) == 2:  # mid-write: the first batch is in, the second fails
            raise MilvusException(code=2, message="Fail connecting to server: connection reset")
        return real_insert(self, collection_name, data, **kwargs)

    monkeypatch.setattr(milvus_backend, "INSERT_BATCH", 20)
    monkeypatch.setattr(MilvusClient, "insert", failing_insert)
    with pytest.raises(IndexServiceError, match="cannot reach Milvus"):
        assistant.build_index()
    assert len(calls) == 2
    monkeypatch.setattr(MilvusClient, "insert", real_insert)

    assert current_generation(index_dir) == generation  # CURRENT unchanged
    assert sorted(p.name for p in (index_dir / "milvus").iterdir()) == [f"{before['collection']}.db"]
    assert alias_target(index_dir, before) == before["collection"]
    fresh = Assistant(milvus_settings(index_dir))
    assert fresh.index.manifest["milvus"] == before
    assert ids_and_scores(fresh, QUERIES[0], "hybrid") == expected
    assert "new.txt" not in fresh.index.documents

    report = fresh.build_index()  # the next run writes it
    assert report.added == ["new.txt"] and fresh.search("icebreakers Murmansk", k=1).hits[0].chunk.doc_id == "new.txt"


def test_faiss_index_gets_its_collection_without_embedding_again(tmp_path: Path, corpus: Path) -> None:
    index_dir = tmp_path / "index"
    Assistant(make_settings(index_dir)).build_index([str(corpus)])
    milvus = Assistant(milvus_settings(index_dir))
    with pytest.raises(IndexMismatchError, match="run `rag index` to write one"):
        milvus.search("Moiseyev")
    report = milvus.build_index()
    assert report.written and report.chunks_embedded == 0 and not (report.added or report.changed)
    assert milvus.search("Moiseyev", k=1).hits[0].chunk.doc_id == FLEET_DOC
    assert not milvus.build_index().written  # now up to date


@pytest.fixture()
def served(tmp_path: Path, corpus: Path, fake_openai: FakeOpenAI) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """`rag serve` in its own process over a Milvus index of ``corpus`` (a Milvus Lite folder per generation)."""
    index_dir = tmp_path / "index"
    env = subprocess_env(index_dir, RAG_LLM_BASE_URL=fake_openai.base_url, RAG_LLM_MODEL="fake")
    build = subprocess.run(
        [sys.executable, "-m", "rag.cli", "index", str(corpus)], env=env, capture_output=True, text=True, timeout=600
    )
    assert build.returncode == 0, build.stderr
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        yield url, index_dir, env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def search_over_http(url: str, query: str, **body: Any) -> list[dict[str, Any]]:
    response = httpx.post(f"{url}/v1/search", json={"query": query, "k": 3, **body}, timeout=60)
    assert response.status_code == 200, response.text
    return list(response.json()["hits"])


def test_serve_and_a_live_index_run_coexist(served: tuple[str, Path, dict[str, str]], corpus: Path) -> None:
    url, index_dir, env = served
    assert search_over_http(url, "Moiseyev")[0]["doc_id"] == FLEET_DOC  # the server has generation 1 open
    (corpus / "late.txt").write_text("The lighthouse keeper on Vardo island logged the storm at dawn.\n")
    run = subprocess.run(
        [sys.executable, "-m", "rag.cli", "index"], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr  # no lock conflict: the run wrote a folder the server never opened
    assert search_over_http(url, "lighthouse keeper Vardo")[0]["doc_id"] == "late.txt"  # the server moved on
    assert search_over_http(url, "Moiseyev", doc_ids=[FLEET_DOC])[0]["doc_id"] == FLEET_DOC
    assert len(list((index_dir / "milvus").iterdir())) == 2


def test_one_lite_file_held_by_another_process_is_one_clear_line(tmp_path: Path, corpus: Path) -> None:
    shared = tmp_path / "shared.db"
    index_dir = tmp_path / "index"
    env = subprocess_env(index_dir, RAG_INDEX_MILVUS_URI=str(shared))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys, pymilvus; pymilvus.MilvusClient({str(shared)!r}); print('open', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        run = subprocess.run(
            [sys.executable, "-m", "rag.cli", "index", str(corpus)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        holder.communicate("", timeout=30)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    message = run.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert f"the Milvus Lite folder {shared} is open in another process" in message
    assert "leave index.milvus_uri empty" in message
    assert not (index_dir / "CURRENT").exists()  # failed before any work

    # Once the holder is gone, the same settings work: one folder, every generation's collection in it.
    assistant = Assistant(milvus_settings(index_dir, index__milvus_uri=str(shared)))
    assistant.build_index([str(corpus)])
    record = assistant.index.manifest["milvus"]
    assert record["uri"] == str(shared)
    assert assistant.search("Moiseyev", k=1).hits[0].chunk.doc_id == FLEET_DOC
    client = MilvusClient(str(shared))  # the in-process server of this path, shared with the assistant
    assert client.describe_alias(record["alias"])["collection_name"] == record["collection"]


def test_a_milvus_server_by_uri_holds_every_version(tmp_path: Path, corpus: Path) -> None:
    """The cluster's code path (a server URI: one place for every version, the alias and the drops there), on a
    `milvus-lite server` process; two clients (here: this writer and another process's reader) share it."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir", str(tmp_path / "data"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = MilvusClient(uri=uri, timeout=2)
                break
            except MilvusException:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        index_dir = tmp_path / "index"
        assistant = Assistant(milvus_settings(index_dir, index__milvus_uri=uri))
        versions = []
        for n in range(3):
            if n:
                (corpus / f"extra{n}.txt").write_text(f"Extra note number {n} about the Kola peninsula ferries.\n")
            assistant.build_index([str(corpus)])
            record = assistant.index.manifest["milvus"]
            assert record["uri"] == uri
            versions.append(record["collection"])
            assert client.describe_alias(record["alias"])["collection_name"] == record["collection"]
        assert sorted(c for c in client.list_collections() if c.startswith("rag_index_g")) == sorted(versions[1:])
        assert not (index_dir / "milvus").exists()  # nothing local but the generation's tables
        reader = subprocess.run(
            [sys.executable, "-m", "rag.cli", "search", "Kola peninsula ferries", "-k", "2", "--json"],
            env=subprocess_env(index_dir, RAG_INDEX_MILVUS_URI=uri),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert reader.returncode == 0, reader.stderr
        assert {h["doc_id"] for h in json.loads(reader.stdout)["hits"]} == {"extra1.txt", "extra2.txt"}
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_unreachable_server_is_one_clear_line(tmp_path: Path, corpus: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    env = subprocess_env(tmp_path / "index", RAG_INDEX_MILVUS_URI=uri, RAG_INDEX_MILVUS_TOKEN="root:Milvus")
    run = subprocess.run(
        [sys.executable, "-m", "rag.cli", "index", str(corpus)], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    message = run.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert f"cannot reach Milvus at {uri}" in message
    assert "fix index.milvus_uri (RAG_INDEX_MILVUS_URI)" in message
    assert "root:Milvus" not in message  # the token is never printed


def test_bad_settings_name_the_fix(tmp_path: Path) -> None:
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="valid: faiss, milvus"):
        make_settings(tmp_path, index__backend="lancedb")
    with pytest.raises(ConfigError, match=r"neither a Milvus Lite path \(ending in .db\) nor a server URI"):
        milvus_backend.recorded_uri(milvus_settings(tmp_path, index__milvus_uri="milvus.sqlite"))
    with pytest.raises(ConfigError, match="is not a Milvus name"):
        milvus_backend.alias_name(milvus_settings(tmp_path, index__milvus_alias="9-lives"))


def test_bm25_weights_reproduce_bm25s_scores(milvus_seeds: Assistant) -> None:
    index = load_index(milvus_seeds.index_dir)
    rows = milvus_backend.bm25_rows(index.bm25, len(index.chunks))
    for query in QUERIES:
        terms = milvus_backend.query_terms(index.bm25, query)
        expected = dict(index.bm25.top(query, len(index.chunks)))
        got = {r: sum(w * rows[r].get(t, 0.0) for t, w in terms.items()) for r in range(len(rows))}
        assert {r: s for r, s in got.items() if s > 0} == pytest.approx(expected, rel=1e-5)
