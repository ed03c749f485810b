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

from offline_models.scenes import SceneObject, render


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
) -> Path:
    """Encodes the scenes as CCTV does: keyframe every second, no B-frames.

    Frames are rendered once per distinct scene and reused; `noise` adds
    Gaussian sensor noise (std, in 8-bit levels) so no two frames are equal.
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
    cache: dict[tuple[int, ...], np.ndarray] = {}
    for i in range(round(seconds * fps)):
        t = i / fps
        key = tuple(j for j, a in enumerate(appearances) if a.start_s <= t < a.end_s)
        if key not in cache:
            img = frame_at(t, appearances).resize(size, Image.Resampling.BILINEAR)
            cache[key] = np.asarray(img, dtype=np.float32)
        arr = cache[key]
        if noise:
            arr = arr + rng.normal(0, noise, arr.shape).astype(np.float32)
        frame = av.VideoFrame.from_ndarray(np.clip(arr, 0, 255).astype(np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path
