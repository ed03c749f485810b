"""The matmul ceiling of a model, measured in the same run as the model.

A runtime's speed only means something next to what the machine can do at
that moment, and on a shared VM that swings by +-40 % between seconds. So the
ceiling is not one number taken once: `GemmCeiling` records every GEMM the
image tower runs at a given batch (its Linear layers, the attention in/out
projections, the attention score products and the patch embedding, read with
forward hooks from a real forward pass), and replays exactly those shapes, in
the model's dtype, through the calls the model makes (`F.linear` -> addmm/mm,
`torch.bmm`), in short windows. Benches interleave these windows with the
model's own windows, many times over the run, and report the best and the
median window of both. `call` picks the matmul call the runtime itself uses:
"linear" (`F.linear`, i.e. addmm, which copies the bias into the output
before the GEMM) for eager/bf16/compiled, "onednn" (`mkldnn._linear_pointwise`,
bias as a post-op) for the fused runtime. "images/s at the ceiling" is the batch divided by the
time of the GEMMs alone: what the model would do if everything that is not a
matmul (norms, softmax, GELU, copies, Python) took no time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Gemm:
    """One matmul of the model: (m x k) @ (k x n), `batch` times (bmm) or once."""

    m: int
    k: int
    n: int
    batch: int = 1
    bias: bool = False
    kind: str = "linear"  # "linear" (F.linear) or "bmm"

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.m * self.k * self.n


def image_tower_gemms(visual: torch.nn.Module, pixels: torch.Tensor) -> list[Gemm]:
    """The GEMMs one forward of `visual` on `pixels` runs, read with hooks."""
    found: list[Gemm] = []
    hooks = []

    def on_linear(mod: torch.nn.Module, args: tuple[torch.Tensor, ...], _out: object) -> None:
        x = args[0]
        m = x.numel() // x.shape[-1]
        found.append(Gemm(m, x.shape[-1], mod.weight.shape[0], bias=mod.bias is not None))

    def on_attention(mod: torch.nn.Module, args: tuple[torch.Tensor, ...], _out: object) -> None:
        q = args[0]
        d = q.shape[-1]
        if getattr(mod, "batch_first", False):
            b, tokens = q.shape[0], q.shape[1]
        else:
            tokens, b = q.shape[0], q.shape[1]
        heads = int(mod.num_heads)
        hd = d // heads
        m = b * tokens
        found.append(Gemm(m, d, 3 * d, bias=mod.in_proj_bias is not None))  # q, k, v
        found.append(Gemm(tokens, hd, tokens, batch=b * heads, kind="bmm"))  # q @ k^T
        found.append(Gemm(tokens, tokens, hd, batch=b * heads, kind="bmm"))  # attn @ v
        found.append(Gemm(m, d, d, bias=mod.out_proj.bias is not None))  # out projection

    def on_fused(mod: torch.nn.Module, args: tuple[torch.Tensor, ...], _out: object) -> None:
        # embedder_service.runtime_fused.FusedBlock: the same GEMMs, no modules.
        b, tokens, d = args[0].shape
        heads, hd, m = int(mod.heads), d // int(mod.heads), b * tokens
        found.append(Gemm(m, d, mod.qkv_w.shape[0], bias=mod.qkv_b is not None))
        found.append(Gemm(tokens, hd, tokens, batch=b * heads, kind="bmm"))
        found.append(Gemm(tokens, tokens, hd, batch=b * heads, kind="bmm"))
        found.append(Gemm(m, d, mod.out_w.shape[0], bias=mod.out_b is not None))
        found.append(Gemm(m, d, mod.fc_w.shape[0], bias=mod.fc_b is not None))
        found.append(Gemm(m, mod.fc_w.shape[0], mod.proj_w.shape[0], bias=mod.proj_b is not None))

    def on_conv(mod: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        k = mod.weight[0].numel()
        found.append(Gemm(out.shape[0] * out.shape[2] * out.shape[3], k, mod.weight.shape[0]))

    attention_projections = set()
    for mod in visual.modules():
        if hasattr(mod, "qkv_w"):
            hooks.append(mod.register_forward_hook(on_fused))
        elif isinstance(mod, torch.nn.MultiheadAttention):
            hooks.append(mod.register_forward_hook(on_attention))
            attention_projections.add(id(mod.out_proj))
    for mod in visual.modules():
        if isinstance(mod, torch.nn.Linear) and id(mod) not in attention_projections:
            hooks.append(mod.register_forward_hook(on_linear))
        elif isinstance(mod, torch.nn.Conv2d):
            hooks.append(mod.register_forward_hook(on_conv))
    try:
        with torch.inference_mode():
            visual(pixels)
    finally:
        for h in hooks:
            h.remove()
    # open_clip's final projection is a bare matrix (x @ proj), not a Linear.
    proj = getattr(visual, "proj", None)
    if isinstance(proj, torch.Tensor):
        found.append(Gemm(pixels.shape[0], proj.shape[0], proj.shape[1]))
    return found


@dataclass
class Windows:
    """Rates of repeated windows; best and median are what benches print."""

    rates: list[float] = field(default_factory=list)

    def add(self, rate: float) -> None:
        self.rates.append(rate)

    @property
    def best(self) -> float:
        return max(self.rates) if self.rates else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")


class GemmCeiling:
    """Replays a model's GEMMs in its dtype, on its device; images/s if only they ran."""

    def __init__(
        self,
        gemms: list[Gemm],
        batch: int,
        dtype: torch.dtype,
        device: str | torch.device = "cpu",
        call: str = "linear",
    ) -> None:
        self.gemms = gemms
        self.call = call
        self.batch = batch
        self.dtype = dtype
        self.device = torch.device(device)
        self.flops = sum(g.flops for g in gemms)
        self._calls: list[Callable[[], torch.Tensor]] = []
        gen = torch.Generator(device="cpu").manual_seed(0)
        for g in gemms:
            if g.kind == "bmm":
                a = self._rand((g.batch, g.m, g.k), gen)
                b = self._rand((g.batch, g.k, g.n), gen)
                self._calls.append(lambda a=a, b=b: torch.bmm(a, b))
            else:
                x = self._rand((g.m, g.k), gen)
                w = self._rand((g.n, g.k), gen)
                bias = self._rand((g.n,), gen) if g.bias else None
                if call == "onednn":
                    op = torch.ops.mkldnn._linear_pointwise
                    self._calls.append(
                        lambda x=x, w=w, bias=bias, op=op: op(x, w, bias, "none", [], "")
                    )
                else:
                    self._calls.append(lambda x=x, w=w, bias=bias: F.linear(x, w, bias))
        self.windows = Windows()

    def _rand(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        t = torch.randn(shape, generator=gen) * 0.05
        return t.to(self.device, self.dtype)

    @classmethod
    def for_model(
        cls, visual: torch.nn.Module, batch: int, image_size: int, dtype: torch.dtype,
        device: str | torch.device = "cpu", call: str = "linear",
    ) -> GemmCeiling:  # fmt: skip
        pixels = torch.zeros(batch, 3, image_size, image_size, dtype=dtype, device=device)
        return cls(image_tower_gemms(visual, pixels), batch, dtype, device, call)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def run_once(self) -> None:
        for call in self._calls:
            call()

    def sample(self, seconds: float) -> float:
        """One window: images/s at the ceiling (recorded in `windows`)."""
        self.run_once()
        self._sync()
        passes, started = 0, time.perf_counter()
        while True:
            self.run_once()
            passes += 1
            if self.device.type == "cuda" and passes % 4:
                continue
            self._sync()
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                break
        rate = passes * self.batch / elapsed
        self.windows.add(rate)
        return rate

    def gflops(self, images_per_s: float) -> float:
        """GFLOP/s of the GEMMs at a given images/s."""
        return images_per_s * self.flops / self.batch / 1e9

    def summary(self) -> str:
        w = self.windows
        return (
            f"matmul ceiling ({len(self.gemms)} GEMMs of the image tower at batch {self.batch}, "
            f"{self.flops / self.batch / 1e9:.2f} GFLOP/image, "
            f"{str(self.dtype).removeprefix('torch.')} via {self.call}): "
            f"{len(w.rates)} windows, best {w.best:.1f} img/s ({self.gflops(w.best):.0f} GFLOP/s), "
            f"median {w.median:.1f} img/s ({self.gflops(w.median):.0f} GFLOP/s)"
        )
