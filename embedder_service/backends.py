"""Inference runtimes for ClipEmbedder: one model class, pluggable backends.

A backend takes the loaded float32 open_clip model and prepares it for one
runtime (casts the weights, compiles the towers); ClipEmbedder keeps the
pre-/post-processing and calls `encode_image` / `encode_text` on it. The
registry below is the single list of runtimes: the settings validate against
it, "auto" picks from it, and the accuracy-gate test runs every runtime it
offers on the machine, so a fast path that fails the gate fails the suite.

Why these runtimes (measurements in docs/fast-paths.md):

* ``eager``: the reference. float32 on CPU, float16 on CUDA (or the
  ``precision`` setting when one is given).
* ``bf16``: weights cast to bfloat16, eager. On CPUs with native bf16
  (AVX512-BF16, AMX) matmuls run several times the float32 rate; how many,
  and what share of it a runtime reaches, is whatever `bench/embedder_runtimes.py`
  prints on the machine at hand (it samples the tower's own GEMMs through the
  run). The weights are cast rather than autocast: open_clip under bf16
  autocast takes a slow attention path.
* ``bf16-fused``: bf16 weights, eager, with every transformer block swapped for
  `runtime_fused.FusedBlock`: the bias, exact GELU and residual add run as
  oneDNN post-ops inside the GEMMs and attention is PyTorch's fused SDPA,
  which removes most of the non-matmul time (docs/fast-paths.md has the
  measurements; same accuracy). No compile step, so it is what ``auto`` picks
  on CPUs with native bf16.
* ``bf16-compile``: bf16 weights plus ``torch.compile(dynamic=True)`` with
  inductor freezing (weights folded into the graph, oneDNN-packed) for the
  image tower; the text tower runs bf16 eager. It fuses the non-matmul work;
  where the matmuls dominate (ViT-B-32 on AVX512-BF16) it measures the same
  as ``bf16`` while compiling takes 40-100 s, so it is opt-in; dynamic
  shapes make one compile cover every
  batch size >= 2 (batch 1 is specialised and compiled separately, both in
  warm-up, before health says SERVING).

Not offered: float16 on CPU (no fast fp16 matmul on these CPUs: ~1 GFLOP/s)
and ONNX Runtime int8 (no faster than bf16-compile here, a second export path
and dependency, and not yet through the accuracy gate).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch

from imgsearch.precision import (
    AUTO,
    DTYPES,
    auto_picks_bf16,
    bf16_unavailable,
    check_bf16_runtime,
    dtype_name,
    resolve_precision,
)

log = logging.getLogger(__name__)

EAGER = "eager"
BF16 = "bf16"
BF16_COMPILE = "bf16-compile"
BF16_FUSED = "bf16-fused"


@dataclass(frozen=True)
class RuntimeSpec:
    """One entry of the registry: how to build the backend and where it is valid."""

    name: str
    description: str
    build: Callable[[str, str], Backend]  # (device, precision setting) -> backend
    unavailable: Callable[[str], str | None] = lambda _device: None


class Backend:
    """Runs the two towers of an open_clip model in one dtype, optionally compiled."""

    def __init__(
        self, runtime: str, dtype: torch.dtype, compiled: bool = False, fused: bool = False
    ) -> None:
        self.runtime = runtime
        self.dtype = dtype
        self.compiled = compiled
        self.fused = fused
        self.compile_s = 0.0
        self._image: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._text: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def precision(self) -> str:
        """The dtype the matmuls run in, as Info reports it."""
        return dtype_name(self.dtype)

    def prepare(self, model: torch.nn.Module) -> None:
        """Casts (and wraps for compilation) a loaded eval-mode model, in place."""
        model.to(dtype=self.dtype)
        if self.fused:
            from embedder_service.runtime_fused import fuse_blocks

            fuse_blocks(model)
        encode_image = cast(Callable[[torch.Tensor], torch.Tensor], model.encode_image)
        self._image = encode_image
        self._text = cast(Callable[[torch.Tensor], torch.Tensor], model.encode_text)
        if self.compiled:
            # dynamic=True: one graph for every batch size, and on CPU the
            # dynamic-shape graph uses oneDNN matmuls (the static one stays on
            # the slower MKL path). freezing folds the weights into the graph
            # as constants, so inductor can pre-pack them for oneDNN; it only
            # applies to calls without autograd (inference_mode here).
            # Only the image tower: it carries ingest throughput, while text
            # queries are single short strings and compiling the text tower
            # too would double a start-up that already takes minutes.
            self._image = torch.compile(encode_image, dynamic=True, options={"freezing": True})

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        assert self._image is not None, "prepare() first"
        return self._image(pixels)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        assert self._text is not None, "prepare() first"
        return self._text(tokens)

    @torch.inference_mode()
    def warmup(self, device: torch.device, image_size: int, context_length: int) -> None:
        """Runs each tower at batch 1 and 2, which compiles every graph that
        serving needs (batch 1 is specialised; 2 covers all larger batches)."""
        started = time.perf_counter()
        for n in (1, 2):
            pixels = torch.zeros(n, 3, image_size, image_size, device=device, dtype=self.dtype)
            self.encode_image(pixels)
            self.encode_text(torch.zeros(n, context_length, dtype=torch.long, device=device))
        elapsed = time.perf_counter() - started
        if self.compiled:
            self.compile_s = elapsed
        log.info("runtime %s (%s) warmed up in %.1f s", self.runtime, self.precision, elapsed)


def _eager(device: str, precision: str) -> Backend:
    return Backend(EAGER, DTYPES[resolve_precision(precision, device)])


def _fixed_bf16(compiled: bool) -> Callable[[str, str], Backend]:
    def build(device: str, precision: str) -> Backend:
        runtime = BF16_COMPILE if compiled else BF16
        check_bf16_runtime(runtime, device, precision)
        return Backend(runtime, torch.bfloat16, compiled=compiled)

    return build


def _fused_bf16(device: str, precision: str) -> Backend:
    check_bf16_runtime(BF16_FUSED, device, precision)
    return Backend(BF16_FUSED, torch.bfloat16, fused=True)


def _fused_unavailable(device: str) -> str | None:
    if device.startswith("cuda"):
        return "oneDNN fused blocks are a CPU path"
    from embedder_service.runtime_fused import fusable

    return bf16_unavailable(device) or fusable()


RUNTIMES: dict[str, RuntimeSpec] = {
    spec.name: spec
    for spec in (
        RuntimeSpec(EAGER, "reference: float32 on CPU, float16 on CUDA", _eager),
        RuntimeSpec(BF16, "bfloat16 weights, eager", _fixed_bf16(False), bf16_unavailable),
        RuntimeSpec(
            BF16_FUSED,
            "bfloat16 weights, oneDNN-fused transformer blocks (bias/GELU/residual post-ops, SDPA)",
            _fused_bf16,
            _fused_unavailable,
        ),
        RuntimeSpec(
            BF16_COMPILE,
            "bfloat16 weights, torch.compile with freezing (minutes to compile)",
            _fixed_bf16(True),
            bf16_unavailable,
        ),
    )
}
RUNTIME_CHOICES = (AUTO, *RUNTIMES)


def offered_runtimes(device: str) -> list[str]:
    """The runtimes valid on `device` ("cpu", "cuda", ...), reference first."""
    return [name for name, spec in RUNTIMES.items() if spec.unavailable(device) is None]


def choose_runtime(device: str, precision: str = AUTO) -> str:
    """What "auto" means on `device`.

    An explicit precision keeps the eager path in that dtype. Otherwise, on
    CPUs with native bf16: the fused bf16 blocks where oneDNN offers them
    (fastest measured, no start-up cost), else bf16 eager (compiling is opt-in:
    no faster there, 40-100 s to start); float32 eager on other CPUs, float16
    eager on CUDA.
    """
    if not auto_picks_bf16(device, precision):
        return EAGER
    return BF16_FUSED if BF16_FUSED in offered_runtimes(device) else BF16


def create_backend(runtime: str, device: str, precision: str = AUTO) -> Backend:
    """The backend for a runtime name from the registry (or "auto")."""
    if runtime == AUTO:
        runtime = choose_runtime(device, precision)
    spec = RUNTIMES.get(runtime)
    if spec is None:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIME_CHOICES)}, not {runtime!r}")
    reason = spec.unavailable(device)
    if reason is not None:
        raise ValueError(f"runtime {runtime!r} is not offered on {device}: {reason}")
    return spec.build(device, precision)
