"""The `serve` suite: a bounded load run on loopback against `rag serve` in its own process.

N concurrent clients each send M requests (search, then ask); each request's latency is measured at the
client, errors are counted by HTTP status. A last burst sends more asks at once than the answer slots and
the queue hold, to show the overflow answered 503 with Retry-After instead of hanging.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("serve suite")
    group.add_argument("--clients", type=int, default=8, help="concurrent search clients (default 8)")
    group.add_argument("--requests", type=int, default=25, help="search requests per client (default 25)")
    group.add_argument("--ask-clients", type=int, default=4, help="concurrent ask clients (default 4)")
    group.add_argument("--ask-requests", type=int, default=3, help="ask requests per client (default 3)")


def _post(port: int, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def load_run(port: int, path: str, bodies: list[dict[str, Any]], clients: int, requests: int) -> dict[str, Any]:
    """``clients`` threads, each sending ``requests`` requests one after another; latency seen by the client."""
    from rag.metrics import percentile

    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    retry_after: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(requests):
            body = bodies[(n * requests + i) % len(bodies)]
            t0 = time.perf_counter()
            try:
                status, headers, _ = _post(port, path, body)
            except OSError:
                status, headers = 0, {}  # connection refused or reset: counted as status 0
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                statuses[status] += 1
                if status == 200:
                    latencies.append(elapsed)
                if "Retry-After" in headers or "retry-after" in headers:
                    retry_after.append(int(headers.get("Retry-After") or headers["retry-after"]))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ok = statuses.get(200, 0)
    return {
        "route": path,
        "clients": clients,
        "requests_per_client": requests,
        "requests": clients * requests,
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": sum(v for k, v in statuses.items() if k != 200 and k != 503),
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p95_ms": round(percentile(latencies, 95), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "wall_s": round(wall, 2),
        "throughput_per_s": round(ok / wall, 2),
        "retry_after_s": sorted(set(retry_after)),
    }


def suite_serve(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from benchmarks.common import QUERIES, machine
    from rag.llm import free_port

    index_dir = workdir / "index"
    rag = [sys.executable, "-m", "rag.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [*rag, "index", args.corpus, "--index-dir", str(index_dir)], check=True, env=env, capture_output=True
    )
    port = free_port()
    log = (workdir / "serve.log").open("w")
    server = subprocess.Popen(
        [*rag, "serve", "--port", str(port), "--index-dir", str(index_dir)], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                health = json.loads(connection.getresponse().read())
                connection.close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"rag serve did not start; see {workdir / 'serve.log'}") from None
                time.sleep(0.2)
        clients, requests = (2, 2) if args.smoke else (args.clients, args.requests)
        result: dict[str, Any] = {"suite": "serve", "machine": machine(), "llm_queue": health["llm"]}
        result["search"] = load_run(port, "/v1/search", [{"query": q, "k": 5} for q in QUERIES], clients, requests)
        if not args.smoke:  # the ask runs need the language model
            rows = [json.loads(line) for line in (REPO / "evals" / "smoke.jsonl").read_text().splitlines()]
            asks = [{"question": r["question"]} for r in rows if r["answerable"]]
            _post(port, "/v1/ask", asks[0])  # warm: the model loaded and its system prompt cached
            result["ask"] = load_run(port, "/v1/ask", asks, args.ask_clients, args.ask_requests)
            burst = health["llm"]["slots"] + health["llm"]["max_queue"] + 4
            result["ask_overload"] = load_run(port, "/v1/ask", asks, burst, 1)
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
