"""The benchmark entry point runs (smoke sizes) so that it cannot rot; its timings are not asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import plot_scale
from benchmarks.run import main
from rag.metrics import percentile


def test_percentile_by_hand() -> None:
    # The benchmarks' percentile is rag.metrics.percentile (one definition for both).
    assert percentile([10.0], 50) == 10.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)


def test_smoke_runs_every_suite(capsys: pytest.CaptureFixture[str]) -> None:
    results = main(["--smoke", "--json"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == results
    index, search = results
    assert index["suite"] == "index" and index["documents"] == 5 and index["chunks"] > 20
    assert index["index_chunks_per_s"] > 0 and index["raw_encode_chunks_per_s"] > 0
    assert set(index["backends"]) == {"torch", "onnx", "onnx-int8"}
    for backend in index["backends"].values():
        assert backend["index_chunks_per_s"] > 0 and backend["raw_encode_chunks_per_s"] > 0
        assert 0 < backend["cosine_vs_torch_min"] <= 1.0001 and backend["seeds_questions"] > 50
        assert 0 <= backend["seeds_dense_recall@5"] <= 1 and backend["seeds_dense_top1_same_as_torch"] >= 0
    assert search["suite"] == "search"
    for mode in ("dense", "bm25", "hybrid"):
        assert search[mode]["queries"] == 8 and 0 < search[mode]["p50_ms"] <= search[mode]["p95_ms"]


def test_startup_suite_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    (result,) = main(["--suite", "startup", "--smoke", "--json"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["suite"] == "startup" and result["chunks"] > 20 and result["default_backend"] == "onnx"
    for name in ("python_start", "import_rag", "rag_help"):
        assert result[name]["runs"] == 1 and result[name]["p50_ms"] > 0
    assert set(result["search_cold"]) == set(result["search_phases"]) == {"onnx"}
    phases = result["search_phases"]["onnx"]
    assert list(phases["phases_ms_p50"]) == [
        "import_cli", "import_library", "index_load", "encoder_load", "encode", "search_load", "search", "render_json"
    ]  # fmt: skip
    assert phases["torch_imported"] is False
    assert result["onnx_export"]["min_cosine_on_probes"] > 0.9999


@pytest.mark.llm
def test_ask_suite_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    (result,) = main(["--suite", "ask", "--smoke", "--json"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["questions"] == 2 and len(result["items"]) == 2
    assert result["first_token_ms_p50"] > 0 and result["total_ms_p50"] >= result["first_token_ms_p50"]
    assert result["prompt_tokens_p50"] > 0


def test_serve_suite_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    (result,) = main(["--suite", "serve", "--smoke", "--json"])
    assert json.loads(capsys.readouterr().out) == result
    search = result["search"]
    assert result["suite"] == "serve" and search["requests"] == 4 and search["statuses"] == {"200": 4}
    assert search["errors"] == 0 and 0 < search["p50_ms"] <= search["p95_ms"]


def test_scale_suite_smoke(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (result,) = main(["--suite", "scale", "--smoke", "--json"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["suite"] == "scale" and result["data"]["dim"] == 384
    rows = {r["kind"]: r for r in result["results"]}
    assert set(rows) == {"flat", "hnsw", "ivf"} and {r["size"] for r in rows.values()} == {2000}
    for kind, row in rows.items():
        assert row["params"]["kind"] == kind and row["params"]["ntotal"] == 2000
        assert 0 <= row["recall_at_10"] <= 1 and row["p50_ms"] <= row["p95_ms"]
        assert row["index_mb"] >= 2.9  # 2000 x 384 float32 = 2.93 MB: every kind stores the full vectors
    assert rows["flat"]["recall_at_10"] == 1.0
    (lexical,) = result["bm25"]
    assert lexical["size"] == 2000 and 0 < lexical["p50_ms"] <= lexical["p95_ms"]
    assert rows["ivf"]["params"]["trained_on"] == 2000
    for kind, name in (("hnsw", "hnsw_ef_search"), ("ivf", "ivf_nprobe")):
        points = result["sweep"][kind]
        assert len(points) >= 4 and all(0 <= p["recall_at_10"] <= 1 for p in points)
        assert [p[name] for p in points] == sorted(p[name] for p in points)
    charts = plot_scale.main([str(_write(tmp_path / "scale.json", result)), "--out", str(tmp_path / "perf")])
    assert [c.name for c in charts] == ["latency_vs_size.png", "recall_vs_size.png", "recall_latency_tradeoff.png"]
    assert all(c.read_bytes().startswith(b"\x89PNG") for c in charts)


def test_milvus_suite_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("milvus_lite", reason="the milvus suite runs on Milvus Lite (pip install -e '.[milvus]')")
    (result,) = main(["--suite", "milvus", "--smoke", "--json"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["suite"] == "milvus" and result["chunks"] == 2000 and result["faiss"]["kind"] == "flat"
    dense = result["dense"]
    assert set(dense) == {"faiss_flat_exact", "faiss_flat_auto", "milvus_lite_flat_auto", "milvus_lite_flat"}
    for row in dense.values():  # exact search everywhere at this size: nothing may be missed
        assert row["recall_at_10"] == 1.0 and 0 < row["p50_ms"] <= row["p95_ms"]
    assert result["bm25"]["milvus_lite"]["recall_at_10_vs_bm25s"] == 1.0  # bm25s's own weights in Milvus
    assert result["milvus_lite"]["auto"]["write_seconds"] > 0


def _write(path: Path, result: dict) -> Path:
    path.write_text(json.dumps({"suite": "search"}) + "\n" + json.dumps(result) + "\n")
    return path


def test_the_fault_suite_passes_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    (result,) = main(["--suite", "faults", "--smoke", "--json"])
    assert json.loads(capsys.readouterr().out) == result
    rows = {row["case"]: row for row in result["rows"]}
    assert rows["kill -9 during `rag index`"]["trials"] == 2
    assert rows["damaged index file (every file x 3 damages)"]["trials"] >= 21  # 7+ files
    assert rows["bad command-line input"]["trials"] >= 10 and rows["bad HTTP input"]["trials"] >= 14
    hang = rows["model fault: hang (no reply)"]
    assert hang["seconds"] < 10  # the 5 s deadline, not a timeout per attempt
    assert [row["failures"] for row in result["rows"] if row["failures"]] == []
    assert result["passed"] is True


def test_store_suite_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    (result,) = main(["--suite", "store", "--smoke", "--json"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["suite"] == "store" and set(result["built"]) == {"50", "2000"}
    assert result["built"]["2000"]["documents"] == 100 and result["built"]["2000"]["tables_sqlite_mb"] > 0
    sides = ["after", "before"] if result["before_ref"] else ["after"]  # before: needs git and a main branch
    for side in sides:
        for size in ("50", "2000"):
            run = result[side][size]
            assert run["hits"] == 5 and 0 < run["seconds_min"] <= run["seconds_p50"]
            assert 0 < run["peak_anon_mb"] <= run["beyond_index_files_mb"]
    if result["before"]:  # the same synthetic index answers the same with either store
        assert result["before"]["2000"]["top_hit"] == result["after"]["2000"]["top_hit"]


def test_ray_suite_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray", reason="Ray Data is not installed: pip install 'ray[data]'")
    (result,) = main(["--suite", "ray", "--smoke", "--json"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["suite"] == "ray" and result["documents"] == 20 and result["chunks"] >= 20
    assert result["same_chunks"] is True and result["max_abs_vector_difference"] <= 1e-5
    assert result["local_chunks_per_s"] > 0 and result["ray_chunks_per_s"] > 0 and result["ratio_ray_to_local"] > 0
