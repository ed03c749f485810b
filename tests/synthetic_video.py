"""Synthetic CCTV video made from the project's scenes, encoded with PyAV.

A fixed camera looks at a static scene (the scene generator's shapes on a
plain background, plus a little sensor noise); objects enter and leave at
known times. Encoded like CCTV: H.264, constant frame rate, a keyframe every
second, no B-frames. Used by the video tests, the quality test and
bench/video_ingest.py.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av
import numpy as np
from PIL import Image

from offline_training.scenes import SceneObject, render


@dataclass(frozen=True)
class Appearance:
    """`obj` is in view from `start_s` (inclusive) to `end_s` (exclusive)."""

    obj: SceneObject
    start_s: float
    end_s: float


BACKDROP = (SceneObject("square", "white", "small", "top"),)


def frame_at(
    t: float,
    appearances: Sequence[Appearance],
    backdrop: Sequence[SceneObject] = BACKDROP,
    background: str = "gray",
) -> Image.Image:
    """The 64x64 scene at time t (render jitter fixed per object, so a static scene is static)."""
    objects = list(backdrop) + [a.obj for a in appearances if a.start_s <= t < a.end_s]
    return render(objects, background, random.Random(7))


def encode_cctv(
    path: Path,
    seconds: float,
    appearances: Sequence[Appearance] = (),
    *,
    fps: int = 5,
    size: tuple[int, int] = (128, 96),
    noise: float = 2.0,
    creation_time: datetime | None = None,
    location: str | None = None,
    codec: str = "libx264",
    extra_options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    texture: float = 0.0,
) -> Path:
    """Encodes the scenes as CCTV does: keyframe every second, no B-frames.

    Frames are rendered once per distinct scene and reused; `noise` adds
    Gaussian sensor noise (std, in 8-bit levels) so no two frames are equal;
    `texture` (0..1) blends in a fixed photo-like texture so keyframes cost
    what a real scene's do (bench: ~1 Mbit per 1080p keyframe).
    """
    rng = np.random.default_rng(0)
    out = av.open(str(path), mode="w", options=container_options or {})
    if creation_time is not None:
        out.metadata["creation_time"] = creation_time.strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    if location is not None:
        out.metadata["location"] = location
    opts = {"g": str(fps), "bf": "0", "preset": "ultrafast", "keyint_min": str(fps)}
    if codec != "libx264":
        opts = {"g": str(fps)}
    stream = out.add_stream(codec, rate=fps, options={**opts, **(extra_options or {})})
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    # Noise comes from a small bank of planes: drawing fresh Gaussian noise for
    # every 1080p frame would cost more than encoding it.
    shape = (size[1], size[0], 3)
    bank = [rng.normal(0, noise, shape).astype(np.int16) for _ in range(7)] if noise else []
    cache: dict[tuple[int, ...], np.ndarray] = {}
    detail = _texture(size, rng) if texture else None
    for i in range(round(seconds * fps)):
        t = i / fps
        key = tuple(j for j, a in enumerate(appearances) if a.start_s <= t < a.end_s)
        if key not in cache:
            img = frame_at(t, appearances).resize(size, Image.Resampling.BILINEAR)
            scene = np.asarray(img, dtype=np.float32)
            if detail is not None:
                scene = (1 - texture) * scene + texture * detail
            cache[key] = scene.astype(np.int16)
        arr = cache[key]
        if bank:
            arr = arr + bank[i % len(bank)]
        frame = av.VideoFrame.from_ndarray(np.clip(arr, 0, 255).astype(np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


def _texture(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth gradients plus blocky grain: compresses like a real scene, not like noise."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack(
        [127 + 90 * np.sin(x / (23 + 7 * c) + c) * np.cos(y / (31 + 5 * c) - c) for c in range(3)],
        axis=-1,
    )
    grain = rng.normal(0, 25, (h // 4 + 1, w // 4 + 1, 3)).repeat(4, 0).repeat(4, 1)[:h, :w]
    return np.clip(base + grain, 0, 255).astype(np.float32)
