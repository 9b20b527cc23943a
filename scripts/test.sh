#!/usr/bin/env bash
# Set up, then lint, type-check, run the citation-accuracy gate on a fast subset of the seeds set,
# and run the whole test suite (real embedder, real FAISS, the real bundled LLM over HTTP).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check rag tests benchmarks
.venv/bin/mypy
# Regression gate: fails, naming the metric, when one falls below evals/baseline-seeds-fast.json.
.venv/bin/rag eval evals/seeds.jsonl --sample 12 --seed 3 --out eval-out/ci-gate --check evals/baseline-seeds-fast.json
.venv/bin/python -m pytest -q "$@"
