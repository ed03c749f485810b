#!/usr/bin/env bash
# Infinity (infinity-emb) and our embedder side by side, in the same run.
#
# Infinity goes into its OWN virtualenv ($INFINITY_VENV), never the project's:
# unpinned, infinity-emb[all] 0.0.78 pulls a multi-GB CUDA torch and its own
# transformers. Pinning torch==2.13.0 torchvision==0.28.0 first keeps pip from
# choosing another torch; torchvision is then removed again, because with it
# Infinity's CLIP loader fails ("operator torchvision::nms does not exist").
# Its image endpoint needs aiohttp, which no extra installs. It is a bench,
# not a test: it needs the registry once and minutes of CPU.
#
#   bench/peer_infinity.sh install            # venv only (idempotent)
#   bench/peer_infinity.sh [--seconds 20] [--clients 1,8,32] [...]   # install if needed, then run
#
# Environment: INFINITY_VENV (default ~/.cache/imgsearch-bench/infinity-venv),
# PROJECT_PY (default: .venv/bin/python of the main checkout, else python3).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
VENV="${INFINITY_VENV:-$HOME/.cache/imgsearch-bench/infinity-venv}"
PROJECT_PY="${PROJECT_PY:-}"
if [[ -z "$PROJECT_PY" ]]; then
  for c in "$ROOT/.venv/bin/python" /work/main/.venv/bin/python "$(command -v python3)"; do
    [[ -x "$c" ]] && { PROJECT_PY="$c"; break; }
  done
fi
INFINITY_VERSION="${INFINITY_VERSION:-0.0.78}"

install() {
  if [[ -x "$VENV/bin/infinity_emb" ]] && "$VENV/bin/python" -c "import infinity_emb, aiohttp" 2>/dev/null; then
    echo "infinity venv ready: $VENV"; return 0
  fi
  echo "creating $VENV (several minutes; downloads torch)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  # Pins first: otherwise the resolver picks a CUDA torch of its own choosing.
  "$VENV/bin/pip" install "torch==2.13.0" "torchvision==0.28.0"
  "$VENV/bin/pip" install "infinity-emb[all]==$INFINITY_VERSION" aiohttp "torch==2.13.0"
  # torchvision breaks Infinity's CLIP loader (torchvision::nms missing).
  "$VENV/bin/pip" uninstall -y torchvision
  "$VENV/bin/python" -c "import infinity_emb; print('infinity-emb', infinity_emb.__version__)"
}

case "${1:-run}" in
  install) install ;;
  *)
    [[ "${1:-}" == "run" ]] && shift
    install
    cd "$ROOT"
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PROJECT_PY" "$HERE/peer_infinity.py" \
      --infinity-python "$VENV/bin/python" "$@"
    ;;
esac
