#!/usr/bin/env bash
# The test command: sets up ./.venv if needed, then runs lint, the type checker
# (over the product packages and offline_training) and the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check .
.venv/bin/mypy imgsearch embedder_service caption_service search_gateway offline_models offline_training
.venv/bin/python -m pytest -q "$@"
