"""The benchmark entry point runs (smoke sizes) so that it cannot rot; its timings are not asserted."""

from __future__ import annotations

import json

import pytest

from benchmarks.run import main, percentile


def test_percentile_by_hand() -> None:
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
    assert search["suite"] == "search"
    for mode in ("dense", "bm25", "hybrid"):
        assert search[mode]["queries"] == 8 and 0 < search[mode]["p50_ms"] <= search[mode]["p95_ms"]


@pytest.mark.llm
def test_ask_suite_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    (result,) = main(["--suite", "ask", "--smoke", "--json"])
    assert json.loads(capsys.readouterr().out) == result
    assert result["questions"] == 2 and len(result["items"]) == 2
    assert result["first_token_ms_p50"] > 0 and result["total_ms_p50"] >= result["first_token_ms_p50"]
    assert result["prompt_tokens_p50"] > 0
