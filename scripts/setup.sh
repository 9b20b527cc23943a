#!/usr/bin/env bash
# Idempotent set-up: a venv in .venv with torch==2.13.0 (CPU) first, then this package and its tools.
# Quick when already done: it compares a stamp of pyproject.toml before calling pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${RAG_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.rag-setup-stamp"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first and pinned: any other version pulls gigabytes of CUDA packages.
if ! "$VENV/bin/python" -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU)"
  "$VENV/bin/python" -m pip install -q torch==2.13.0
fi
echo "setup: installing rag and its dependencies"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
echo "$want" > "$stamp"
echo "setup: done"
