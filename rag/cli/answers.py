"""`rag ask` and `rag chat`: verified answers streamed to the terminal, then their quotes."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from rag.cli.common import (
    AsJson,
    DocFilter,
    IndexDir,
    SectionFilter,
    app,
    assistant_for,
    err,
    out,
    page_note,
    print_json,
    reports_errors,
)

if TYPE_CHECKING:
    from rag.answering import Answer, Turn
    from rag.assistant import Assistant
    from rag.types import Stage


def stage_text(stage: Stage) -> str:
    """A stage as the status line says it: "Reading 6 passages... 1.2 s"."""
    what = {
        "searching": "Searching the documents",
        "reading": f"Reading {stage.passages} passage{'' if stage.passages == 1 else 's'}",
        "writing": "Writing the answer",
        "checking": "Checking the citations",
    }[stage.stage]
    return f"{what}... {stage.elapsed:.1f} s"


def _print_answer(
    assistant: Assistant,
    question: str,
    history: list[Turn] | None = None,
    doc_ids: list[str] | None = None,
    sections: list[str] | None = None,
) -> Answer:
    """Stream the verified answer to the terminal, then its citations (or, on abstention, why and the closest
    passages). On a terminal, stderr shows the stage the answer is in until its first words."""
    from rag.answering import Answer
    from rag.types import Stage

    answer: Answer | None = None
    status = err.status("Searching the documents...", spinner="dots") if err.is_terminal else None
    if status is not None:
        status.start()
    try:
        for event in assistant.ask_stream(question, history, doc_ids=doc_ids, sections=sections):
            if isinstance(event, Stage):
                if status is not None:
                    status.update(stage_text(event))
                continue
            if status is not None:
                status.stop()
                status = None  # the answer is showing: later stages would only flicker over it
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
        if answer.abstain_reason is not None:
            err.print(f"[dim](why: {escape(answer.abstain_reason.message)})[/]")
        if answer.closest_passages:
            out.print("\n[bold]Closest passages:[/]")
            for p in answer.closest_passages:
                text = " ".join(p.text.split())
                where = f"{escape(p.doc_id)}{page_note(p.page)} {p.start}-{p.end}"
                out.print(f"  - {escape(p.title)} [dim]({where})[/]: {escape(text[:200])}")
        return answer
    out.print()
    for c in answer.citations:
        kind = "reader comment" if c.section == "comments" else "article"
        quote = " ".join(c.quote.split())
        out.print(
            f"[bold][{c.n}][/] {escape(titles.get(c.doc_id, c.doc_id))} "
            f"[dim]({escape(c.doc_id)}{page_note(c.page)} {c.start}-{c.end}, "
            f"{kind})[/]\n    “{escape(quote)}”"
        )
    if answer.unsupported:
        err.print(
            f"[yellow]dropped {len(answer.unsupported)} unsupported sentence(s):[/] "
            + escape(" | ".join(answer.unsupported))
        )
    return answer


@app.command("ask")
@reports_errors
def ask_cmd(
    question: Annotated[str, typer.Argument(help="The question.")],
    doc: DocFilter = None,
    section: SectionFilter = None,
    index_dir: IndexDir = None,
    as_json: AsJson = False,
) -> None:
    """Answer a question from the documents, with verified quote citations."""
    assistant = assistant_for(index_dir)
    if as_json:
        from rag.schemas import AskResponse, dump

        print_json(dump(AskResponse.of(assistant.ask(question, doc_ids=doc, sections=section))))
        return
    _print_answer(assistant, question, doc_ids=doc, sections=section)


@app.command("chat")
@reports_errors
def chat_cmd(doc: DocFilter = None, section: SectionFilter = None, index_dir: IndexDir = None) -> None:
    """A multi-turn session: follow-ups are rewritten into standalone questions. Ctrl-D or 'exit' ends it."""
    from rag.answering import Turn
    from rag.errors import InputError

    assistant = assistant_for(index_dir)
    assistant.retriever.check_filter(doc, section)  # an unknown document ends the session before it starts
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
            answer = _print_answer(assistant, question, history, doc, section)
        except InputError as exc:
            err.print(f"[red]Error:[/] {escape(str(exc))}")
            continue
        history.append(Turn(question=answer.standalone_question, answer=answer.answer))
