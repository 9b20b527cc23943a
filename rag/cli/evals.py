"""`rag eval`: answers and citations scored against a reference set, the support verifier, the CI gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from rag.cli.common import AsJson, app, err, out, print_json, reports_errors

if TYPE_CHECKING:
    from rich.progress import Progress


def _eval_progress(as_json: bool) -> Progress:
    """A progress bar on stderr, shown on a terminal and not with --json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=err, disable=as_json or not err.is_terminal)


def _eval_support(
    support: Path,
    limit: int | None,
    sample: int | None,
    seed: int,
    threshold: float | None,
    out_dir: Path,
    as_json: bool,
) -> None:
    """``rag eval --support``: the support verifier on labelled (claim, quote) pairs; support.json and support.md."""
    from rag.config import load_settings
    from rag.llm import ChatModel
    from rag.support import evaluate_support, load_support_set, support_markdown

    pairs = load_support_set(support)
    if sample is not None:
        import random

        pairs = sorted(random.Random(seed).sample(pairs, min(sample, len(pairs))), key=pairs.index)
    pairs = pairs[:limit] if limit is not None else pairs
    with _eval_progress(as_json) as progress:
        task = progress.add_task("pairs", total=len(pairs))
        report = evaluate_support(
            ChatModel(load_settings()).judge_model, pairs, threshold=threshold,
            on_pair=lambda n, total: progress.update(task, completed=n),
        )  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "support.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out_dir / "support.md").write_text(support_markdown(report), encoding="utf-8")
    if as_json:
        print_json({k: v for k, v in report.items() if k != "items"})
    else:
        out.print(support_markdown(report).split("By kind")[0].rstrip())
        out.print(f"Report: {out_dir / 'support.md'} (and support.json).")


def _items_from_feedback(source: Path, target: Path | None, as_json: bool) -> None:
    """``rag eval --from-feedback FILE --write OUT``: thumbs up as reference items, thumbs down marked for review."""
    from rag.errors import InputError
    from rag.feedback import write_feedback_items

    if target is None:
        raise InputError("--from-feedback needs --write OUT.jsonl, the reference items to write")
    ready, review = write_feedback_items(source, target)
    if as_json:
        print_json({"written": str(target), "items": ready, "review": review})
        return
    out.print(
        f"Wrote {ready + review} item(s) to {target}: {ready} ready (thumbs up, gold = the cited quotes), "
        f'{review} marked for review (a "review" field: `rag eval` skips them until it is removed).'
    )


def _print_eval_table(report: dict[str, Any], out_dir: Path) -> None:
    """The headline metrics of an eval run as a table, and where its report is."""
    from rich.table import Table

    from rag.eval import HEADLINE

    table = Table(title=f"{report['dataset']['name']}: {report['aggregates']['items']} questions")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ["items", "failed", *HEADLINE]:
        value = report["aggregates"].get(name)
        table.add_row(
            name,
            "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) and value <= 1 else str(value),
        )
    out.print(table)
    out.print(f"Report: {out_dir / 'report.md'} (and report.json, plots) in {report['seconds']:.0f}s.")


@app.command("eval")
@reports_errors
def eval_cmd(
    dataset: Annotated[Path, typer.Argument(help="evals/*.jsonl of ours, or a SQuAD v2.0 .json file.")] = Path(
        "evals/seeds.jsonl"
    ),
    corpus: Annotated[Path | None, typer.Option("--corpus", help="Documents of a .jsonl set (default seeds/).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N questions.")] = None,
    sample: Annotated[int | None, typer.Option("--sample", help="A random sample of N questions.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of --sample.")] = 0,
    out_path: Annotated[Path | None, typer.Option("--out", help="Report folder (default eval-out/NAME).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Keep the answers of an interrupted run.")] = False,
    judge: Annotated[
        bool,
        typer.Option(
            "--judge/--no-judge",
            help="ALCE citation scores, judged by the answering model or by RAG_EVAL_JUDGE_BASE_URL + _MODEL.",
        ),
    ] = True,
    retrieval_only: Annotated[
        bool,
        typer.Option(
            "--retrieval-only", help="Only retrieval metrics and the evidence recall: no language model (seconds)."
        ),
    ] = False,
    check: Annotated[Path | None, typer.Option("--check", help="Fail when a metric falls below this baseline.")] = None,
    write_baseline: Annotated[
        Path | None, typer.Option("--write-baseline", help="Save this run's metrics as a baseline for --check.")
    ] = None,
    support: Annotated[
        Path | None,
        typer.Option(
            "--support",
            help="Measure the support verifier on labelled (claim, quote) pairs instead, e.g. evals/support.jsonl: "
            "the threshold is fitted on the dev half, precision and recall reported on the test half.",
        ),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="With --support: report at this threshold, fit none.")
    ] = None,
    from_feedback: Annotated[
        Path | None,
        typer.Option(
            "--from-feedback",
            help="Turn a feedback file (feedback.jsonl of `rag serve`) into reference items instead; needs --write.",
        ),
    ] = None,
    write: Annotated[
        Path | None, typer.Option("--write", help="With --from-feedback: the evals .jsonl to write.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Score answers and citations against a reference Q&A set; write report.json, report.md and plots."""
    from rag.config import load_settings
    from rag.eval import EvalOptions, baseline_from, check_gate, evaluate, load_baseline

    if from_feedback is not None:
        _items_from_feedback(from_feedback, write, as_json)
        return
    if support is not None:
        _eval_support(support, limit, sample, seed, threshold, out_path or Path("eval-out") / support.stem, as_json)
        return
    baseline = load_baseline(check) if check else None
    out_dir = out_path or Path("eval-out") / dataset.stem
    with _eval_progress(as_json) as progress:
        task = progress.add_task("questions", total=None)

        def on_item(result: Any, n: int, total: int) -> None:
            progress.update(task, completed=n, total=total, description=f"{result.id} ({result.kind})")

        options = EvalOptions(
            corpus=corpus, limit=limit, sample=sample, seed=seed, resume=resume, judge=judge,
            retrieval_only=retrieval_only, on_item=on_item,
        )  # fmt: skip
        report, _ = evaluate(load_settings(), dataset, out_dir, options)
    failures = check_gate(report["aggregates"], baseline) if baseline else []
    if write_baseline:
        write_baseline.write_text(json.dumps(baseline_from(report["aggregates"]), indent=2) + "\n", encoding="utf-8")
    if as_json:
        print_json({**report, "gate": {"baseline": str(check) if check else None, "failures": failures}})
    else:
        _print_eval_table(report, out_dir)
    if failures:
        for failure in failures:
            err.print(f"[red]regression:[/] {escape(failure)}")
        raise typer.Exit(1)
