#!/usr/bin/env bash
# Set up, then lint, type-check and run the whole test suite (real embedder, real FAISS).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check rag tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
