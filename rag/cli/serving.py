"""`rag serve`, `rag mcp` and `rag llm start|stop|status`: the HTTP API, the MCP server and the bundled model's
servers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from rag.cli.common import AsJson, IndexDir, app, assistant_for, err, out, print_json, reports_errors


@app.command("serve")
@reports_errors
def serve_cmd(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to bind (default: 127.0.0.1, or RAG_SERVER_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port (default: 8000, or RAG_SERVER_PORT).")] = None,
    index_dir: IndexDir = None,
) -> None:
    """Serve the HTTP API (OpenAI-compatible chat with citations, search, documents) and a chat page at /."""
    from rag.errors import InputError
    from rag.server import serve
    from rag.server.middleware import is_loopback

    assistant = assistant_for(index_dir)
    settings = assistant.settings.server
    host = host or settings.host
    port = settings.port if port is None else port
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is not a TCP port; use 1-65535 (e.g. --port 8000; 0 picks a free one)")
    assistant.index  # noqa: B018  (no index: say so now, with the fix, rather than on the first request)
    loopback = is_loopback(host)
    if not loopback and not settings.api_key:
        err.print(
            f"[yellow]Warning:[/] serving on {escape(host)} without an API key: anyone who can reach this port can "
            "read the documents. Set RAG_API_KEY to require one."
        )
    err.print(
        f"[dim]Chat page and API at http://{escape(host)}:{port}/ (OpenAI base URL: http://{escape(host)}:{port}/v1)[/]"
    )
    serve(assistant, host, port)


@app.command("mcp")
@reports_errors
def mcp_cmd(index_dir: IndexDir = None) -> None:
    """Serve MCP over stdio for agents and desktop apps: tools search, ask, show; documents as resources."""
    from rag.mcp_server import serve_stdio

    assistant = assistant_for(index_dir)
    assistant.index  # noqa: B018  (no index: say so now, with the fix, rather than on the first call)
    serve_stdio(assistant)


llm_app = typer.Typer(help="Manage the bundled local language model server.", no_args_is_help=True)
app.add_typer(llm_app, name="llm")


def _variant(variant: str | None) -> str:
    from rag.config import load_settings

    return variant or load_settings().llm.bundled


Variant = Annotated[str | None, typer.Option("--variant", help="1.5b (default) or 0.5b; default: llm.bundled.")]


@llm_app.command("start")
@reports_errors
def llm_start(variant: Variant = None) -> None:
    """Start the bundled model's servers (the answer server and its judge) and keep them for later commands."""
    from rag.llm import ROLES, ensure_server

    for role in ROLES:
        handle = ensure_server(_variant(variant), persistent=True, role=role)
        out.print(f"{handle.model} ({role}) serving at {handle.base_url} (pid {handle.pid}).")
    out.print("Stop them with `rag llm stop`.")


@llm_app.command("stop")
@reports_errors
def llm_stop(variant: Variant = None) -> None:
    """Stop the bundled model's servers."""
    from rag.llm import ROLES, stop_server

    name = _variant(variant)
    for role in ROLES:
        stopped = stop_server(name, role)
        out.print(f"Stopped the {name} {role} server." if stopped else f"No {name} {role} server was running.")


@llm_app.command("status")
@reports_errors
def llm_status(variant: Variant = None, as_json: AsJson = False) -> None:
    """Show whether the bundled model's servers are running, and the endpoint in use."""
    from rag.config import load_settings
    from rag.llm import ROLES, server_status

    settings = load_settings()
    statuses = {role: server_status(_variant(variant), role) for role in ROLES}
    if as_json:
        print_json(
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
