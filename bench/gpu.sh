#!/usr/bin/env bash
# The GPU bench in one prepared command (issue 15 item 5), bounded to < 8 min.
#
#   bench/gpu.sh                 # on a CUDA machine: model-only (batch 256, 1024),
#                                # camera-JPEG ingest with nvJPEG, the service under
#                                # clients (image_decode=device vs cpu), and the
#                                # device-decode vectors vs the CPU path's
#   bench/gpu.sh --dry-run       # the same code on CPU, tiny model, seconds (the tests run this)
#
# Output goes to stdout and, when $OUT is set, to $OUT/gpu_bench.txt too.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for c in "$ROOT/.venv/bin/python" /work/main/.venv/bin/python "$(command -v python3)"; do
    [[ -x "$c" ]] && { PY="$c"; break; }
  done
fi
LIMIT="${GPU_BENCH_LIMIT_S:-470}"
PARITY_S=60  # of LIMIT: the device-decode vs CPU-path vectors (bench/decode_parity.py)
cd "$ROOT"
DRY=0
[[ " $* " == *" --dry-run "* ]] && DRY=1
if [[ $DRY == 0 ]]; then
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true
fi
run() {
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  timeout "$((LIMIT - PARITY_S))" "$PY" bench/gpu_bench.py "$@" || return $?
  echo
  echo "== 4. device decode vs the CPU path: model inputs and vectors (bench/decode_parity.py)"
  if [[ $DRY == 1 ]]; then
    timeout "$PARITY_S" "$PY" bench/decode_parity.py --models offline-tiny --runtime auto
  else
    timeout "$PARITY_S" "$PY" bench/decode_parity.py --device cuda --runtime auto
  fi
}
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  run "$@" 2>&1 | tee "$OUT/gpu_bench.txt"
  exit "${PIPESTATUS[0]}"
fi
run "$@"
