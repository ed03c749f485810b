"""Device and dtype choices that both model services make the same way.

The embedder's runtime registry (embedder_service/backends.py) and the
captioner's runtime choice (caption_service/model.py) ask the same questions:
which device, which dtype for "auto", and is bfloat16 a *fast* path here. The
answers live once in the shared toolkit so neither service imports the other
(the captioner image carries no embedder code). Only model services import
this module: it needs torch, which the gateway image does not have.
"""

from __future__ import annotations

import torch

AUTO = "auto"

# Precision setting -> torch dtype, and back (what Info reports).
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
_NAMES = {dtype: name for name, dtype in DTYPES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    """ "float32" / "float16" / "bfloat16" for a dtype of DTYPES."""
    return _NAMES[dtype]


def resolve_device(device: str) -> str:
    """'auto' → 'cuda' when a GPU is visible, else 'cpu'."""
    if device == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return device


def resolve_precision(precision: str, device: str) -> str:
    """'auto' → float16 on CUDA, float32 on CPU (float16 matmul is slow on CPUs)."""
    if precision == AUTO:
        return "float16" if device.startswith("cuda") else "float32"
    if precision not in DTYPES:
        raise ValueError(f"precision must be auto, float32, float16 or bfloat16, not {precision!r}")
    return precision


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX).

    oneDNN also *emulates* bf16 on plain AVX-512, at float32 speed or worse, so
    `torch.ops.mkldnn._is_mkldnn_bf16_supported()` is not the right test.
    """
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        if check is not None and check():
            return True
    try:  # aarch64 (Graviton 3, Neoverse V1+) reports "bf16" in its feature flags
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = {w for line in f if line.lower().startswith(("flags", "features"))
                     for w in line.split(":", 1)[1].split()}  # fmt: skip
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def bf16_unavailable(device: str) -> str | None:
    """Why bfloat16 is not a fast path on `device` (None when it is)."""
    if device.startswith("cuda"):
        return None if torch.cuda.is_bf16_supported() else "this GPU has no bfloat16"
    if not cpu_has_native_bf16():
        return "this CPU has no native bfloat16 (AVX512-BF16 / AMX); bf16 would be emulated"
    return None


def auto_picks_bf16(device: str, precision: str) -> bool:
    """What a runtime of "auto" means for both services: bfloat16 eager on CPUs
    with native bf16 (2-3.5x float32 there, no start-up cost) unless a
    precision is pinned; the eager reference on CUDA and everywhere else."""
    if precision != AUTO or device.startswith("cuda"):
        return False
    return bf16_unavailable(device) is None


def check_bf16_runtime(runtime: str, device: str, precision: str) -> None:
    """Raises ValueError when a bfloat16 runtime conflicts with the pinned
    precision or is not a fast path on `device`."""
    if precision not in (AUTO, "bfloat16"):
        raise ValueError(f"runtime {runtime!r} runs bfloat16; precision {precision!r} conflicts")
    reason = bf16_unavailable(device)
    if reason is not None:
        raise ValueError(f"runtime {runtime!r} is not offered on {device}: {reason}")
