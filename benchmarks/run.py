"""Benchmarks: `python benchmarks/run.py --suite index|search|ask|scale|ray|all [--multiply N] [--repeat R] [--json] [--smoke]`.

Each suite prints one JSON object (with --json) holding its figures and, where it compares two
things, the paired baseline measured in the same run on the same machine.

- index:  `rag index` on the corpus (seeds/ copied --multiply times) with the embedder already loaded,
          next to the raw encode on exactly the same chunk texts, same batch size, for each embedder backend
          (torch: `SentenceTransformer.encode`; onnx, onnx-int8: the onnxruntime session), runs interleaved;
          cosine to the torch vectors, and recall on the seeds questions of a seeds index built by each.
- search: latency of Assistant.search per mode (dense, bm25, hybrid) over a fixed question list, warm.
- serve:  a bounded load run on loopback against `rag serve` (benchmarks/serve.py).
- startup: `import rag`, `rag --help` and a cold `rag search` per backend, each in a fresh process, with
          the phases of a cold search (benchmarks/startup.py).
- ray:    `rag index` with --engine ray (2 encoder actors, local Ray instance) against --engine local on the same
          synthetic corpus (--ray-documents), runs interleaved; the ratio is Ray's overhead on these cores
          (benchmarks/ray_ingest.py).
- scale:  Flat, HNSW and IVF at --sizes synthetic chunks: build, memory, latency, recall@10 (benchmarks/scale.py).
- milvus: index.backend = milvus on Milvus Lite against FAISS at --milvus-size synthetic chunks: write, open,
          dense latency and recall@10 (exact flat as truth), BM25 latency and equality (benchmarks/milvus.py).
- store:  a cold hybrid `rag search` and its memory at --chunks synthetic chunks against 50, this checkout's
          store against --before-ref's (benchmarks/store.py).
- ask:    evals/smoke.jsonl through Assistant.ask on the configured model (default: the bundled 1.5B),
          warm: accuracy, abstention, time to first token, total, time outside the model, prompt tokens.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from benchmarks import faults, milvus, ray_ingest, scale, serve, startup, store  # noqa: E402
from benchmarks.common import QUERIES, machine  # noqa: E402
from rag.answering import Answer, Turn  # noqa: E402
from rag.assistant import Assistant  # noqa: E402
from rag.config import load_settings  # noqa: E402
from rag.embedders import load_embedder  # noqa: E402
from rag.metrics import percentile  # noqa: E402
from rag.types import EMBED_BACKENDS  # noqa: E402


def make_corpus(workdir: Path, source: Path, multiply: int) -> Path:
    """``source`` copied ``multiply`` times under distinct folders, so every copy is its own document."""
    corpus = workdir / "corpus"
    for i in range(multiply):
        shutil.copytree(source, corpus / f"copy{i:03d}")
    return corpus


def suite_index(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """`rag index` and raw encoding of the same chunk texts per embedder backend, runs interleaved."""
    corpus = make_corpus(workdir, Path(args.corpus), args.multiply)
    default = load_settings(env={}).embed.backend
    runs: dict[str, dict[str, list[float]]] = {b: {"index": [], "embed": [], "encode": []} for b in EMBED_BACKENDS}
    assistants, embedders, vectors = {}, {}, {}
    for backend in EMBED_BACKENDS:
        settings = load_settings(env={"RAG_EMBED_BACKEND": backend})
        settings.index.dir = str(workdir / f"index-{backend}")
        assistants[backend] = Assistant(settings)
        # Loaded (and its ONNX export made) once: both sides measure encoding, not model loading.
        embedders[backend] = load_embedder(settings.embed)
        embedders[backend].encode(["warm up"], batch_size=settings.embed.batch_size)
    report = None
    for _ in range(args.repeat):  # interleaved, so that a change in the machine's load hits every backend alike
        for backend in EMBED_BACKENDS:
            assistant = assistants[backend]
            report = assistant.build_index([str(corpus)], rebuild=True)
            runs[backend]["index"].append(report.total_seconds)
            runs[backend]["embed"].append(report.embed_seconds)
            texts = [c.text for c in assistant.index.chunks]
            t0 = time.perf_counter()
            vectors[backend] = embedders[backend].encode(texts, batch_size=assistant.settings.embed.batch_size)
            runs[backend]["encode"].append(time.perf_counter() - t0)
    assert report is not None
    n = report.chunks_total
    quality = seeds_quality(workdir)
    backends: dict[str, dict[str, Any]] = {}
    for backend, times in runs.items():
        index_rate = n / statistics.median(times["index"])
        encode_rate = n / statistics.median(times["encode"])
        cosine = np.sum(vectors[backend] * vectors["torch"], axis=1)
        backends[backend] = {
            "index_seconds_p50": round(statistics.median(times["index"]), 3),
            "index_embed_seconds_p50": round(statistics.median(times["embed"]), 3),
            "index_chunks_per_s": round(index_rate, 1),
            "raw_encode_seconds_p50": round(statistics.median(times["encode"]), 3),
            "raw_encode_chunks_per_s": round(encode_rate, 1),
            # The fastest run: on a shared machine the others' load only ever slows a run down.
            "raw_encode_chunks_per_s_best": round(n / min(times["encode"]), 1),
            "ratio_index_to_raw_encode": round(index_rate / encode_rate, 3),
            "raw_encode_speedup_vs_torch": round(
                statistics.median(runs["torch"]["encode"]) / statistics.median(times["encode"]), 3
            ),
            "cosine_vs_torch_mean": round(float(cosine.mean()), 6),
            "cosine_vs_torch_min": round(float(cosine.min()), 6),
            **quality[backend],
        }
    chunks = assistants[default].index.chunks
    return {
        "suite": "index",
        "machine": machine(),
        "documents": len(report.added),
        "chunks": n,
        "characters": sum(len(c.text) for c in chunks),
        "repeat": args.repeat,
        "default_backend": default,
        **{k: v for k, v in backends[default].items() if k.startswith(("index_", "raw_encode_", "ratio_"))},
        "index_kind": report.index_kind,
        "backends": backends,
    }


def seeds_quality(workdir: Path) -> dict[str, dict[str, Any]]:
    """Per backend, on an index of seeds/ it built: recall of the gold chunk for the seeds questions, and
    how often its dense top hit is torch's."""
    from rag import metrics
    from rag.eval.datasets import load_dataset

    items = [i for i in load_dataset(REPO / "evals" / "seeds.jsonl", None, workdir).items if i.answerable]
    top: dict[str, list[str]] = {}
    result: dict[str, dict[str, Any]] = {}
    for backend in EMBED_BACKENDS:
        settings = load_settings(env={"RAG_EMBED_BACKEND": backend})
        settings.index.dir = str(workdir / f"seeds-{backend}")
        assistant = Assistant(settings)
        assistant.build_index([str(REPO / "seeds")])
        scores: dict[str, Any] = {}
        for mode in ("dense", "hybrid"):
            ranks, firsts = [], []
            for item in items:
                hits = assistant.search(item.question, k=5, mode=mode).hits
                gold = [(g.doc_id, g.start, g.end) for g in item.gold]
                ranks.append(metrics.gold_rank([(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in hits], gold))
                firsts.append(hits[0].chunk.chunk_id if hits else "")
            scores[f"seeds_{mode}_recall@1"] = round(metrics.recall_at_k(ranks, 1), 4)
            scores[f"seeds_{mode}_recall@5"] = round(metrics.recall_at_k(ranks, 5), 4)
            if mode == "dense":
                top[backend] = firsts
        same = sum(a == b for a, b in zip(top[backend], top["torch"], strict=True))
        result[backend] = {**scores, "seeds_questions": len(items), "seeds_dense_top1_same_as_torch": same}
    return result


def suite_search(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    settings = load_settings(env={})
    settings.index.dir = str(workdir / "index")
    assistant = Assistant(settings)
    assistant.build_index([str(make_corpus(workdir, Path(args.corpus), args.multiply))])
    result: dict[str, Any] = {"suite": "search", "machine": machine(), "chunks": len(assistant.index.chunks)}
    for mode in ("dense", "bm25", "hybrid"):
        assistant.search(QUERIES[0], mode=mode)  # warm: model, FAISS and BM25 loaded
        times = []
        for _ in range(args.repeat):
            for query in QUERIES:
                t0 = time.perf_counter()
                assistant.search(query, k=5, mode=mode)
                times.append((time.perf_counter() - t0) * 1000)
        result[mode] = {
            "queries": len(times),
            "p50_ms": round(percentile(times, 50), 2),
            "p95_ms": round(percentile(times, 95), 2),
        }
    return result


def suite_ask(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Accuracy, abstention and latency of `rag ask` on evals/smoke.jsonl with the configured (default: bundled) model."""
    import re

    rows = [json.loads(line) for line in (REPO / "evals" / "smoke.jsonl").read_text(encoding="utf-8").splitlines()]
    if args.smoke:
        rows = [next(r for r in rows if r["answerable"]), next(r for r in rows if not r["answerable"])]
    settings = load_settings()
    settings.index.dir = str(workdir / "index")
    assistant = Assistant(settings)
    assistant.build_index([str(Path(args.corpus))])
    assistant.ask(rows[0]["question"])  # warm: server started, model loaded, system prompt cached
    correct = abstained_right = 0
    first_token, first_output, total, outside, prompt_tokens, items = [], [], [], [], [], []
    judge_ms: list[float] = []
    for row in rows:
        history = [Turn(t["question"], t["answer"]) for t in row.get("history", [])]  # a follow-up
        *_, answer = assistant.ask_stream(row["question"], history)  # streamed: first_token is the model's first
        assert isinstance(answer, Answer)
        t = answer.timings_ms
        if row["answerable"]:
            correct += int(not answer.abstained and re.search(row["expect"], answer.answer) is not None)
        else:
            abstained_right += int(answer.abstained)
        if "first_token" in t:  # the model was asked (not an early abstention)
            first_token.append(t["first_token"])
            first_output.append(t["first_output"])
            total.append(t["total"])
            # Outside the model: retrieval, evidence, alignment; not generation, the second attempt, the rewrite
            # or the judge's calls.
            outside.append(
                t["total"] - t.get("generate", 0) - t.get("retry", 0) - t.get("rewrite", 0) - t.get("judge", 0)
            )
            judge_ms.append(t.get("judge", 0))
        prompt_tokens.append(answer.usage.get("prompt_tokens", 0))
        items.append({"question": row["question"], "answer": answer.answer, "abstained": answer.abstained, **t})
    answerable = sum(r["answerable"] for r in rows)
    return {
        "suite": "ask",
        "machine": machine(),
        "model": assistant.model.model,
        "questions": len(rows),
        "answerable_correct": f"{correct}/{answerable}",
        "unanswerable_abstained": f"{abstained_right}/{len(rows) - answerable}",
        "questions_sent_to_model": len(total),
        "first_token_ms_p50": round(percentile(first_token, 50)) if first_token else None,
        "first_verified_sentence_ms_p50": round(percentile(first_output, 50)) if first_output else None,
        "total_ms_p50": round(percentile(total, 50)) if total else None,
        "total_ms_p95": round(percentile(total, 95)) if total else None,
        "outside_llm_ms_p50": round(percentile(outside, 50)) if outside else None,
        "judge_ms_p50": round(percentile(judge_ms, 50)) if judge_ms else None,
        "judge_ms_p95": round(percentile(judge_ms, 95)) if judge_ms else None,
        "outside_llm_share_p50": round(percentile([o / t for o, t in zip(outside, total, strict=True)], 50), 3)
        if total
        else None,
        "prompt_tokens_p50": round(percentile([float(p) for p in prompt_tokens if p], 50))
        if any(prompt_tokens)
        else None,
        "items": items,
    }


SUITES = {
    "index": suite_index,
    "search": suite_search,
    "ask": suite_ask,
    "scale": scale.suite_scale,
    "milvus": milvus.suite_milvus,
    "startup": startup.suite_startup,
    "serve": serve.suite_serve,
    "faults": faults.suite_faults,
    "store": store.suite_store,
    "ray": ray_ingest.suite_ray,
}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=[*SUITES, "all"], default="all")
    parser.add_argument("--corpus", default=str(REPO / "seeds"), help="folder of documents (default seeds/)")
    parser.add_argument("--multiply", type=int, default=8, help="copies of the corpus to index (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--json", action="store_true", help="one JSON object per suite, nothing else")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check that the suites run")
    scale.add_arguments(parser)
    milvus.add_arguments(parser)
    serve.add_arguments(parser)
    faults.add_arguments(parser)
    store.add_arguments(parser)
    ray_ingest.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.multiply, args.repeat = 1, 1
    results = []
    # "all" is the suites that need no language model; ask them for "ask" by name.
    for name in ["index", "search"] if args.suite == "all" else [args.suite]:
        with tempfile.TemporaryDirectory(prefix=f"rag-bench-{name}-") as tmp:
            result = SUITES[name](args, Path(tmp))
        results.append(result)
        if name == "faults" and not args.json:
            print(faults.markdown(result))
            continue
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return results


if __name__ == "__main__":
    main()
