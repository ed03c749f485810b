"""The text half of a CLIP, for processes that only embed text (a CLI query).

ClipEmbedder builds the whole open_clip model through
`open_clip.create_model_and_transforms`: importing open_clip (timm,
transformers, torchvision), building and loading the image tower too. A text
query needs none of that. ClipTextEmbedder builds the same `CLIP` class from
open_clip's own `model.py` (imported narrowly, see open_clip_narrow) with no
image tower, loads only the text weights of the same checkpoint file, and
tokenises with open_clip's own tokenizer classes. Its text vectors are
bit-identical to ClipEmbedder's (tests/test_text_tower.py).

What it covers is what create_model does for these models: a config that
open_clip builds as a plain `CLIP` (no custom/Hugging Face text tower, no
CoCa), weights from a local checkpoint or a pretrained tag (open_clip's own
`pretrained.download_pretrained`, i.e. the same cache lookup). Anything else
(hf-hub models, random weights, a checkpoint in another format) raises
TextTowerUnavailable, and the caller builds the full model instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from embedder_service import open_clip_narrow
from embedder_service.model import ClipEmbedder, Loaded
from embedder_service.model_spec import OFFLINE_MODEL_NAME, checkpoint_file, looks_like_path

VISUAL_PREFIX = "visual."


class TextTowerUnavailable(Exception):
    """The text-only build does not cover this model; build the full one."""


@dataclass(frozen=True)
class TextSource:
    """Where the text tower comes from: the open_clip config and weights file."""

    config: dict[str, Any]
    checkpoint: str  # local file (a tag is resolved to its cached file)
    display_model: str  # as OpenClipSpec: what Info reports
    display_pretrained: str


def text_source(model: str, pretrained: str, cache_dir: str | None = None) -> TextSource:
    """The config and weights of `model`, as model_spec.resolve names them."""
    model, pretrained = model.strip(), pretrained.strip()
    if model == OFFLINE_MODEL_NAME:
        from offline_models.registry import CLIP_DIR, TOKENIZER_SUBDIR, clip_checkpoint_path
        from offline_models.registry import model_config as offline_config

        weights = clip_checkpoint_path()
        if not weights.is_file():
            raise TextTowerUnavailable(f"{weights} missing")
        config = offline_config(CLIP_DIR / TOKENIZER_SUBDIR)
        return _checked(config, str(weights), OFFLINE_MODEL_NAME, weights.name)
    if model.startswith("hf-hub:") or not pretrained:
        raise TextTowerUnavailable("hf-hub models and random weights use the full model")
    if model.endswith(".json"):
        path = Path(model).expanduser()
        if not path.is_file():
            raise TextTowerUnavailable(f"{path} missing")
        ckpt = checkpoint_file(pretrained)
        assert ckpt is not None
        config = json.loads(path.read_text(encoding="utf-8"))
        return _checked(config, ckpt, path.stem, Path(ckpt).name)
    builtin = open_clip_narrow.open_clip_dir() / "model_configs" / f"{model}.json"
    if not builtin.is_file():
        raise TextTowerUnavailable(f"no built-in open_clip config {model!r}")
    config = json.loads(builtin.read_text(encoding="utf-8"))
    if looks_like_path(pretrained):
        ckpt = checkpoint_file(pretrained)
        assert ckpt is not None
        return _checked(config, ckpt, model, Path(pretrained).name)
    tags = open_clip_narrow.module("pretrained")
    tag_cfg = tags.get_pretrained_cfg(model, pretrained)
    if not tag_cfg:
        raise TextTowerUnavailable(f"unknown tag {pretrained!r}")
    cached = str(tags.download_pretrained(tag_cfg, cache_dir=cache_dir))
    return _checked(config, cached, model, pretrained)


def _checked(config: dict[str, Any], ckpt: str, display: str, shown: str) -> TextSource:
    text_cfg = config.get("text_cfg", {})
    if config.get("custom_text") or "multimodal_cfg" in config or text_cfg.get("hf_model_name"):
        raise TextTowerUnavailable("custom, Hugging Face or CoCa text towers use the full model")
    if Path(ckpt).suffix in (".npz", ".npy"):
        raise TextTowerUnavailable("big_vision weights use the full model")
    return TextSource(config, ckpt, display, shown)


class NoImageTower(nn.Module):
    """Stands where CLIP keeps its image tower; has no weights and encodes nothing."""

    def __init__(self, image_size: Any) -> None:
        super().__init__()
        self.image_size = image_size

    def forward(self, *_args: Any, **_kwargs: Any) -> torch.Tensor:
        raise RuntimeError("this CLIP was built for text only (embedder_service.text_tower)")


def _no_image_tower(_embed_dim: int, vision_cfg: Any, *_args: Any, **_kwargs: Any) -> nn.Module:
    size = vision_cfg.get("image_size", 224) if isinstance(vision_cfg, Mapping) else 224
    return NoImageTower(size)


def _model_module() -> Any:
    """open_clip's model.py, narrow, whose CLIP builds no image tower.

    CLIP.__init__ calls the module's `_build_vision_tower`; in this private copy
    of the module (never `open_clip.model` itself) it returns a NoImageTower.
    """
    model = open_clip_narrow.module("model")
    setattr(model, "_build_vision_tower", _no_image_tower)  # noqa: B010 (a module's global)
    return model


def build_text_clip(source: TextSource, device: str) -> nn.Module:
    """open_clip's CLIP with the text tower loaded from `source`, in eval mode.

    As create_model (precision fp32) + load_checkpoint(strict=True), minus the
    image tower and its weights.
    """
    model_py = _model_module()
    config = copy.deepcopy(source.config)
    config.pop("custom_text", None)
    model = model_py.CLIP(**config)
    model.to(device=device)
    state = text_state_dict(source.checkpoint)
    if "logit_scale" in state and model.logit_scale.ndim != state["logit_scale"].ndim:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    if "logit_bias" in state and model.logit_bias.ndim != state["logit_bias"].ndim:
        state["logit_bias"] = state["logit_bias"].reshape(model.logit_bias.shape)
    if "logit_bias" not in state and model.logit_bias is not None:
        state["logit_bias"] = torch.zeros_like(state["logit_scale"])
    model_py.resize_text_pos_embed(state, model)
    model.load_state_dict(state, strict=True)  # every text weight, nothing else
    model.eval()
    return model


def text_state_dict(checkpoint: str) -> dict[str, torch.Tensor]:
    """The checkpoint's weights minus the image tower's, as open_clip's
    load_state_dict reads them (unwrapping "state_dict", stripping "module.")."""
    if checkpoint.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(checkpoint, framework="pt", device="cpu") as f:
            keys = list(f.keys())
            prefix = "module." if keys and keys[0].startswith("module") else ""
            return {
                k[len(prefix) :]: f.get_tensor(k)
                for k in keys
                if not k[len(prefix) :].startswith(VISUAL_PREFIX)
            }
    loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = loaded["state_dict"] if isinstance(loaded, dict) and "state_dict" in loaded else loaded
    if not isinstance(state, dict):
        raise TextTowerUnavailable("not a state dict checkpoint")
    if next(iter(state))[0:6] == "module":
        state = {k[7:]: v for k, v in state.items()}
    if any(k.startswith("image_encoder.") for k in state):
        raise TextTowerUnavailable("MobileCLIP checkpoints use the full model")
    return {k: v for k, v in state.items() if not k.startswith(VISUAL_PREFIX)}


def text_tokenizer(source: TextSource, cache_dir: str | None = None) -> Any:
    """As open_clip.get_tokenizer for a model config (HF or CLIP BPE tokenizer)."""
    tokenizer_py = open_clip_narrow.module("tokenizer")
    text_cfg = source.config.get("text_cfg", {})
    kwargs = dict(text_cfg.get("tokenizer_kwargs", {}))
    context_length = text_cfg.get("context_length", tokenizer_py.DEFAULT_CONTEXT_LENGTH)
    if text_cfg.get("hf_tokenizer_name", ""):
        if text_cfg.get("tokenizer_mode"):
            raise TextTowerUnavailable("tokenizer modes use transformers' tokenizer")
        try:
            tokenizer = tokenizer_py.HFTokenizer(
                text_cfg["hf_tokenizer_name"],
                context_length=context_length,
                cache_dir=cache_dir,
                tokenizer_mode=None,
                **kwargs,
            )
            tokenizer(["a"])  # the call ClipEmbedder makes, so a refusal comes now
        except NotImplementedError as exc:  # hf_tokenizer refused: transformers needed
            raise TextTowerUnavailable(str(exc)) from exc
        return tokenizer
    if "siglip" in source.display_model.lower():
        raise TextTowerUnavailable("SigLIP tokenizers use the full model")
    return tokenizer_py.SimpleTokenizer(context_length=context_length, **kwargs)


class ClipTextEmbedder(ClipEmbedder):
    """ClipEmbedder's text half: same tokenizer, weights and text vectors; no images."""

    def describe(self) -> str:
        return f"open_clip {self.model_name} text tower ({self.pretrained})"

    def _build(self, device: str) -> Loaded:
        try:
            source = text_source(self.model_name, self.pretrained, self.cache_dir)
            tokenizer = text_tokenizer(source, self.cache_dir)
            model = build_text_clip(source, device)
        except ImportError as exc:  # an open_clip whose modules need more than these
            raise TextTowerUnavailable(f"open_clip's modules alone do not import: {exc}") from exc
        return Loaded(model, None, tokenizer, source.display_model, source.display_pretrained)

    def warmup(self) -> None:
        self.load()
        with torch.inference_mode():
            self.encode_text_batch([self.tokenize(["warm up"])[0][0]])

    def preprocess_image(self, data: bytes) -> torch.Tensor:
        raise RuntimeError("ClipTextEmbedder embeds text only")
