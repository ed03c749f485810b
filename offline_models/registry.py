"""Where the committed offline models live and how open_clip / transformers find them.

open_clip only knows model names from JSON configs, and the config has to name the
tokenizer by absolute path (``hf_tokenizer_name`` -> ``AutoTokenizer.from_pretrained``).
The committed template therefore cannot be used as is: :func:`register_offline_clip`
writes a patched copy pointing at the installed tokenizer directory and registers it.
Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from imgsearch.model_choice import OFFLINE_MODEL_NAME

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_TEMPLATE = PACKAGE_DIR / "configs" / f"{OFFLINE_MODEL_NAME}.json"
WEIGHTS_DIR = PACKAGE_DIR / "weights"
CLIP_DIR = WEIGHTS_DIR / "clip"
CLIP_CHECKPOINT_NAME = f"{OFFLINE_MODEL_NAME}.safetensors"
TOKENIZER_SUBDIR = "tokenizer"
BLIP_DIR = WEIGHTS_DIR / "blip"

_lock = threading.Lock()


def clip_checkpoint_path(clip_dir: Path = CLIP_DIR) -> Path:
    """The fp16 open_clip state dict inside ``clip_dir``."""
    return clip_dir / CLIP_CHECKPOINT_NAME


def model_config(tokenizer_dir: Path) -> dict[str, Any]:
    """The template config with the tokenizer path and vocabulary size filled in."""
    cfg: dict[str, Any] = json.loads(CONFIG_TEMPLATE.read_text(encoding="utf-8"))
    vocab_file = tokenizer_dir / "tokenizer.json"
    if vocab_file.is_file():
        vocab = json.loads(vocab_file.read_text(encoding="utf-8"))["model"]["vocab"]
        cfg["text_cfg"]["vocab_size"] = len(vocab)
    cfg["text_cfg"]["hf_tokenizer_name"] = str(tokenizer_dir.resolve())
    return cfg


def register_config(tokenizer_dir: Path, name: str = OFFLINE_MODEL_NAME) -> str:
    """Register ``name`` with open_clip, its tokenizer being ``tokenizer_dir``.

    The patched JSON goes to a per-user temp folder keyed by the tokenizer path (the
    package folder may be read-only), written atomically so concurrent processes agree.
    """
    import open_clip

    cfg = model_config(tokenizer_dir)
    with _lock:
        current = open_clip.get_model_config(name)
        if current is not None and current == cfg:
            return name
        key = hashlib.sha256(f"{tokenizer_dir.resolve()}|{name}".encode()).hexdigest()[:16]
        uid = os.getuid() if hasattr(os, "getuid") else 0
        cfg_dir = Path(tempfile.gettempdir()) / f"imgsearch-offline-models-{uid}" / key
        cfg_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = cfg_dir / f"{name}.json"
        tmp = cfg_dir / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        os.replace(tmp, cfg_path)
        open_clip.add_model_config(cfg_path)
    return name


def register_offline_clip() -> tuple[str, Path]:
    """Register the committed tiny CLIP; returns ``(open_clip_model_name, checkpoint_path)``.

    Afterwards ``open_clip.create_model_and_transforms(name, pretrained=str(path))`` and
    ``open_clip.get_tokenizer(name)`` work offline and give the trained model.
    """
    ckpt = clip_checkpoint_path()
    tok_dir = CLIP_DIR / TOKENIZER_SUBDIR
    if not ckpt.is_file() or not (tok_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"offline CLIP weights missing under {CLIP_DIR}")
    return register_config(tok_dir), ckpt


def offline_blip_dir() -> Path:
    """Directory for ``BlipForConditionalGeneration/BlipProcessor.from_pretrained``."""
    if not (BLIP_DIR / "config.json").is_file():
        raise FileNotFoundError(f"offline BLIP weights missing under {BLIP_DIR}")
    return BLIP_DIR
