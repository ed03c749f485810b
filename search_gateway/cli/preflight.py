"""Before loading a model that comes from the Hugging Face hub: are its
weights cached, or can the hub be reached? If neither, say so in one sentence
with the ways out, within seconds, instead of a minute of download retries
and a traceback (what a first run without network used to show)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

from imgsearch.errors import FailedPrecondition
from imgsearch.model_choice import OFFLINE_MODEL_NAME
from search_gateway.settings import GatewaySettings

CONNECT_TIMEOUT_S = 3.0
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class WeightsUnavailable(FailedPrecondition):
    """The model's weights are neither cached nor downloadable."""


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached(repo_id: str) -> bool:
    """Whether some snapshot of the hub repo holds weight files."""
    folder = hub_cache() / f"models--{repo_id.strip('/').replace('/', '--')}" / "snapshots"
    return folder.is_dir() and any(
        p.suffix in WEIGHT_SUFFIXES for p in folder.glob("*/*") if p.is_file() or p.is_symlink()
    )


def hub_reachable() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    try:
        with socket.create_connection(
            (url.hostname or "huggingface.co", url.port or 443), timeout=CONNECT_TIMEOUT_S
        ):
            return True
    except OSError:
        return False


def clip_repo(model: str, pretrained: str) -> str | None:
    """The hub repo CLIP weights come from; None when they are local."""
    if model == OFFLINE_MODEL_NAME or model.endswith(".json"):
        return None
    if model.startswith("hf-hub:"):
        return model[len("hf-hub:") :]
    if not pretrained or Path(pretrained).expanduser().exists():
        return None
    cfg = _open_clip_pretrained().get_pretrained_cfg(model, pretrained)
    repo = (cfg or {}).get("hf_hub")
    return str(repo).strip("/") if repo else None


def _open_clip_pretrained() -> ModuleType:
    """open_clip's table of pretrained weights, without `import open_clip`
    (which imports torch, torchvision and transformers: seconds). Loads only
    its pretrained.py (and the two small modules it needs) under a stand-in
    package, so a refusal comes in well under a second."""
    name = "_imgsearch_open_clip_table"
    if f"{name}.pretrained" in sys.modules:
        return sys.modules[f"{name}.pretrained"]
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FailedPrecondition("open_clip is not installed")
    package = ModuleType(name)
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = package
    return importlib.import_module(f"{name}.pretrained")


def blip_repo(model: str) -> str | None:
    if model == OFFLINE_MODEL_NAME or Path(model).expanduser().exists():
        return None
    return model


def check_clip(s: GatewaySettings) -> None:
    e = s.embedder
    repo = clip_repo(e.model, e.pretrained)
    if repo is None or cached(repo) or hub_reachable():
        return
    raise WeightsUnavailable(
        f"the CLIP weights {e.model}/{e.pretrained} are not in the Hugging Face cache "
        f"({hub_cache()}) and the hub cannot be reached: use the bundled model with "
        f"--model {OFFLINE_MODEL_NAME}, pass a local checkpoint with --pretrained FILE, "
        f"or download '{repo}' into that cache on a connected machine"
    )


def check_blip(s: GatewaySettings) -> None:
    model = s.captioner.model
    repo = blip_repo(model)
    if repo is None or cached(repo) or hub_reachable():
        return
    raise WeightsUnavailable(
        f"the BLIP model {model} is not in the Hugging Face cache ({hub_cache()}) and the hub "
        f"cannot be reached: use --caption-model {OFFLINE_MODEL_NAME}, a local "
        "save_pretrained folder with --caption-model DIR, or download it into that cache "
        "on a connected machine"
    )
