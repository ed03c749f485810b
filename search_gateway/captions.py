"""Captions that fill in behind indexing.

BLIP is 30-100x slower than CLIP on a CPU, so captioning must never hold up
indexing. In "deferred" mode an image is stored (and searchable by vector)
as soon as its vector is ready, with `caption_pending=true`; its bytes wait in
a spool folder under the data dir. `CaptionBackfill` then captions pending
points at the captioner's own pace (read from the spool, or from the point's
path when the gateway may read it), stores each caption, and removes the
spooled copy. The gateway server runs it in the background; the CLI runs it
after `index --with-captions` (or later, with `imgsearch recaption`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imgsearch.errors import ImgsearchError, Unavailable
from search_gateway import domain as d
from search_gateway.atomic import write_atomically
from search_gateway.model_clients.base import Captioner
from search_gateway.tenancy import TenantScope

log = logging.getLogger(__name__)


class CaptionSpool:
    """Image bytes waiting for a caption, one file per point id."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, point_id: str) -> Path:
        return self.folder / d.normalize_point_id(point_id)

    def put(self, point_id: str, data: bytes) -> None:
        """Written atomically (temp file + rename) so a crash leaves no torn copy."""
        write_atomically(self._path(point_id), data)

    def get(self, point_id: str) -> bytes | None:
        try:
            return self._path(point_id).read_bytes()
        except FileNotFoundError:
            return None

    def discard(self, point_id: str) -> None:
        self._path(point_id).unlink(missing_ok=True)

    def __len__(self) -> int:
        return sum(1 for p in self.folder.iterdir() if not p.name.startswith("."))


@dataclass
class BackfillReport:
    captioned: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # id -> why it stays pending
    stopped: str = ""  # why the run ended early (captioner unavailable)


ReadPath = Callable[[str], bytes]

# What the backfill works through (the caller's scope adds its tenant).
_PENDING = d.Filter(must=(d.Match(d.CAPTION_PENDING, True),))


class CaptionBackfill:
    """Captions points with caption_pending=true, batch by batch."""

    def __init__(
        self,
        captioner: Captioner,
        spool: CaptionSpool | None,
        read_path: ReadPath | None = None,
        batch_size: int = 8,
    ) -> None:
        self.captioner = captioner
        self.spool = spool
        self.read_path = read_path
        self.batch_size = batch_size
        self._lock = asyncio.Lock()

    async def pending(self, scope: TenantScope) -> int:
        return await scope.count(_PENDING)

    async def run(
        self,
        scope: TenantScope,
        progress: Callable[[int], None] | None = None,
        limit: int | None = None,
    ) -> BackfillReport:
        """Captions pending points until none are left (or `limit` done)."""
        report = BackfillReport()
        async with self._lock:  # one backfill at a time
            offset: str | None = None
            # One pass in id order; captioned points leave the filter behind us,
            # points that arrive meanwhile are picked up by the next run.
            while limit is None or report.captioned < limit:
                page = await scope.scroll(_PENDING, self.batch_size, offset)
                todo = [p for p in page.points if p.id not in report.failed]
                if todo:
                    try:
                        await self._caption(scope, todo, report)
                    except Unavailable as exc:
                        report.stopped = str(exc)
                        return report
                    if progress is not None:
                        progress(len(todo))
                if page.next_offset is None:
                    break
                offset = page.next_offset
        return report

    async def _caption(
        self, scope: TenantScope, points: list[d.StoredPoint], report: BackfillReport
    ) -> None:
        images: list[bytes] = []
        ready: list[d.StoredPoint] = []
        for p in points:
            data = await asyncio.to_thread(self._bytes_of, p)
            if data is None:
                report.failed[p.id] = "image bytes not available (no spooled copy, path unreadable)"
            else:
                images.append(data)
                ready.append(p)
        if not ready:
            return
        batch = await self.captioner.caption_images(images)
        for i, p in enumerate(ready):
            caption = batch.captions[i]
            if caption is None:
                report.failed[p.id] = batch.errors.get(i, "caption failed")
                continue
            try:
                await scope.set_caption(p.id, caption, batch.model)
            except ImgsearchError as exc:  # deleted meanwhile
                report.failed[p.id] = str(exc)
                continue
            if self.spool is not None:
                await asyncio.to_thread(self.spool.discard, p.id)
            report.captioned += 1

    def _bytes_of(self, point: d.StoredPoint) -> bytes | None:
        if self.spool is not None:
            data = self.spool.get(point.id)
            if data is not None:
                return data
        path = point.payload.get(d.PATH)
        if self.read_path is not None and isinstance(path, str) and path:
            try:
                return self.read_path(path)
            except (ImgsearchError, OSError):
                return None
        return None
