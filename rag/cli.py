"""The `rag` command line: thin wrappers over ``rag.Assistant``."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from rag.errors import RagError

if TYPE_CHECKING:
    from rich.progress import Progress

    from rag.answering import Answer, Turn
    from rag.assistant import Assistant

app = typer.Typer(
    help="Answer questions about a folder of documents, with citations you can check.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


P = ParamSpec("P")
R = TypeVar("R")


def _reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a library error into a one-line message on stderr and its exit code, never a traceback."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except RagError as exc:
            err.print(f"[red]Error:[/] {escape(str(exc))}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _assistant(index_dir: str | None) -> Assistant:
    from rag.assistant import Assistant
    from rag.config import load_settings

    settings = load_settings()
    if index_dir:
        settings.index.dir = index_dir
    return Assistant(settings)


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


IndexDir = Annotated[
    str | None, typer.Option("--index-dir", help="Index directory (default: index/, or RAG_INDEX_DIR).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.command("index")
@_reports_errors
def index_cmd(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Files or folders (default: what the index was built from, else seeds/)."),
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-read and re-embed everything.")] = False,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Index documents (.txt .md .html .pdf); only new or changed ones are embedded."""
    assistant = _assistant(index_dir)
    report = assistant.build_index(paths or None, rebuild=rebuild, progress=not as_json)
    if as_json:
        _print_json(report.to_json())
        return
    for problem in report.problems:
        verb = "skipped" if problem.skipped else "warning"
        err.print(f"[yellow]{verb}[/] {escape(problem.path)}: {escape(problem.message)}")
    counts = (
        f"added {len(report.added)}, changed {len(report.changed)}, removed {len(report.removed)}, "
        f"unchanged {len(report.unchanged)}"
    )
    if not report.written:
        out.print(f"Index is up to date ({counts}; {report.chunks_total} chunks). Nothing embedded.")
        return
    rate = f" ({report.chunks_embedded / report.embed_seconds:.0f} chunks/s)" if report.embed_seconds else ""
    out.print(
        f"Indexed into {escape(str(assistant.index_dir))}: {counts}; {report.chunks_total} chunks, "
        f"{report.chunks_embedded} embedded in {report.embed_seconds:.1f}s{rate}; "
        f"{report.index_kind} index; {report.total_seconds:.1f}s in all."
    )


@app.command("search")
@_reports_errors
def search_cmd(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    k: Annotated[int | None, typer.Option("-k", "--k", help="How many passages (default 5).")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="dense, bm25 or hybrid (default).")] = None,
    doc: Annotated[list[str] | None, typer.Option("--doc", help="Only this doc id (repeatable).")] = None,
    section: Annotated[
        list[str] | None, typer.Option("--section", help="Only article or comments (repeatable).")
    ] = None,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Search the index and print ranked passages."""
    result = _assistant(index_dir).search(query, k=k, mode=mode, doc_ids=doc, sections=section)
    if as_json:
        _print_json(result.to_json())
        return
    if not result.hits:
        out.print(f"No passages match {query!r}.")
        return
    for hit in result.hits:
        c = hit.chunk
        snippet = " ".join(c.text.split())
        snippet = snippet if len(snippet) <= 300 else snippet[:297] + "..."
        section_note = " [magenta](reader comments)[/]" if c.section == "comments" else ""
        out.print(
            f"[bold]{hit.rank}. {escape(hit.title)}[/]{section_note}\n"
            f"   [dim]{escape(c.doc_id)} [{c.start}:{c.end}]  score {hit.score:.4f}[/]\n"
            f"   {escape(snippet)}\n"
        )


@app.command("show")
@_reports_errors
def show_cmd(
    doc_id: Annotated[str, typer.Argument(help="Document id, as `rag search` prints it.")],
    start: Annotated[int | None, typer.Option("--start", help="First character (default 0).")] = None,
    end: Annotated[int | None, typer.Option("--end", help="End character, exclusive (default: the end).")] = None,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Print a document's text as indexed, or the span [start, end) of it."""
    doc, s, e = _assistant(index_dir).span(doc_id, start, end)
    if as_json:
        _print_json(
            {
                "doc_id": doc.doc_id,
                "title": doc.title,
                "metadata": doc.metadata,
                "start": s,
                "end": e,
                "text": doc.text[s:e],
            }
        )
        return
    sys.stdout.write(doc.text[s:e])  # exactly the span, so `rag show ... > file` round-trips
    if sys.stdout.isatty() and not doc.text[s:e].endswith("\n"):
        sys.stdout.write("\n")


def _print_answer(assistant: Assistant, question: str, history: list[Turn] | None = None) -> Answer:
    """Stream the verified answer to the terminal, then its citations (or, on abstention, the closest passages)."""
    from rag.answering import Answer

    answer: Answer | None = None
    status = err.status("Reading the documents...", spinner="dots") if err.is_terminal else None
    if status is not None:
        status.start()
    try:
        for event in assistant.ask_stream(question, history):
            if status is not None:
                status.stop()
            if isinstance(event, Answer):
                answer = event
            else:
                sys.stdout.write(event)
                sys.stdout.flush()
    finally:
        if status is not None:
            status.stop()
    sys.stdout.write("\n")
    assert answer is not None
    if answer.standalone_question != answer.question:
        err.print(f"[dim](searched for: {escape(answer.standalone_question)})[/]")
    titles = {p.doc_id: p.title for p in answer.passages}
    if answer.abstained:
        if answer.passages:
            out.print("\n[bold]Closest passages:[/]")
            for p in answer.passages[:3]:
                text = " ".join(p.text.split())
                out.print(f"  - {escape(p.title)} [dim]({escape(p.doc_id)} {p.start}-{p.end})[/]: {escape(text[:200])}")
        return answer
    out.print()
    for c in answer.citations:
        kind = "reader comment" if c.section == "comments" else "article"
        quote = " ".join(c.quote.split())
        out.print(
            f"[bold][{c.n}][/] {escape(titles.get(c.doc_id, c.doc_id))} [dim]({escape(c.doc_id)} {c.start}-{c.end}, "
            f"{kind})[/]\n    “{escape(quote)}”"
        )
    if answer.unsupported:
        err.print(
            f"[yellow]dropped {len(answer.unsupported)} unsupported sentence(s):[/] "
            + escape(" | ".join(answer.unsupported))
        )
    return answer


@app.command("ask")
@_reports_errors
def ask_cmd(
    question: Annotated[str, typer.Argument(help="The question.")],
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Answer a question from the documents, with verified quote citations."""
    assistant = _assistant(index_dir)
    if as_json:
        _print_json(assistant.ask(question).to_json())
        return
    _print_answer(assistant, question)


@app.command("chat")
@_reports_errors
def chat_cmd(index_dir: IndexDir = None) -> None:
    """A multi-turn session: follow-ups are rewritten into standalone questions. Ctrl-D or 'exit' ends it."""
    from rag.answering import Turn
    from rag.errors import InputError

    assistant = _assistant(index_dir)
    history: list[Turn] = []
    err.print("[dim]Ask about the documents; a follow-up may refer to earlier answers. Ctrl-D or 'exit' ends.[/]")
    while True:
        try:
            question = input("\nyou> ")
        except (EOFError, KeyboardInterrupt):
            err.print()
            return
        if question.strip().lower() in ("exit", "quit", ":q"):
            return
        try:
            answer = _print_answer(assistant, question, history)
        except InputError as exc:
            err.print(f"[red]Error:[/] {escape(str(exc))}")
            continue
        history.append(Turn(question=answer.standalone_question, answer=answer.answer))


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
        _print_json({k: v for k, v in report.items() if k != "items"})
    else:
        out.print(support_markdown(report).split("By kind")[0].rstrip())
        out.print(f"Report: {out_dir / 'support.md'} (and support.json).")


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
@_reports_errors
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
    as_json: AsJson = False,
) -> None:
    """Score answers and citations against a reference Q&A set; write report.json, report.md and plots."""
    from rag.config import load_settings
    from rag.eval import EvalOptions, baseline_from, check_gate, evaluate, load_baseline

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
        _print_json({**report, "gate": {"baseline": str(check) if check else None, "failures": failures}})
    else:
        _print_eval_table(report, out_dir)
    if failures:
        for failure in failures:
            err.print(f"[red]regression:[/] {escape(failure)}")
        raise typer.Exit(1)


@app.command("serve")
@_reports_errors
def serve_cmd(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default: 127.0.0.1, or RAG_SERVER_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port (default: 8000, or RAG_SERVER_PORT).")] = None,
    index_dir: IndexDir = None,
) -> None:
    """Serve the HTTP API (OpenAI-compatible chat with citations, search, documents) and a chat page at /."""
    import ipaddress

    from rag.server import serve

    assistant = _assistant(index_dir)
    assistant.index  # noqa: B018  (no index: say so now, with the fix, rather than on the first request)
    settings = assistant.settings.server
    host = host or settings.host
    port = settings.port if port is None else port
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not settings.api_key:
        err.print(
            f"[yellow]Warning:[/] serving on {escape(host)} without an API key: anyone who can reach this port can "
            "read the documents. Set RAG_API_KEY to require one."
        )
    err.print(
        f"[dim]Chat page and API at http://{escape(host)}:{port}/ (OpenAI base URL: http://{escape(host)}:{port}/v1)[/]"
    )
    serve(assistant, host, port)


llm_app = typer.Typer(help="Manage the bundled local language model server.", no_args_is_help=True)
app.add_typer(llm_app, name="llm")


def _variant(variant: str | None) -> str:
    from rag.config import load_settings

    return variant or load_settings().llm.bundled


Variant = Annotated[str | None, typer.Option("--variant", help="1.5b (default) or 0.5b; default: llm.bundled.")]


@llm_app.command("start")
@_reports_errors
def llm_start(variant: Variant = None) -> None:
    """Start the bundled model's servers (the answer server and its judge) and keep them for later commands."""
    from rag.llm import ROLES, ensure_server

    for role in ROLES:
        handle = ensure_server(_variant(variant), persistent=True, role=role)
        out.print(f"{handle.model} ({role}) serving at {handle.base_url} (pid {handle.pid}).")
    out.print("Stop them with `rag llm stop`.")


@llm_app.command("stop")
@_reports_errors
def llm_stop(variant: Variant = None) -> None:
    """Stop the bundled model's servers."""
    from rag.llm import ROLES, stop_server

    name = _variant(variant)
    for role in ROLES:
        stopped = stop_server(name, role)
        out.print(f"Stopped the {name} {role} server." if stopped else f"No {name} {role} server was running.")


@llm_app.command("status")
@_reports_errors
def llm_status(variant: Variant = None, as_json: AsJson = False) -> None:
    """Show whether the bundled model's servers are running, and the endpoint in use."""
    from rag.config import load_settings
    from rag.llm import ROLES, server_status

    settings = load_settings()
    statuses = {role: server_status(_variant(variant), role) for role in ROLES}
    if as_json:
        _print_json(
            {"configured_base_url": settings.llm.base_url or None, "server": statuses["answer"], "servers": statuses}
        )
        return
    if settings.llm.base_url:
        out.print(
            f"Configured endpoint: {settings.llm.base_url} (model {settings.llm.model!r}); the bundled server is not used."
        )
    for role, status in statuses.items():
        if status is None:
            out.print(
                f"No {_variant(variant)} {role} server is running; `rag ask` starts one for its own run, "
                "`rag llm start` keeps one."
            )
        else:
            out.print(f"{status['model']} ({role}) {status['status']} at {status['base_url']} (pid {status['pid']}).")


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
