"""Which files `imgsearch index` reads, and the per-file metadata sidecar."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from imgsearch.errors import InvalidInput

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".jfif"}
)


def find_images(root: Path) -> list[Path]:
    """Image files under root, recursively, in a stable order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        for name in sorted(filenames):
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS and not name.startswith("."):
                found.append(Path(dirpath) / name)
    return found


def load_sidecar(path: Path) -> dict[str, dict[str, Any]]:
    """Per-file metadata from a JSON-lines file: {"file": "a/b.jpg", "metadata": {...}}.

    `file` is relative to the sidecar's folder; lines without `metadata` use
    every key except `file`.
    """
    out: dict[str, dict[str, Any]] = {}
    base = path.parent.resolve()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            name = entry.pop("file")
        except (ValueError, KeyError, AttributeError):
            raise InvalidInput(f"{path}:{n}: expected a JSON object with a 'file' key") from None
        meta = entry.get("metadata", entry)
        out[str((base / name).resolve())] = dict(meta)
    return out
