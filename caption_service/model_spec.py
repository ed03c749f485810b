"""How a configured BLIP model name becomes a `from_pretrained` source.

Accepted forms of `model`:
* a Hugging Face id, e.g. "Salesforce/blip-image-captioning-large" (downloaded
  into the Hugging Face cache on first use, or found there offline);
* a local directory in the save_pretrained layout (config.json, weights,
  tokenizer and preprocessor files), which never touches the network;
* "offline-tiny": the project's own captioner (offline_models/), which needs
  no download.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imgsearch.model_choice import DEFAULT_BLIP_MODEL

OFFLINE_MODEL_NAME = "offline-tiny"
DEFAULT_MODEL = DEFAULT_BLIP_MODEL


@dataclass(frozen=True)
class BlipSpec:
    """Where `from_pretrained` loads from, and what Info reports."""

    source: str  # Hugging Face id or local directory path
    local: bool  # True: load with local_files_only (never the network)
    display: str  # Hugging Face id, or the local directory's name


def resolve(model: str) -> BlipSpec:
    """Resolves the configured model; a path that does not exist is an error,
    not a hub lookup (so a typo does not turn into a download attempt)."""
    model = model.strip()
    if not model:
        raise ValueError("model must name a Hugging Face id, a directory or 'offline-tiny'")
    if model == OFFLINE_MODEL_NAME:
        from offline_models.registry import offline_blip_dir

        return BlipSpec(str(offline_blip_dir()), True, OFFLINE_MODEL_NAME)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json (not a save_pretrained folder)")
        return BlipSpec(str(path), True, path.resolve().name)
    if _looks_like_path(model):
        raise FileNotFoundError(f"model directory {path} does not exist")
    return BlipSpec(model, False, model)


def _looks_like_path(value: str) -> bool:
    # Hugging Face ids are "org/name": exactly one slash, no leading dot or slash.
    return value.startswith(("/", ".", "~")) or value.count("/") > 1 or "\\" in value
