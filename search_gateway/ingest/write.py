"""Stage 5, write: points upserted, paths recorded, and only then the
results. Nothing is reported ADDED that is not stored; a store refusal fails
the batch's new images with UNAVAILABLE, and a re-run adds exactly those.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from imgsearch.errors import ImgsearchError
from search_gateway import domain as d
from search_gateway.captions import CaptionSpool
from search_gateway.ingest.items import IngestStatus
from search_gateway.ingest.states import (
    CopyInBatch,
    CopyInFlight,
    Embedded,
    Settled,
    State,
    StoredCopy,
)
from search_gateway.ingest.store import add_path
from search_gateway.tenancy import TenantScope
from search_gateway.thumbnails import ThumbnailStore, thumbnail_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteStage:
    scope: TenantScope  # stamps the tenant on every point it writes
    spool: CaptionSpool | None = None
    thumbnails: ThumbnailStore | None = None

    async def __call__(self, batch: list[State]) -> list[State]:
        """Every position Settled."""
        out: dict[int, State] = dict(enumerate(batch))
        now = d.rfc3339(datetime.now(timezone.utc))
        for i, s in out.items():
            if isinstance(s, StoredCopy):
                out[i] = await self._record_path(s)
        new = {i: s for i, s in out.items() if isinstance(s, Embedded)}
        stored = await self._upsert(list(new.values()), now)
        for i, e in new.items():
            if stored is None:
                status = IngestStatus.DUPLICATE if e.duplicate_of else IngestStatus.ADDED
                settled = e.loaded.settle(status, e.duplicate_of,
                                          caption_pending=e.caption_pending)  # fmt: skip
            else:
                settled = e.loaded.fail(stored, "UNAVAILABLE")
            out[i] = e.new.settle(settled)
        # Copies share the fate of their first copy, now written.
        for i, s in out.items():
            if isinstance(s, CopyInBatch):
                first = await s.first.written
                out[i] = (
                    s.loaded.fail(first.reason, first.error_code)
                    if first.status is IngestStatus.FAILED
                    else s.loaded.settle(IngestStatus.DUPLICATE, s.loaded.id)
                )
            elif isinstance(s, CopyInFlight):
                out[i] = await self._settle_in_flight(s)
        return [out[i] for i in range(len(batch))]

    async def _record_path(self, s: StoredCopy | CopyInFlight) -> Settled:
        try:
            added = await add_path(self.scope, s.loaded.id, s.loaded.uri)
        except ImgsearchError as exc:
            return s.loaded.fail(exc)
        if added is False and isinstance(s, CopyInFlight):
            return s.loaded.settle(IngestStatus.ALREADY_PRESENT)
        return s.loaded.settle(IngestStatus.DUPLICATE, s.loaded.id)

    async def _settle_in_flight(self, s: CopyInFlight) -> Settled:
        """A copy of an image an earlier batch wrote: as if it had been looked
        up after that write (ALREADY_PRESENT or a recorded path)."""
        first = await s.first.written
        if first.status is IngestStatus.FAILED:
            return s.loaded.fail(first.reason, first.error_code)
        if s.loaded.uri == s.first.loaded.uri:
            return s.loaded.settle(IngestStatus.ALREADY_PRESENT)
        return await self._record_path(s)

    async def _upsert(self, new: list[Embedded], now: str) -> ImgsearchError | str | None:
        """Spools bytes awaiting captions, then writes the points; the reason
        when the store (or the spool) refuses, else None."""
        if not new:
            return None
        try:
            if self.spool is not None:
                for e in new:
                    if e.caption_pending:
                        await asyncio.to_thread(self.spool.put, e.loaded.id, e.loaded.data)
            points = [d.StoredPoint(e.loaded.id, payload(e, now), e.vector) for e in new]
            # Thumbnails first: a point is never stored without its thumbnail;
            # a refused upsert leaves at most orphan thumbnails, removed below.
            await asyncio.to_thread(self._put_thumbnails, new)
            await self.scope.upsert(points)
        except ImgsearchError as exc:
            if self.thumbnails is not None:
                await asyncio.to_thread(self.thumbnails.delete, [e.loaded.id for e in new])
            return exc
        except OSError as exc:
            return f"spool or thumbnails: {exc}"
        return None


    def _put_thumbnails(self, new: list[Embedded]) -> None:
        if self.thumbnails is None:
            return
        for e in new:
            try:
                # The read stage already held the image to the configured pixel
                # limit; its own size is the bound here, not thumbnail_of's default.
                h = e.loaded.header
                thumb = thumbnail_of(e.loaded.data, max_pixels=max(1, h.width * h.height))
            except ImgsearchError as exc:  # the embedder read it; keep the point
                log.warning("no thumbnail for %s: %s", e.loaded.id, exc)
                continue
            self.thumbnails.put(e.loaded.id, thumb)


def payload(e: Embedded, now: str) -> dict[str, Any]:
    """The stored payload: user metadata, then the gateway's own fields."""
    loaded = e.loaded
    out: dict[str, Any] = dict(loaded.metadata)
    out.update(
        {
            d.PATH: loaded.uri,
            d.PATHS: [loaded.uri, *e.new.extra_paths],
            d.SHA256: loaded.sha256,
            d.WIDTH: loaded.header.width,
            d.HEIGHT: loaded.header.height,
            d.FORMAT: loaded.header.format,
            d.INGESTED_AT: now,
        }
    )
    if e.caption is not None:
        out.update(d.caption_fields(e.caption, e.caption_model))
    else:
        out.update({d.CAPTION_PENDING: e.caption_pending, d.CAPTIONED: False})
    if e.duplicate_of:
        out[d.DUPLICATE_OF] = e.duplicate_of
    # Every point names its near-duplicate cluster, so results can be grouped by it.
    out[d.NEAR_GROUP] = e.duplicate_of or loaded.id
    return out  # TenantScope.upsert stamps the tenant
