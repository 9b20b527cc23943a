"""Measure the bundled models: join time (fresh and cached), server start, completion latency and speed.

Usage: .venv/bin/python scripts/bench_llm.py [0.5b] [1.5b]
Runs one server at a time and stops it before the next. The fresh join goes to a temporary cache directory.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from rag import llm
from rag.config import LLMSettings

QUESTION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is the capital of France? Answer in one sentence."},
]


def _join_times(variant: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        saved = os.environ.get("RAG_CACHE_DIR")
        os.environ["RAG_CACHE_DIR"] = tmp
        try:
            for label in ("first", "cached"):
                start = time.perf_counter()
                llm.bundled_model_path(variant)
                print(f"{variant} join ({label}): {time.perf_counter() - start:.3f} s")
        finally:
            if saved is None:
                del os.environ["RAG_CACHE_DIR"]
            else:
                os.environ["RAG_CACHE_DIR"] = saved


def _long_prompt() -> list[dict[str, str]]:
    passages = " ".join(f"Passage {i}: ship number {i} is moored at pier {i * 7}." for i in range(120))
    return [
        {"role": "system", "content": "Answer from the passages only."},
        {"role": "user", "content": f"{passages}\nQuestion: where is ship number 42 moored?"},
    ]


def _bench_server(variant: str) -> None:
    llm.bundled_model_path(variant)  # joined beforehand: the start time below is the server's alone
    start = time.perf_counter()
    handle = llm.ensure_server(variant, persistent=False)
    print(f"{variant} server start to ready: {time.perf_counter() - start:.2f} s (owned={handle.owned})")
    try:
        client, model = llm.make_client(LLMSettings(bundled=variant))
        for run in range(3):
            start = time.perf_counter()
            response = client.chat.completions.create(model=model, messages=QUESTION, max_tokens=32, temperature=0)
            seconds = time.perf_counter() - start
            usage = response.usage
            assert usage is not None
            print(
                f"{variant} short completion run {run}: {seconds:.2f} s, prompt {usage.prompt_tokens} tokens, "
                f"{usage.completion_tokens} tokens -> {usage.completion_tokens / seconds:.1f} tok/s end to end; "
                f"{response.choices[0].message.content!r}"
            )
        start = time.perf_counter()
        first = 0.0
        deltas = 0
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Count from 1 to 30, separated by commas."}],
            max_tokens=64,
            temperature=0,
            stream=True,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                deltas += 1
                if deltas == 1:
                    first = time.perf_counter() - start
        total = time.perf_counter() - start
        print(
            f"{variant} stream: first token {first:.2f} s, {deltas} deltas in {total:.2f} s "
            f"-> decode {(deltas - 1) / (total - first):.1f} tok/s"
        )
        messages = _long_prompt()
        start = time.perf_counter()
        response = client.chat.completions.create(model=model, messages=messages, max_tokens=1, temperature=0)
        seconds = time.perf_counter() - start
        assert response.usage is not None
        tokens = response.usage.prompt_tokens
        print(f"{variant} long prompt: {tokens} tokens in {seconds:.2f} s -> prefill {tokens / seconds:.0f} tok/s")
        messages[1]["content"] = messages[1]["content"].replace("ship number 42 moored", "ship number 43 moored")
        start = time.perf_counter()
        client.chat.completions.create(model=model, messages=messages, max_tokens=1, temperature=0)
        print(f"{variant} same passages, other question: {time.perf_counter() - start:.2f} s (prefix reused)")
    finally:
        handle.stop()


def main(variants: list[str]) -> None:
    print(f"load average before: {os.getloadavg()}")
    for variant in variants:
        _join_times(variant)
        _bench_server(variant)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["0.5b", "1.5b"])
