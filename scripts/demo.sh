#!/usr/bin/env bash
# The main job, fully offline: set up ./.venv, generate sample_images/, index
# them with captions (embedded: no servers), run queries, write results.html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
exec .venv/bin/imgsearch demo "$@"
