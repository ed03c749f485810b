"""Video indexing throughput, side by side in one run (issue 13).

A 1080p H.264 file is generated the way CCTV cameras encode (25 fps, a
keyframe every second, no B-frames, ~3 Mbit/s of textured scene), then:

* decode only: keyframe-only sampling at 1 s (what indexing does) and, for
  reference, decoding every frame;
* embed only: the sampled frames (384 px WebP, as the pipeline sends them)
  through the in-process embedder;
* the decode-and-embed bound: 1 / (decode time + embed time) per second of
  video, since both share the same CPU cores;
* end to end: `index_video` into an embedded gateway (decode, sample, embed,
  change filter, store, thumbnails), as `imgsearch index` runs it.

Rates are "x real time": seconds of video per second of wall time, and (in
brackets) per second of this process's CPU time, which is what an idle machine
would give when the machine is shared with other work. Targets:
offline model >= 20x, end to end >= 0.8 x the bound. Also: EXIF reading as a
share of photo ingest time (target < 5 %).

    python bench/video_ingest.py [--seconds 60] [--models offline-tiny,ViT-B-32]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def clip(seconds: int, folder: Path) -> Path:
    """The CCTV clip, generated once per length (cached in `folder`)."""
    from offline_training.scenes import SceneObject
    from tests.synthetic_video import Appearance, encode_cctv

    path = folder / f"cctv-1080p-{seconds}s.mp4"
    if path.exists():
        return path
    events = [
        Appearance(SceneObject("circle", "red", "large", "centre"), s, s + 12)
        for s in range(5, seconds, 30)
    ]
    tmp = path.with_suffix(".tmp.mp4")
    encode_cctv(
        tmp, seconds, events, fps=25, size=(1920, 1080), noise=2.0, texture=0.5,
        creation_time=datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
        container_options={"movflags": "+faststart"},
    )  # fmt: skip
    tmp.rename(path)
    return path


class Clock:
    """Wall and process CPU time of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def decode_rates(path: Path, seconds: float) -> tuple[Clock, Clock, list[bytes]]:
    """(keyframe sampling + WebP clock, all-frames decode clock, sampled frames)."""
    from search_gateway.media.video import VideoSampler
    from search_gateway.thumbnails import make_thumbnail

    with Clock() as sample:
        encoded = [make_thumbnail(f.image) for f in VideoSampler(path, 1.0)]
    with Clock() as full, av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = sum(1 for _ in container.decode(stream))
    assert n >= seconds * 25 - 1
    return sample, full, encoded


def build_core(model: str, folder: Path):  # type: ignore[no-untyped-def]
    from search_gateway.assemble import build_core as build
    from search_gateway.settings import GatewaySettings

    settings = GatewaySettings(  # pretrained "": random weights for ViT-B-32, offline for ours
        data_dir=str(folder), collection="bench", model=model, pretrained="",
        device="cpu", captions=False, metrics_port=-1,
    )  # fmt: skip
    return asyncio.run(build(settings, with_captioner=False))


async def embed_clock(core, frames: list[bytes]) -> Clock:  # type: ignore[no-untyped-def]
    """Embedding the sampled frames through the gateway's embedder (batches of 32)."""
    await core.embedder.embed_images(frames[:8])  # warm
    with Clock() as clock:
        for s in range(0, len(frames), 32):
            await core.embedder.embed_images(frames[s : s + 32])
    return clock


async def end_to_end(core, path: Path) -> tuple[Clock, int]:  # type: ignore[no-untyped-def]
    from search_gateway.media.index_video import index_video

    await core.open()
    with Clock() as clock:
        report = await index_video(core, path)
    assert report.error is None, report.error
    return clock, report.added


def exif_share(n: int = 24) -> tuple[float, float]:
    """(EXIF read ms per photo, photo ingest ms per photo with the offline model)."""
    from search_gateway.media.exif import read_exif

    photos = [_camera_jpeg(1920, 1440, seed) for seed in range(n)]
    started = time.perf_counter()
    for p in photos:
        assert read_exif(p) is not None
    exif_ms = (time.perf_counter() - started) * 1000 / n
    with tempfile.TemporaryDirectory() as tmp:
        core = build_core("offline-tiny", Path(tmp))
        ingest_ms = asyncio.run(_ingest_ms(core, photos))
    return exif_ms, ingest_ms


async def _ingest_ms(core, photos: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    from search_gateway.ingest import IngestItem

    await core.open()

    async def items() -> AsyncIterator[IngestItem]:
        for i, p in enumerate(photos):
            yield IngestItem(data=p, uri=f"photo/{i}.jpg")

    started = time.perf_counter()
    outcomes = [o async for o in core.ingest(items())]
    ms = (time.perf_counter() - started) * 1000 / len(photos)
    await core.close()
    assert all(o.status.value == "added" for o in outcomes), outcomes[0]
    return ms


def _camera_jpeg(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([127 + 100 * np.sin(x / (37 + seed % 11) + c) * np.cos(y / 53 - c)
                     for c in (0.0, 1.3, 2.6)], axis=-1)  # fmt: skip
    noise = rng.normal(0, 12, (height // 4, width // 4, 3)).repeat(4, 0).repeat(4, 1)
    img = Image.fromarray(np.clip(base + noise[:height, :width], 0, 255).astype(np.uint8))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R5"
    exif.get_ifd(0x8769)[0x9003] = f"2024:05:01 12:{seed % 60:02d}:00"
    exif.get_ifd(0x8769)[0x9011] = "+02:00"
    exif.get_ifd(0x8769)[0x927C] = bytes(rng.integers(0, 255, 8000, dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=int, default=60, help="length of the generated clip")
    p.add_argument("--models", default="offline-tiny,ViT-B-32")
    p.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "imgsearch-bench-video"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))  # tests.synthetic_video makes the clip
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    path = clip(args.seconds, cache)
    mbit = path.stat().st_size * 8 / args.seconds / 1e6
    print(f"clip: {path.name}, {mbit:.1f} Mbit/s, made in {time.perf_counter() - t0:.0f} s;"
          f" {os.cpu_count()} CPUs (shared machine)")  # fmt: skip
    sec = float(args.seconds)
    sample, full, frames = decode_rates(path, sec)
    print(f"decode only: keyframe sampling at 1 s (+ 384 px WebP) {sec / sample.wall:.1f}x real"
          f" time [{sec / sample.cpu:.1f}x per CPU s]; every frame decoded"
          f" {sec / full.wall:.1f}x [{sec / full.cpu:.1f}x]")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rows = []
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            core = build_core(model, Path(tmp))
            embed = asyncio.run(embed_clock(core, frames))
            e2e, added = asyncio.run(end_to_end(core, path))
            asyncio.run(core.close())
        # One frame per second of video: the bound is decode + embed per video second.
        bound_wall = sec / (sample.wall + embed.wall)
        bound_cpu = sec / (sample.cpu + embed.cpu)
        rows.append((model, len(frames) / embed.wall, bound_wall, sec / e2e.wall, bound_cpu,
                     sec / e2e.cpu, added))  # fmt: skip
    print()
    print(f"{'model':<14} {'embed f/s':>9} {'bound x':>8} {'e2e x':>7} {'e2e/bound':>9} "
          f"{'bound/CPU':>9} {'e2e/CPU':>8} {'points':>6} {'1 h takes':>10}")  # fmt: skip
    for model, fps, bound, e2e, bound_cpu, e2e_cpu, added in rows:
        print(f"{model:<14} {fps:>9.1f} {bound:>8.1f} {e2e:>7.1f} {e2e / bound:>9.2f} "
              f"{bound_cpu:>9.1f} {e2e_cpu:>8.1f} {added:>6} {60 / e2e:>7.1f} min")  # fmt: skip
    exif_ms, ingest_ms = exif_share()
    print()
    print(f"EXIF: {exif_ms:.2f} ms per photo vs photo ingest {ingest_ms:.1f} ms per photo"
          f" (offline model) = {100 * exif_ms / ingest_ms:.1f} %")  # fmt: skip


if __name__ == "__main__":
    main()
