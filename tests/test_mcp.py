"""The MCP server through the SDK's own client: `rag mcp` over stdio as a subprocess, and /mcp of `rag serve`.

The real seeds index and embedder answer the searches; answers come from the fake OpenAI-compatible endpoint,
whose reply copies a sentence of seeds/004 so that the real citation checks verify it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from rag import __version__
from rag.assistant import Assistant
from rag.llm import free_port
from tests.conftest import REPO, SEEDS, make_settings
from tests.fake_openai import FakeOpenAI
from tests.live_server import LiveServer

QUESTION = "Who is the chief of Russia's Northern Fleet?"
# Copies seeds/004's "Adm. Alexander Moiseyev, chief of Russia’s Northern Fleet, said ..." with a marker.
TRUE_SENTENCE = "Adm. Alexander Moiseyev is chief of Russia’s Northern Fleet [1]."
NORTHERN_FLEET_DOC = "004_ef5f7f6cb4511981.txt"


def seed_text(doc_id: str) -> str:
    return (SEEDS / doc_id).read_text(encoding="utf-8")


def rag_mcp(index_dir: Path, llm_url: str, cwd: Path) -> StdioServerParameters:
    """`python -m rag.cli mcp` with this checkout first on the path, the model at ``llm_url`` and none of the
    caller's RAG_* settings; run in ``cwd`` so that no rag.toml is read."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "RAG_LLM_BASE_URL": llm_url,
        "RAG_LLM_MODEL": "fake",
        "RAG_LLM_MAX_RETRIES": "0",
        "RAG_LLM_TIMEOUT": "10",
    }
    args = ["-m", "rag.cli", "mcp", "--index-dir", str(index_dir)]
    return StdioServerParameters(command=sys.executable, args=args, env=env, cwd=cwd)


def over_stdio(params: StdioServerParameters, stderr: Path, session: Callable[[Client], Awaitable[None]]) -> str:
    """Run ``session`` against the server process; the process's stderr afterwards."""

    async def run() -> None:
        with stderr.open("w", encoding="utf-8") as errlog:
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:  # initialize handshake
                await session(client)

    anyio.run(run)
    return stderr.read_text(encoding="utf-8")


def error_text(result: Any) -> str:
    assert result.is_error, result
    return " ".join(block.text for block in result.content)


@pytest.fixture()
def fake(fake_openai: FakeOpenAI) -> FakeOpenAI:
    fake_openai.reply = TRUE_SENTENCE  # the judge's requests get the fake's judge_score (0.9): supported
    return fake_openai


# --- stdio -------------------------------------------------------------------------------------------


def test_stdio_tools_are_listed_with_their_schemas_and_search_finds_exact_spans(
    seeds_assistant: Assistant, fake: FakeOpenAI, tmp_path: Path
) -> None:
    async def session(client: Client) -> None:
        info = client.server_info
        assert info is not None and info.name == "rag" and info.version == __version__
        assert client.server_capabilities.tools is not None and client.server_capabilities.resources is not None
        assert "abstained" in (client.instructions or "")

        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"search", "ask", "show"}
        assert tools["search"].input_schema["required"] == ["query"]
        assert set(tools["search"].input_schema["properties"]) == {"query", "k", "doc_ids", "sections"}
        assert tools["ask"].input_schema["required"] == ["question"]
        assert tools["show"].input_schema["required"] == ["doc_id"]
        assert all(t.annotations is not None and t.annotations.read_only_hint for t in tools.values())
        assert all(t.description and "\n " not in t.description for t in tools.values())  # docstrings, dedented
        ask_out = tools["ask"].output_schema or {}
        assert set(ask_out["required"]) >= {"answer", "abstained", "citations"}
        citation = ask_out["$defs"]["TitledCitation"]
        assert set(citation["required"]) >= {"n", "doc_id", "title", "page", "start", "end", "quote"}
        hit = (tools["search"].output_schema or {})["$defs"]["SearchHit"]
        assert set(hit["required"]) >= {"doc_id", "title", "page", "start", "end", "text", "score"}

        result = await client.call_tool("search", {"query": "Northern Fleet navigation rules", "k": 3})
        assert not result.is_error
        found = result.structured_content or {}
        assert json.loads(result.content[0].text) == found  # the text block is the same JSON
        assert found["query"] == "Northern Fleet navigation rules" and len(found["hits"]) == 3
        assert found["hits"][0]["doc_id"] == NORTHERN_FLEET_DOC
        for hit_out in found["hits"]:
            assert seed_text(hit_out["doc_id"])[hit_out["start"] : hit_out["end"]] == hit_out["text"]
            assert hit_out["title"] == seeds_assistant.document(hit_out["doc_id"]).title
            assert hit_out["page"] is None  # plain text has no pages

        only = await client.call_tool("search", {"query": "flights", "k": 2, "doc_ids": [NORTHERN_FLEET_DOC]})
        assert {h["doc_id"] for h in (only.structured_content or {})["hits"]} == {NORTHERN_FLEET_DOC}

    stderr = over_stdio(rag_mcp(seeds_assistant.index_dir, fake.base_url, tmp_path), tmp_path / "err", session)
    assert "Traceback" not in stderr
    assert not fake.chat_requests  # search needs no model


def test_stdio_ask_cites_checkable_quotes_which_show_and_the_resources_confirm(
    seeds_assistant: Assistant, fake: FakeOpenAI, tmp_path: Path
) -> None:
    async def session(client: Client) -> None:
        result = await client.call_tool("ask", {"question": QUESTION})
        assert not result.is_error, result.content
        answer = result.structured_content or {}
        assert answer["abstained"] is False and "Moiseyev" in answer["answer"]
        assert {int(n) for n in re.findall(r"\[(\d+)\]", answer["answer"])} == {c["n"] for c in answer["citations"]}
        assert answer["citations"], answer
        assert answer["abstain_reason"] is None and answer["closest_passages"] == []
        for c in answer["citations"]:
            assert seed_text(c["doc_id"])[c["start"] : c["end"]] == c["quote"]
            assert c["supported"] is True and c["title"] == seeds_assistant.document(c["doc_id"]).title
        cited = answer["citations"][0]

        # The span in context, as `rag show` gives it.
        shown = await client.call_tool("show", {**{k: cited[k] for k in ("doc_id", "start", "end")}, "context": 80})
        span = shown.structured_content or {}
        text = seed_text(cited["doc_id"])
        assert span["text"] == cited["quote"] and (span["start"], span["end"]) == (cited["start"], cited["end"])
        assert span["before"] == text[max(0, cited["start"] - 80) : cited["start"]]
        assert span["after"] == text[cited["end"] : cited["end"] + 80]
        assert span["length"] == len(text) and span["title"] == cited["title"]

        # The documents as resources: every indexed one listed, each read as its indexed text.
        resources = (await client.list_resources()).resources
        assert sorted(r.name for r in resources) == sorted(p.name for p in SEEDS.iterdir() if p.suffix == ".txt")
        listed = next(r for r in resources if r.name == cited["doc_id"])
        assert str(listed.uri) == f"rag://documents/{cited['doc_id']}" and listed.title == cited["title"]
        read = await client.read_resource(str(listed.uri))
        assert read.contents[0].text == text  # type: ignore[union-attr]
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["rag://documents/{+doc_id}"]

        # Within other documents the same reply has no support there: an abstention that says why and shows
        # the closest passages, all from the allowed documents.
        others = [r.name for r in resources if r.name != cited["doc_id"]][:1]
        within = await client.call_tool("ask", {"question": QUESTION, "doc_ids": others})
        refused = within.structured_content or {}
        assert refused["abstained"] is True and refused["citations"] == [], refused
        assert refused["abstain_reason"]["code"] in {
            "no_passages",
            "premise_not_found",
            "model_declined",
            "unsupported",
        }
        assert refused["abstain_reason"]["message"]
        assert refused["closest_passages"] and {p["doc_id"] for p in refused["closest_passages"]} == set(others)
        for p in refused["closest_passages"]:
            assert seed_text(p["doc_id"])[p["start"] : p["end"]] == p["text"]

    stderr = over_stdio(rag_mcp(seeds_assistant.index_dir, fake.base_url, tmp_path), tmp_path / "err", session)
    assert "Traceback" not in stderr
    assert any(QUESTION in r.text() for r in fake.chat_requests)  # the answer came from the configured endpoint


def test_stdio_errors_a_user_can_cause_are_one_line_tool_errors(seeds_assistant: Assistant, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: the model server is down

    async def session(client: Client) -> None:
        unknown = error_text(await client.call_tool("show", {"doc_id": "nope.txt"}))
        assert "no document 'nope.txt' in the index; known doc ids include: 000_b63fe8f3e2dac5e7.txt" in unknown
        outside = error_text(await client.call_tool("show", {"doc_id": NORTHERN_FLEET_DOC, "start": 5, "end": 10**7}))
        assert "is outside '004_ef5f7f6cb4511981.txt'" in outside and "use 0 <= start < end <= length" in outside
        empty = error_text(await client.call_tool("ask", {"question": "   "}))
        assert "the question is empty; ask something" in empty
        no_model = error_text(await client.call_tool("ask", {"question": QUESTION}))
        assert down in no_model  # the LLMError names the endpoint it could not reach
        bad_k = error_text(await client.call_tool("search", {"query": "fleet", "k": 0}))
        assert "k" in bad_k and "greater than or equal to 1" in bad_k
        for message in (unknown, outside, empty, no_model):
            assert "\n" not in message and "Traceback" not in message
        with pytest.raises(MCPError, match=re.escape("no document 'nope.txt' in the index")):
            await client.read_resource("rag://documents/nope.txt")

    stderr = over_stdio(rag_mcp(seeds_assistant.index_dir, down, tmp_path), tmp_path / "err", session)
    assert "Traceback" not in stderr


def test_rag_mcp_without_an_index_says_how_to_build_one(tmp_path: Path) -> None:
    import subprocess

    params = rag_mcp(tmp_path / "no-index", "http://127.0.0.1:9/v1", tmp_path)
    run = subprocess.run(
        [params.command, *params.args], env=params.env, cwd=params.cwd, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1 and run.stdout == ""  # stdout is the protocol's: nothing else is written there
    assert "no index at" in run.stderr and "rag index" in run.stderr and "Traceback" not in run.stderr


# --- streamable HTTP under `rag serve` ------------------------------------------------------------------


def test_http_mcp_needs_the_api_key_and_an_allowed_host(seeds_assistant: Assistant, fake: FakeOpenAI) -> None:
    settings = make_settings(seeds_assistant.index_dir, llm__base_url=fake.base_url, llm__model="fake")
    key = {"Authorization": "Bearer s3cret"}
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}

    async def session(url: str) -> None:
        async with httpx2.AsyncClient(timeout=60) as http:
            no_key = await http.post(url, json=listing, headers=accept)
            assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "invalid_api_key"
            wrong_key = await http.post(url, json=listing, headers={**accept, "Authorization": "Bearer nope"})
            assert wrong_key.status_code == 401
            rebound = await http.post(url, json=listing, headers={**accept, **key, "Host": "evil.example"})
            assert rebound.status_code == 400 and rebound.json()["error"]["code"] == "invalid_host"
            # A page of another site calling through the visitor's browser: the SDK's Origin check, given our hosts.
            foreign = await http.post(url, json=listing, headers={**accept, **key, "Origin": "http://evil.example"})
            assert foreign.status_code == 403

        async with (
            httpx2.AsyncClient(headers=key, timeout=60) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            assert {t.name for t in (await client.list_tools()).tools} == {"search", "ask", "show"}
            result = await client.call_tool("ask", {"question": QUESTION})  # through the server's answer queue
            answer = result.structured_content or {}
            assert not result.is_error and answer["citations"]
            for c in answer["citations"]:
                assert seed_text(c["doc_id"])[c["start"] : c["end"]] == c["quote"]

    with LiveServer(Assistant(settings), api_key="s3cret") as live:
        anyio.run(session, f"{live.url}/mcp")
        assert live.app.state.rag.queue.active == 0  # the answer gave its slot back
