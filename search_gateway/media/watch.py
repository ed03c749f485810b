"""`imgsearch watch URL --camera-id ID`: a live stream indexed continuously.

The LiveStream reader (media/stream.py) samples in real time and never falls
behind (drops the oldest buffered frame and counts it); this module turns its
frames into ingest items and keeps the ingest stream open until stopped.
Stopping (Ctrl-C, SIGTERM: `stop()`) ends the reader; frames it already
handed over are still ingested and answered before `watch` returns, so
everything reported as stored is stored.

Ids: a watch session is its own "video": `video_sha256` = sha256 of
("live", camera id, start time), offsets count from the start of the watch,
so two watches of one camera never collide and a frame's id is stable.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from search_gateway import domain as d
from search_gateway.ingest import FrameRef, IngestItem, IngestStatus
from search_gateway.media.frames import MEDIA, MEDIA_LIVE_FRAME, frame_metadata
from search_gateway.media.index_video import IngestAPI, aiter_in_thread
from search_gateway.media.provenance import source_key
from search_gateway.media.stream import LiveStream, StreamStats
from search_gateway.thumbnails import make_thumbnail


@dataclass
class WatchReport:
    camera_id: str
    session: str
    added: int = 0
    similar: int = 0
    failed: int = 0
    stats: StreamStats | None = None


def public_uri(url: str) -> str:
    """The stream URL without user:password (stored in every point's payload)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def session_key(camera_id: str, started: datetime) -> str:
    return hashlib.sha256(f"live\x00{camera_id}\x00{d.rfc3339(started)}".encode()).hexdigest()


async def watch(
    api: IngestAPI,
    stream: LiveStream,
    camera_id: str,
    metadata: dict[str, Any] | None = None,
    change_threshold: float | None = None,
    on_outcome: Callable[[WatchReport], None] | None = None,
) -> WatchReport:
    """Ingests the stream's frames until it stops (call `stream.stop()` to end)."""
    started = datetime.now(timezone.utc)
    t0 = time.monotonic()
    session = session_key(camera_id, started)
    report = WatchReport(camera_id, session, stats=stream.stats)
    base = {
        **(metadata or {}),
        d.CAMERA_ID: camera_id,
        MEDIA: MEDIA_LIVE_FRAME,
        source_key(d.TIMESTAMP): "receive_time",
    }

    async def items() -> AsyncIterator[IngestItem]:
        stream.start()
        async for frame in aiter_in_thread(stream.frames(), ahead=2):
            offset = round(time.monotonic() - t0, 3)
            meta = frame_metadata(base, offset)
            meta[d.TIMESTAMP] = d.rfc3339(frame.received_at)
            yield IngestItem(
                data=make_thumbnail(frame.image),
                uri=public_uri(stream.url),
                metadata=meta,
                frame=FrameRef(session, offset),
                frame_change_threshold=change_threshold,
            )

    async for o in api.ingest(items()):
        if o.status is IngestStatus.SIMILAR_FRAME:
            report.similar += 1
        elif o.status is IngestStatus.FAILED:
            report.failed += 1
        else:
            report.added += 1
        if on_outcome is not None:
            on_outcome(report)
    return report
