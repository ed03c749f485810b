"""Fused transformer blocks for CPU inference: less time outside the matmuls.

Profiled on ViT-B-32 in bfloat16 at batch 32 (torch 2.14, AVX512-BF16), about
a third of the image tower's time is not in a GEMM, and most of that is not
the activations themselves but glue around the matmuls:

* `F.linear` with a bias runs `addmm`, which first *copies* the broadcast bias
  into the output and then runs the GEMM with beta=1: one extra pass over
  every activation of every Linear (10 % of the tower's time).
* `nn.MultiheadAttention`'s inference fast path splits q/k/v with a scalar
  bf16 kernel (`_transform_bias_rescale_qkv`, 7 %), then two `bmm`s and a
  softmax (7 %).
* exact GELU on its own pass over the 3072-wide MLP activations (8-13 %).

`FusedBlock` replaces open_clip's `ResidualAttentionBlock.forward` with the
same math through oneDNN's fused linear (`mkldnn._linear_pointwise`: the bias
and, for the MLP's first layer, the GELU (erf, i.e. exact) applied as
post-ops inside the GEMM kernel; the residual add as a binary post-op on the
output projections) and PyTorch's fused CPU attention
(`scaled_dot_product_attention`). Nothing is approximated: exact GELU stays
exact (oneDNN's gelu_erf), so the accuracy gate sees only bf16 rounding.

The oneDNN op is a private one (inductor emits it for frozen graphs); where
it is missing, `fusable()` says no and the runtime is not offered.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)


def _op(name: str) -> object | None:
    mkldnn = getattr(torch.ops, "mkldnn", None)
    try:
        return getattr(mkldnn, name)
    except (AttributeError, RuntimeError):
        return None


def fusable() -> str | None:
    """None when oneDNN's fused linear is usable here, else why not."""
    if not torch.backends.mkldnn.is_available():
        return "PyTorch was built without oneDNN"
    if _op("_linear_pointwise") is None:
        return "this PyTorch has no mkldnn._linear_pointwise"
    try:
        x = torch.ones(2, 4, dtype=torch.bfloat16)
        w = torch.ones(3, 4, dtype=torch.bfloat16)
        y = torch.ops.mkldnn._linear_pointwise(x, w, None, "gelu", [], "none")
        torch.ops.mkldnn._linear_pointwise.binary(x, y, w, None, "add")
    except RuntimeError as exc:  # pragma: no cover - depends on the build
        return f"oneDNN fused linear failed: {exc}"
    return None


def _linear(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, post: str = "none", algo: str = ""
) -> torch.Tensor:
    """y = post(x @ w.T + b) in one oneDNN call (any leading dims)."""
    y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), w, b, post, [], algo)
    return y.view(*x.shape[:-1], w.shape[0])


def _linear_add(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, residual: torch.Tensor
) -> torch.Tensor:
    """residual + x @ w.T + b in one oneDNN call (the add is a post-op)."""
    r = residual.reshape(-1, residual.shape[-1])
    y = torch.ops.mkldnn._linear_pointwise.binary(x.reshape(-1, x.shape[-1]), r, w, b, "add")
    return y.view(residual.shape)


class FusedBlock(nn.Module):
    """An open_clip ResidualAttentionBlock (pre-norm, batch-first) for inference."""

    ln_1: nn.Module
    ln_2: nn.Module
    qkv_w: torch.Tensor
    qkv_b: torch.Tensor | None
    out_w: torch.Tensor
    out_b: torch.Tensor | None
    fc_w: torch.Tensor
    fc_b: torch.Tensor | None
    proj_w: torch.Tensor
    proj_b: torch.Tensor | None
    act: nn.Module | None

    def __init__(self, block: Any) -> None:
        super().__init__()
        attn = block.attn
        self.ln_1, self.ln_2 = block.ln_1, block.ln_2
        self.heads = int(attn.num_heads)
        self.qkv_w, self.qkv_b = attn.in_proj_weight, attn.in_proj_bias
        self.out_w, self.out_b = attn.out_proj.weight, attn.out_proj.bias
        self.fc_w, self.fc_b = block.mlp.c_fc.weight, block.mlp.c_fc.bias
        self.proj_w, self.proj_b = block.mlp.c_proj.weight, block.mlp.c_proj.bias
        act = block.mlp.gelu
        # GELU runs as a post-op of c_fc; any other activation on its own.
        self.post, self.algo = "none", ""
        self.act = act
        if isinstance(act, nn.GELU):
            self.post, self.algo, self.act = "gelu", act.approximate, None

    def get_weight_dtype(self) -> torch.dtype:
        """open_clip's Transformer asks its first block for the cast dtype."""
        return self.fc_w.dtype

    @staticmethod
    def supports(block: Any) -> bool:
        """Only the plain pre-norm block: no layer scale, no cross-attention."""
        attn = getattr(block, "attn", None)
        return (
            isinstance(attn, nn.MultiheadAttention)
            and attn.batch_first
            and attn._qkv_same_embed_dim
            and isinstance(getattr(block, "ls_1", None), nn.Identity)
            and isinstance(getattr(block, "ls_2", None), nn.Identity)
            and not hasattr(block, "ln_1_kv")
            and isinstance(getattr(block, "mlp", None), nn.Sequential)
        )

    def forward(
        self,
        q_x: torch.Tensor,
        k_x: torch.Tensor | None = None,
        v_x: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if k_x is not None or v_x is not None:
            raise ValueError("FusedBlock is self-attention only")
        b, n, d = q_x.shape
        h = self.heads
        qkv = _linear(self.ln_1(q_x), self.qkv_w, self.qkv_b)
        q, k, v = qkv.view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        mask = attn_mask.to(q.dtype) if attn_mask is not None else None
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        o = o.transpose(1, 2).reshape(b, n, d)
        x = _linear_add(o, self.out_w, self.out_b, q_x)
        y = _linear(self.ln_2(x), self.fc_w, self.fc_b, self.post, self.algo)
        if self.act is not None:
            y = self.act(y)
        return _linear_add(y, self.proj_w, self.proj_b, x)


def fuse_blocks(model: nn.Module) -> int:
    """Swaps every supported ResidualAttentionBlock of `model` (both towers) for a
    FusedBlock sharing its weights; returns how many were swapped."""
    swapped = 0
    for module in model.modules():
        blocks = getattr(module, "resblocks", None)
        if not isinstance(blocks, nn.ModuleList):
            continue
        for i, block in enumerate(blocks):
            if FusedBlock.supports(block):
                blocks[i] = FusedBlock(block)
                swapped += 1
    log.info("fused %d transformer blocks (oneDNN linear post-ops, SDPA)", swapped)
    return swapped
