"""A video file as frame images ready to ingest: pixels, id key and metadata.

Each sampled frame leaves here as a small encoded image (WebP, longest side
384 px), which is at once what the embedder reads and the point's thumbnail:
one encode per frame, and a frame never travels larger than ~10 KB, so a
video of any length crosses the gateway as a stream of small messages
(docs/decisions.md, "Where video is decoded").

Metadata of a frame (precedence as for photos, media/provenance.py):
`timestamp` = start time + offset (start from the user, else the container's
creation_time, else the file's mtime, flagged), `location`/`altitude_m` from
the container's location tag, plus the fields that make a frame findable and
groupable: `video_sha256`, `frame_offset_s`, `media` = "video_frame".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from search_gateway import domain as d
from search_gateway.media.ids import DEFAULT_INTERVAL_S, file_sha256, frame_key
from search_gateway.media.provenance import SOURCE_MTIME, TIMESTAMP, merge_metadata, source_key
from search_gateway.thumbnails import make_thumbnail

log = logging.getLogger(__name__)

VIDEO_SHA256 = d.VIDEO_SHA256
FRAME_OFFSET = d.FRAME_OFFSET
FRAME_END = d.FRAME_END
TIMESTAMP_END = d.TIMESTAMP_END
MEDIA = "media"
MEDIA_VIDEO_FRAME = "video_frame"
MEDIA_LIVE_FRAME = "live_frame"


@dataclass(frozen=True)
class FrameImage:
    """One frame to ingest: encoded pixels, its content-derived key, its metadata."""

    data: bytes
    uri: str
    key: str  # sha256 hex of (video content, offset): the point id derives from it
    offset_s: float
    metadata: dict[str, Any]


def _rfc3339(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def frame_metadata(base: dict[str, Any], offset_s: float) -> dict[str, Any]:
    """The frame's own metadata: the video's, with timestamp moved by the offset.

    (`video_sha256` / `frame_offset_s` are the gateway's, from the request's frame info.)
    """
    out = dict(base)
    start = base.get(TIMESTAMP)
    if isinstance(start, str):
        try:
            t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
            out[TIMESTAMP] = _rfc3339(t0 + timedelta(seconds=offset_s))
        except ValueError:
            pass  # a user's odd timestamp stays as given
    return out


def with_end(metadata: dict[str, Any], end_s: float) -> dict[str, Any]:
    """`frame_end_s` / `timestamp_end`: the last sampled moment a kept frame stands for."""
    out: dict[str, Any] = {FRAME_END: end_s}
    start = metadata.get(TIMESTAMP)
    offset = metadata.get(FRAME_OFFSET)
    if isinstance(start, str) and isinstance(offset, (int, float)):
        try:
            t = datetime.fromisoformat(start.replace("Z", "+00:00"))
            out[TIMESTAMP_END] = _rfc3339(t + timedelta(seconds=end_s - offset))
        except ValueError:
            pass
    return out


class VideoFrames:
    """Iterates FrameImages of one video file; `sampler.report` tells how it went."""

    def __init__(
        self,
        path: str | Path,
        user_metadata: dict[str, Any] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        uri: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.uri = uri or str(self.path)
        self.user_metadata = dict(user_metadata or {})
        from search_gateway.media.video import VideoSampler  # PyAV only when decoding

        self.sampler = VideoSampler(self.path, interval_s)
        self.sha256 = ""

    def __iter__(self) -> Iterator[FrameImage]:
        try:
            self.sha256 = file_sha256(self.path)
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            self.sampler.report.error = f"cannot read video: {exc}"
            return
        base: dict[str, Any] | None = None
        for frame in self.sampler:
            if base is None:  # container tags are known once the file is open
                base = merge_metadata(self.user_metadata, self.sampler.report.metadata, mtime)
                base[MEDIA] = MEDIA_VIDEO_FRAME
                if base.get(source_key(TIMESTAMP)) == SOURCE_MTIME:
                    log.debug("%s: no creation time, frame times count from its mtime", self.uri)
            yield FrameImage(
                data=make_thumbnail(frame.image),
                uri=self.uri,
                key=frame_key(self.sha256, frame.offset_s),
                offset_s=frame.offset_s,
                metadata=frame_metadata(base, frame.offset_s),
            )
