#!/usr/bin/env bash
# The main job on the bundled defaults: set up, index seeds/, and search it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/rag index seeds/
.venv/bin/rag search "${1:-Who heads Russia's Northern Fleet?}" -k 3
