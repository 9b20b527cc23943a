#!/usr/bin/env bash
# Idempotent set-up: a venv in .venv with torch==2.13.0 (CPU) first, then this package and its tools.
# Quick when already done: it compares a stamp of pyproject.toml before calling pip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${RAG_VENV:-.venv}

# The web page's test drives Debian's chromium through Playwright (which cannot download its own browsers here).
if [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing chromium (apt-get)"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the package lists only when they do not know chromium yet (a fresh container has none).
  if ! apt-cache show chromium >/dev/null 2>&1; then
    $SUDO apt-get update -qq
  fi
  $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

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
