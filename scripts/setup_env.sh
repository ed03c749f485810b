#!/usr/bin/env bash
# Creates ./.venv with everything imgsearch needs (idempotent).
# torch/torchvision are pinned to the pair that works with open_clip on our
# machines (CPU use; the wheel is the CUDA build and also runs on GPUs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    .venv/bin/pip install --quiet --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[all,dev]"
