"""Shared fixtures: tiny locally-built models and test images. No downloads."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config.json, checkpoint.pt) of a random tiny open_clip model."""
    from tests.tiny_models import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


def encode_image(image: Image.Image, fmt: str = "JPEG", **save_args: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **save_args)
    return buf.getvalue()


def solid(color: str | tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, color)


def pattern(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A distinct, deterministic image per seed (so vectors differ)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(arr).resize(size, Image.NEAREST)


def decompression_bomb_png(side: int = 12_000) -> bytes:
    """A real PNG of side x side 1-bit pixels that compresses to a few KB."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    raw = zlib.compress(row * side, 9)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
