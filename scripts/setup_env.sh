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

# Debian's Chromium for the browser tests (tests/test_web_page.py), driven by
# Playwright; Playwright's own browser downloads are never used (unreachable
# here and in CI). Installed once; quiet; as root or through passwordless sudo.
# IMGSEARCH_SKIP_BROWSER=1 leaves the system alone.
install_chromium() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "setup_env: cannot install chromium (not root, no passwordless sudo);" \
                "install it with your package manager for the browser tests" >&2
            return 0
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup_env: no apt-get here; install chromium for the browser tests" >&2
        return 0
    fi
    if ! { $sudo apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
            chromium fonts-dejavu-core; } >/tmp/imgsearch-apt.log 2>&1; then
        echo "setup_env: installing chromium failed (log: /tmp/imgsearch-apt.log);" \
            "the browser tests will fail until it is installed" >&2
    fi
}
if [ "${IMGSEARCH_SKIP_BROWSER:-0}" != 1 ] \
    && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    install_chromium
fi
