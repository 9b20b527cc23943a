"""The evaluation harness: run a reference Q&A set through ``Assistant.ask`` and score answers and citations.

``evaluate`` indexes the dataset's corpus in ``out_dir/index``, asks each selected question (or only
searches, with ``retrieval_only``), appends each result to ``out_dir/items.jsonl`` as it comes (what
``resume`` keeps) and writes the report. It works on a copy of the caller's settings.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag import metrics
from rag.errors import ConfigError, IndexMismatchError
from rag.eval.datasets import DatasetError, EvalItem, load_dataset
from rag.eval.report import write_report
from rag.eval.scoring import RETRIEVAL_K, Entails, ItemResult, aggregate, by_kind, judge_entails, score_item

if TYPE_CHECKING:
    from rag.assistant import Assistant
    from rag.config import Settings


@dataclass(frozen=True)
class EvalOptions:
    """Which questions of the dataset to run, and how (the flags of ``rag eval``)."""

    corpus: Path | None = None  # the documents of a .jsonl set (default: seeds/ beside its evals/ folder)
    limit: int | None = None  # only the first N questions
    sample: int | None = None  # a random sample of N questions, drawn with ``seed``
    seed: int = 0
    resume: bool = False  # keep the results of an interrupted run in out_dir/items.jsonl
    judge: bool = True  # ALCE citation scores, judged by the answering model or by eval.judge_*
    retrieval_only: bool = False  # only search (and select the evidence): no language model
    on_item: Callable[[ItemResult, int, int], None] | None = None  # (result, done so far, total) after each


def run_items(
    assistant: Any, items: list[EvalItem], entails: Entails | None, done: dict[str, ItemResult], *, ask: bool = True
) -> Iterator[ItemResult]:
    """Ask each item not already ``done`` (only retrieve, unless ``ask``); a failure is recorded and the run goes on."""
    from rag.errors import RagError

    for item in items:
        if item.id in done and done[item.id].error is None:
            yield done[item.id]
            continue
        started = time.perf_counter()
        try:
            hits = assistant.search(item.question, k=max(RETRIEVAL_K)).hits
            retrieved = [(h.chunk.doc_id, h.chunk.start, h.chunk.end) for h in hits]
            if ask:
                result = score_item(item, assistant.ask(item.question), retrieved, entails)
            else:
                result = _retrieval_result(assistant, item, retrieved)
        except RagError as exc:
            result = ItemResult(
                id=item.id,
                kind=item.kind,
                question=item.question,
                answerable=item.answerable,
                error=f"{type(exc).__name__}: {exc}",
                timings_ms={"total": round((time.perf_counter() - started) * 1000)},
            )
        yield result


def _retrieval_result(assistant: Any, item: EvalItem, retrieved: list[tuple[str, int, int]]) -> ItemResult:
    """Retrieval metrics of ``item``, and whether the evidence the model would see holds the gold (no model call)."""
    from rag.answering import gather_evidence

    gold = [(g.doc_id, g.start, g.end) for g in item.gold]
    if not item.answerable:
        return ItemResult(item.id, item.kind, item.question, item.answerable)
    _, jobs = gather_evidence(assistant.settings, assistant.retriever, item.question)
    shown = [(p.doc_id, p.start, p.end) for _, passages in jobs for p in passages]
    found = metrics.gold_rank(shown, gold) is not None
    return ItemResult(
        item.id,
        item.kind,
        item.question,
        item.answerable,
        scores={"evidence_gold_recall": 1.0 if found else 0.0},
        gold_rank=metrics.gold_rank(retrieved, gold),
    )


def read_results(path: Path) -> dict[str, ItemResult]:
    """Results of an earlier (possibly interrupted) run, for --resume."""
    results: dict[str, ItemResult] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    row = json.loads(line)
                    results[row["id"]] = ItemResult(**row)
                except (json.JSONDecodeError, TypeError, KeyError):
                    continue  # a line cut off by the interruption: that item is asked again
    return results


def append_result(path: Path, result: ItemResult) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")


def evaluate(
    settings: Settings, dataset_path: Path, out_dir: Path, options: EvalOptions | None = None
) -> tuple[dict[str, Any], list[ItemResult]]:
    """Index the dataset's corpus in ``out_dir/index``, ask every selected question, score, and write the report.

    ``settings`` is left as it is: the run changes (``index.dir``) and uses a copy of it.
    """
    from rag.store import write_lock

    with write_lock(out_dir, "rag eval"):  # two runs into one folder would interleave their answers
        return _evaluate(copy.deepcopy(settings), dataset_path, out_dir, options or EvalOptions())


def _evaluate(
    settings: Settings, dataset_path: Path, out_dir: Path, options: EvalOptions
) -> tuple[dict[str, Any], list[ItemResult]]:
    """``evaluate`` under the folder's lock; ``settings`` is its own copy, free to change."""
    from rag.assistant import Assistant
    from rag.llm import ChatModel

    started = time.perf_counter()
    judge_settings = _judge_settings(settings)  # a wrong judge setting fails before any indexing
    dataset = load_dataset(dataset_path, options.corpus, out_dir)
    items = dataset.select(options.limit, options.sample, options.seed)
    if not items:
        raise DatasetError(f"no items selected from {dataset_path} (limit {options.limit}, sample {options.sample})")
    settings.index.dir = str(out_dir / "index")
    assistant = Assistant(settings)
    try:
        assistant.build_index([str(dataset.corpus)])
    except IndexMismatchError:
        # The run's own index (under --out) was built by other settings or an earlier rag: a cache, built again.
        assistant.build_index([str(dataset.corpus)], rebuild=True)
    judge_llm = None
    if options.judge and not options.retrieval_only:
        judge_llm = assistant.model if judge_settings is None else ChatModel(judge_settings)
    entails = None if judge_llm is None else judge_entails(judge_llm.judge)
    results = _run_and_record(assistant, items, entails, out_dir / "items.jsonl", options)
    judge = None
    if judge_llm is not None:
        judge = {
            "base_url": (judge_settings or settings).llm.base_url or "(the bundled local model)",
            "model": judge_llm.model or "(not called)",
        }
    report = {
        "dataset": {
            "name": dataset.name,
            "path": str(dataset_path),
            "sha256": dataset.sha256,
            "corpus": str(dataset.corpus),
        },
        "selection": {"limit": options.limit, "sample": options.sample, "seed": options.seed, "items": len(items)},
        "fingerprint": _fingerprint(assistant, judge),
        "aggregates": aggregate(results),
        "by_kind": by_kind(results),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_report(out_dir, report, results)
    return report, results


def _run_and_record(
    assistant: Assistant, items: list[EvalItem], entails: Entails | None, items_path: Path, options: EvalOptions
) -> list[ItemResult]:
    """The results of ``run_items``, each appended to ``items_path`` (a result kept by ``resume`` is not rewritten)."""
    done = read_results(items_path) if options.resume else {}
    if not options.resume:
        items_path.unlink(missing_ok=True)
    results: list[ItemResult] = []
    for result in run_items(assistant, items, entails, done, ask=not options.retrieval_only):
        if result.id not in done or done[result.id].error is not None:
            append_result(items_path, result)
        results.append(result)
        if options.on_item is not None:
            options.on_item(result, len(results), len(items))
    return results


def _fingerprint(assistant: Assistant, judge: dict[str, str] | None) -> dict[str, Any]:
    """What the numbers depend on: index settings, model, prompt, judge, and every setting but the secrets."""
    from rag.indexer import chunker_fingerprint, settings_hash
    from rag.prompts import load_prompt

    settings = assistant.settings
    embedder = assistant.index.manifest["embedder"]["name"]
    return {
        "settings_hash": settings_hash(embedder, chunker_fingerprint(settings)),
        "model": assistant.model.model or "(not called)",
        "prompt": {"name": "answer", "sha256": load_prompt("answer").sha256},
        "judge": judge,
        "settings": {  # api_key, judge_api_key: secrets stay out of the report
            section: {k: v for k, v in values.items() if not k.endswith("api_key")}
            for section, values in asdict(settings).items()
        },
    }


def _judge_settings(settings: Settings) -> Settings | None:
    """A copy of ``settings`` whose ``llm`` is the ALCE judge of ``eval.judge_*``; None: the answering model judges."""
    judge = settings.eval
    if not judge.judge_base_url:
        if judge.judge_model:
            raise ConfigError(
                f"eval.judge_model is {judge.judge_model!r} but eval.judge_base_url is empty: set "
                "RAG_EVAL_JUDGE_BASE_URL to the endpoint that serves it, or unset RAG_EVAL_JUDGE_MODEL"
            )
        return None
    if not judge.judge_model:
        raise ConfigError(
            f"eval.judge_base_url is {judge.judge_base_url!r} but no judge model is named: set "
            "RAG_EVAL_JUDGE_MODEL (or judge_model in the [eval] section of rag.toml)"
        )
    copied = copy.deepcopy(settings)
    copied.llm.base_url, copied.llm.model = judge.judge_base_url, judge.judge_model
    copied.llm.api_key = judge.judge_api_key  # never the answering endpoint's key: another server
    return copied
