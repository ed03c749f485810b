"""How a configured model name becomes open_clip's create_model arguments.

Accepted forms of `model` (with `pretrained`):
* an open_clip architecture, e.g. "ViT-B-32" with a tag ("laion2b_s34b_b79k")
  or a local checkpoint file path, or "" for random weights;
* "hf-hub:org/name" (open_clip downloads config and weights, or finds them in
  the Hugging Face cache);
* a path to an open_clip model config JSON (a custom architecture), with
  `pretrained` a local checkpoint file;
* "offline-tiny": the project's own model trained on synthetic scenes
  (offline_models/), which needs no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

OFFLINE_MODEL_NAME = "offline-tiny"


@dataclass(frozen=True)
class OpenClipSpec:
    """Arguments for open_clip.create_model_and_transforms / get_tokenizer."""

    name: str  # the name open_clip knows (after registering a config)
    pretrained: str | None  # tag, checkpoint path, or None for random weights
    display_model: str  # what Info reports as `model`
    display_pretrained: str  # what Info reports as `pretrained`


def resolve(model: str, pretrained: str) -> OpenClipSpec:
    """Resolves the configured model; registers custom configs with open_clip."""
    import open_clip

    model = model.strip()
    pretrained = pretrained.strip()
    if model == OFFLINE_MODEL_NAME:
        from offline_models.registry import register_offline_clip

        name, checkpoint = register_offline_clip()
        return OpenClipSpec(name, str(checkpoint), OFFLINE_MODEL_NAME, checkpoint.name)
    if model.endswith(".json"):
        config = Path(model).expanduser()
        if not config.is_file():
            raise FileNotFoundError(f"model config {config} does not exist")
        open_clip.add_model_config(config)
        ckpt = checkpoint_file(pretrained)
        return OpenClipSpec(config.stem, ckpt, config.stem, Path(ckpt).name if ckpt else "")
    if model.startswith("hf-hub:"):
        return OpenClipSpec(model, None, model, pretrained)
    if model not in open_clip.list_models():
        raise ValueError(
            f"unknown open_clip model {model!r}; use an architecture from "
            "open_clip.list_models(), 'hf-hub:org/name', a config .json path, "
            f"or {OFFLINE_MODEL_NAME!r}"
        )
    if not pretrained:
        return OpenClipSpec(model, None, model, "")
    if looks_like_path(pretrained):
        ckpt = checkpoint_file(pretrained)
        return OpenClipSpec(model, ckpt, model, Path(pretrained).name)
    known = open_clip.list_pretrained_tags_by_model(model)
    if pretrained not in known:
        raise ValueError(
            f"unknown pretrained tag {pretrained!r} for {model}; known tags: {', '.join(known)}"
        )
    return OpenClipSpec(model, pretrained, model, pretrained)


def looks_like_path(value: str) -> bool:
    return "/" in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))


def checkpoint_file(pretrained: str) -> str | None:
    if not pretrained:
        return None
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    return str(path)
