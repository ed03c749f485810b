"""Frames sampled from video files, decoded through the file with PyAV.

Why it is shaped this way:

* **Flat memory.** Packets stream from the demuxer; at most one GOP of
  *compressed* packets is held (a look-ahead, capped at `_GOP_BUFFER_BYTES`),
  and only sampled frames are converted to RGB, already scaled down by
  swscale to `max_side` (384 px: the thumbnail size, and more than CLIP's 224).
* **Decode only what sampling needs.** For each GOP (keyframe to keyframe) the
  sampler knows which sample times fall inside it. When the keyframe alone
  serves them (CCTV: a keyframe every second, sampling every second or
  slower) only the keyframe is decoded, ~1/25 of the work at 25 fps. Otherwise
  the GOP is decoded from its keyframe, so every decoded frame has its
  references. This is the keyframe-only / seek-free strategy; an explicit
  seek would save only demuxing, which is cheap next to decoding.
* **Damage keeps what came before.** A corrupt packet or a truncated file ends
  the iteration; frames already yielded stay valid and `report.error` says
  why and how far decoding got ("truncated: decoded 312.0 s of 600.0 s").
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import av
from PIL import Image

from search_gateway.media.exif import FileMetadata
from search_gateway.media.ids import DEFAULT_INTERVAL_S

log = logging.getLogger(__name__)

FRAME_SIDE = 384
_GOP_BUFFER_BYTES = 32 * 1024 * 1024
_ISO6709 = re.compile(r"^([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)?")


@dataclass(frozen=True)
class SampledFrame:
    """One sampled frame: its offset from the start of the video and its pixels."""

    offset_s: float
    image: Image.Image


@dataclass
class VideoReport:
    """What sampling one video did; `error` is set when it stopped early."""

    source: str
    duration_s: float | None = None
    covered_s: float = 0.0
    decoded: int = 0
    sampled: int = 0
    keyframe_only_gops: int = 0
    full_gops: int = 0
    metadata: FileMetadata | None = None
    error: str | None = None


def parse_iso6709(text: str) -> tuple[float, float, float | None] | None:
    """'+48.8577+002.2950+035.000/' -> (lat, lon, alt); None when malformed."""
    m = _ISO6709.match(text.strip())
    if not m:
        return None
    lat, lon = float(m.group(1)), float(m.group(2))
    alt = float(m.group(3)) if m.group(3) else None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return lat, lon, alt


def container_metadata(tags: dict[str, str]) -> FileMetadata | None:
    """Creation time and location tag of a container (MP4/MOV/MKV) as FileMetadata."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    created = tags.get("creation_time") or tags.get("com.apple.quicktime.creationdate")
    if created:
        try:
            ts = datetime.fromisoformat(created.strip().replace("Z", "+00:00"))
            if ts.year < 1971:  # 1904/1970 epochs: the camera never set its clock
                raise ValueError(f"{created!r} is an epoch default")
            if ts.tzinfo is None:
                values["timestamp_is_local"] = True
                ts = ts.replace(tzinfo=timezone.utc)
            values["timestamp"] = ts.astimezone(timezone.utc)
        except ValueError as exc:
            log.debug("video creation_time ignored: %s", exc)
            problems.append(f"creation_time: {exc}")
    loc = tags.get("location") or tags.get("com.apple.quicktime.location.ISO6709")
    if loc:
        parsed = parse_iso6709(loc)
        if parsed is None:
            log.debug("video location ignored: %r", loc)
            problems.append(f"location: malformed {loc[:40]!r}")
        else:
            values["lat"], values["lon"], alt = parsed
            if alt is not None:
                values["altitude_m"] = alt
    if not values and not problems:
        return None
    return FileMetadata(source="video", problems=tuple(problems), **values)


def to_image(frame: av.VideoFrame, max_side: int) -> Image.Image:
    """RGB image of a decoded frame, scaled by swscale so the longest side <= max_side."""
    w, h = frame.width, frame.height
    scale = min(1.0, max_side / max(w, h))
    tw, th = max(2, round(w * scale)), max(2, round(h * scale))
    return frame.reformat(width=tw, height=th, format="rgb24").to_image()


class VideoSampler:
    """Iterates the frames of one video every `interval_s` seconds.

    Iterate once; afterwards `report` tells how it went. Never raises for a
    bad video: open failures and damage end the iteration with `report.error`.
    """

    def __init__(
        self,
        source: str | Path,
        interval_s: float = DEFAULT_INTERVAL_S,
        max_side: int = FRAME_SIDE,
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"sampling interval must be > 0 s, got {interval_s}")
        self.source = str(source)
        self.interval_s = interval_s
        self.max_side = max_side
        self.report = VideoReport(source=self.source)

    def __iter__(self) -> Iterator[SampledFrame]:
        try:
            container = av.open(self.source, mode="r")
        except (av.FFmpegError, OSError) as exc:
            self.report.error = f"cannot open video: {exc}"
            return
        try:
            yield from self._sample(container)
        finally:
            container.close()

    def _sample(self, container: Any) -> Iterator[SampledFrame]:
        rep = self.report
        rep.metadata = container_metadata(dict(container.metadata))
        if not container.streams.video:
            rep.error = "no video stream"
            return
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        tb = float(stream.time_base or 0) or 1 / 90000
        start = float(stream.start_time or 0) * tb
        if stream.duration:
            rep.duration_s = float(stream.duration) * tb
        elif container.duration:
            rep.duration_s = container.duration / 1_000_000
        rate = float(stream.average_rate or 25) or 25.0
        tol = 0.5 / rate  # half a frame: a frame this close to a sample time serves it
        self._next = 0.0
        gop: list[Any] = []
        gop_bytes = 0
        streaming = False  # a GOP too large to buffer: decode it as it comes
        try:
            for packet in container.demux(stream):
                if packet.dts is None and packet.size == 0:
                    continue  # demuxer's flush packet
                rep.covered_s = max(rep.covered_s, _packet_time(packet, tb) - start)
                if packet.is_keyframe and (gop or streaming):
                    k1 = _packet_time(packet, tb) - start
                    yield from self._decode_gop(stream, gop, k1, start, tb, tol, streaming)
                    gop, gop_bytes, streaming = [], 0, False
                if streaming:
                    yield from self._decode_packets(stream, [packet], start, tol)
                    continue
                gop.append(packet)
                gop_bytes += packet.size
                if gop_bytes > _GOP_BUFFER_BYTES:
                    yield from self._decode_packets(stream, gop, start, tol)
                    gop, gop_bytes, streaming = [], 0, True
                    rep.full_gops += 1
            yield from self._decode_gop(stream, gop, math.inf, start, tb, tol, streaming)
            yield from self._decode_packets(stream, [None], start, tol)  # flush the decoder
        except av.FFmpegError as exc:
            rep.error = f"corrupt video at {rep.covered_s:.1f} s: {exc}"
            return
        if rep.duration_s is not None and rep.covered_s < rep.duration_s - max(
            self.interval_s, 1.0
        ) - 2 / rate:
            rep.error = f"truncated: decoded {rep.covered_s:.1f} s of {rep.duration_s:.1f} s"
        if rep.decoded == 0 and rep.error is None:
            rep.error = "no decodable frames"

    def _decode_gop(
        self,
        stream: Any,
        gop: list[Any],
        k1: float,
        start: float,
        tb: float,
        tol: float,
        streaming: bool,
    ) -> Iterator[SampledFrame]:
        """Decodes the keyframe only when it serves every sample time before `k1`."""
        if streaming or not gop:
            return
        k0 = _packet_time(gop[0], tb) - start
        nxt = self._next
        if k0 >= nxt - tol:  # the keyframe serves the pending sample time
            nxt = self._after(k0, tol)
        if nxt >= k1 - tol and gop[0].is_keyframe:
            self.report.keyframe_only_gops += 1
            yield from self._decode_packets(stream, gop[:1], start, tol)
        else:
            self.report.full_gops += 1
            yield from self._decode_packets(stream, gop, start, tol)

    def _after(self, t: float, tol: float) -> float:
        """The first sample time on the grid strictly after the one `t` served."""
        return (math.floor((t + tol) / self.interval_s) + 1) * self.interval_s

    def _decode_packets(
        self, stream: Any, packets: list[Any], start: float, tol: float
    ) -> Iterator[SampledFrame]:
        rep = self.report
        for packet in packets:
            for frame in stream.decode(packet):
                rep.decoded += 1
                t = (frame.time if frame.time is not None else rep.covered_s) - start
                rep.covered_s = max(rep.covered_s, t)
                if t >= self._next - tol:
                    self._next = self._after(t, tol)
                    rep.sampled += 1
                    image = to_image(frame, self.max_side)
                    yield SampledFrame(offset_s=round(max(t, 0.0), 3), image=image)


def _packet_time(packet: Any, tb: float) -> float:
    ts = packet.pts if packet.pts is not None else packet.dts
    return float(ts or 0) * tb
