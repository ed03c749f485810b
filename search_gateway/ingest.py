"""Idempotent ingest: images in, points in Qdrant out, one outcome per image.

Per micro-batch of the incoming stream:
1. read the bytes (or the file, under the allowed roots) and hash them; the
   point id is UUIDv5(sha256), so the same content always maps to one point;
2. read the header (format, size; rejects decompression bombs) — no decode;
3. look the ids up in the store: content already stored costs no model work.
   The same uri again is ALREADY_PRESENT; a new uri is recorded in the
   existing point's `paths` and reported as DUPLICATE;
4. embed the new images (and caption them, concurrently, when asked);
5. optionally mark near-duplicates (cosine >= threshold with a stored point or
   an earlier image of the same batch) with `duplicate_of`;
6. upsert, and only then report ADDED: nothing is acknowledged that is not
   stored.
A failure of one image is that image's outcome; a store or model outage
fails the batch's new images with UNAVAILABLE, and a re-run adds exactly those.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.errors import ImgsearchError, InvalidInput, NotFound, PermissionDenied
from imgsearch.images import DEFAULT_MAX_PIXELS, read_header
from search_gateway import domain as d
from search_gateway.captions import CaptionSpool
from search_gateway.model_clients.base import Captioner, Embedder
from search_gateway.tenancy import TenantScope

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 16 * 1024


class IngestStatus(Enum):
    ADDED = "added"
    ALREADY_PRESENT = "already_present"
    DUPLICATE = "duplicate"
    FAILED = "failed"


@dataclass
class IngestItem:
    """One image to ingest: bytes or a path, where it lives, its metadata."""

    data: bytes | None = None
    path: str | None = None
    uri: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    with_captions: bool = False
    near_duplicate_threshold: float = 0.0
    problem: str = ""  # set when the request itself was malformed (e.g. bad metadata)


@dataclass
class IngestOutcome:
    index: int
    status: IngestStatus
    id: str = ""
    uri: str = ""
    duplicate_of: str = ""
    reason: str = ""
    error_code: str = ""
    caption_pending: bool = False


@dataclass
class _Work:
    """An item on its way through one batch."""

    index: int
    item: IngestItem
    scope: TenantScope  # the caller's view of the store (its tenant); the batch shares it
    uri: str = ""
    data: bytes = b""
    id: str = ""
    sha256: str = ""
    header: Any = None
    outcome: IngestOutcome | None = None
    vector: np.ndarray | None = None
    caption: str | None = None
    caption_model: str = ""
    caption_pending: bool = False
    duplicate_of: str = ""
    extra_paths: list[str] = field(default_factory=list)
    copy_of: _Work | None = None  # an earlier item of this batch with the same bytes

    def fail(self, exc: BaseException | str, code: str = "INVALID_ARGUMENT") -> None:
        if isinstance(exc, ImgsearchError):
            code = exc.status_name
        self.outcome = IngestOutcome(
            self.index, IngestStatus.FAILED, self.id, self.uri, reason=str(exc), error_code=code
        )


def validate_metadata(metadata: dict[str, Any]) -> None:
    """User metadata: sane keys, not the gateway's own fields, bounded size."""
    import json

    for key in metadata:
        if d.payload_key_problem(key, nested=False) is not None:
            raise InvalidInput(f"metadata key {key!r}: use letters, digits and _ (max 64)")
        if key in d.RESERVED_FIELDS:
            raise InvalidInput(f"metadata key {key!r} is reserved for the gateway")
    size = len(json.dumps(metadata, default=str))
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}")


class PathPolicy:
    """Which files the gateway may read when a client sends a path."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [r.resolve() for r in roots]

    def read(self, path: str) -> bytes:
        if not self.roots:
            raise PermissionDenied("this gateway does not read files by path; send the bytes")
        resolved = Path(path).expanduser().resolve()  # follows symlinks and '..'
        if not any(resolved.is_relative_to(root) for root in self.roots):
            raise PermissionDenied(f"{path}: outside the gateway's allowed folders")
        try:
            return resolved.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{path}: no such file") from None
        except IsADirectoryError:
            raise InvalidInput(f"{path}: is a directory") from None
        except OSError as exc:
            raise InvalidInput(f"{path}: cannot read ({exc.strerror})") from None


class IngestPipeline:
    """Runs micro-batches of an ingest stream through models and the store."""

    def __init__(
        self,
        embedder: Embedder,
        captioner: Captioner | None,
        paths: PathPolicy,
        *,
        batch_size: int = 32,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        captions_required: bool = False,
        caption_mode: str = "inline",
        spool: CaptionSpool | None = None,
    ) -> None:
        if caption_mode not in ("inline", "deferred"):
            raise ValueError(f"caption_mode must be inline or deferred, not {caption_mode!r}")
        self.caption_mode = caption_mode
        self.spool = spool
        self.embedder = embedder
        self.captioner = captioner
        self.paths = paths
        self.batch_size = batch_size
        self.max_image_pixels = max_image_pixels
        self.captions_required = captions_required

    async def run(
        self,
        items: AsyncIterator[IngestItem],
        scope: TenantScope,
        timeout: Callable[[], float | None] = lambda: None,
    ) -> AsyncIterator[IngestOutcome]:
        """Outcomes in stream order. Reads ahead at most two batches, so a
        stream of any length is never held in memory."""
        queue: asyncio.Queue[IngestItem | None] = asyncio.Queue(maxsize=2 * self.batch_size)

        async def reader() -> None:
            try:
                async for item in items:
                    await queue.put(item)
            finally:
                await queue.put(None)

        reading = asyncio.ensure_future(reader())
        index = 0
        try:
            done = False
            while not done:
                batch: list[_Work] = []
                first = await queue.get()
                if first is None:
                    break
                batch.append(_Work(index, first, scope=scope))
                index += 1
                # Take what is already waiting (and what arrives within a few
                # ms) without stalling an interactive client on a full batch.
                # (get_nowait + sleep, not wait_for(get()): a timed-out
                # wait_for can race with a completed get and drop the item.)
                waited = False
                while len(batch) < self.batch_size:
                    try:
                        nxt = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        if waited:
                            break
                        await asyncio.sleep(0.02)
                        waited = True
                        continue
                    if nxt is None:
                        done = True
                        break
                    batch.append(_Work(index, nxt, scope=scope))
                    index += 1
                for outcome in await self.process(batch, timeout()):
                    yield outcome
            await reading  # surface stream errors (e.g. a cancelled client)
        finally:
            if not reading.done():
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading

    async def process(self, batch: list[_Work], timeout: float | None) -> list[IngestOutcome]:
        await asyncio.gather(*(asyncio.to_thread(self._read_and_hash, w) for w in batch))
        live = [w for w in batch if w.outcome is None]
        if live:
            await self._resolve_existing(live)
        new = [w for w in live if w.outcome is None and not w.duplicate_of]
        if new:
            await self._embed_and_caption(new, timeout)
        await self._store(batch)
        for w in batch:  # every image gets exactly one answer, whatever happened
            if w.outcome is None:
                log.error("ingest: image %d left without an outcome", w.index)
                w.fail("internal error (see gateway log)", "INTERNAL")
        return [w.outcome for w in batch if w.outcome is not None]

    # -- steps ----------------------------------------------------------------
    def _read_and_hash(self, w: _Work) -> None:
        item = w.item
        try:
            if item.problem:
                raise InvalidInput(item.problem)
            if item.data is not None and item.path:
                raise InvalidInput("give either the image bytes or a path, not both")
            if item.data is not None:
                w.data = item.data
                w.uri = item.uri
            elif item.path:
                w.uri = item.uri or str(Path(item.path).expanduser().resolve())
                w.data = self.paths.read(item.path)
            else:
                raise InvalidInput("no image: neither bytes nor a path given")
            validate_metadata(item.metadata)
            w.scope.check_metadata(item.metadata)
            if not (0.0 <= item.near_duplicate_threshold <= 1.0):
                raise InvalidInput("near_duplicate_threshold must be within [0, 1]")
            w.sha256 = hashlib.sha256(w.data).hexdigest()
            w.id = w.scope.point_id(w.sha256)
            w.uri = w.uri or f"sha256:{w.sha256}"
            w.header = read_header(w.data, self.max_image_pixels)
        except ImgsearchError as exc:
            w.fail(exc)

    async def _resolve_existing(self, live: list[_Work]) -> None:
        ids = list(dict.fromkeys(w.id for w in live))
        try:
            stored = {p.id: p for p in await live[0].scope.get(ids)}
        except ImgsearchError as exc:
            for w in live:
                w.fail(exc)
            return
        first_in_batch: dict[str, _Work] = {}
        for w in live:
            point = stored.get(w.id)
            if point is not None:
                paths = list(point.payload.get(d.PATHS) or [point.payload.get(d.PATH)])
                if w.uri in paths:
                    w.outcome = IngestOutcome(
                        w.index, IngestStatus.ALREADY_PRESENT, w.id, w.uri, duplicate_of=""
                    )
                else:
                    w.duplicate_of = w.id
            elif w.id in first_in_batch:
                earlier = first_in_batch[w.id]
                w.copy_of = earlier
                if w.uri != earlier.uri and w.uri not in earlier.extra_paths:
                    earlier.extra_paths.append(w.uri)
                    w.duplicate_of = w.id
                else:
                    w.outcome = IngestOutcome(w.index, IngestStatus.ALREADY_PRESENT, w.id, w.uri)
            else:
                first_in_batch[w.id] = w

    async def _embed_and_caption(self, new: list[_Work], timeout: float | None) -> None:
        images = [w.data for w in new]
        to_caption = [w for w in new if w.item.with_captions]
        if self.caption_mode == "deferred":
            # Stored now, searchable by vector; CaptionBackfill captions later.
            for w in to_caption:
                w.caption_pending = True
            to_caption = []
        embed = asyncio.ensure_future(self.embedder.embed_images(images, timeout))
        caption = None
        if to_caption and self.captioner is not None:
            caption = asyncio.ensure_future(
                self.captioner.caption_images([w.data for w in to_caption], timeout)
            )
        try:
            result = await embed
        except ImgsearchError as exc:
            for w in new:
                w.fail(exc)
            if caption is not None:
                caption.cancel()
            return
        for i, w in enumerate(new):
            if i in result.errors:
                w.fail(result.errors[i])
            else:
                w.vector = result.vectors[i]
        if to_caption:
            await self._apply_captions(to_caption, caption)
        await self._mark_near_duplicates([w for w in new if w.outcome is None])

    async def _apply_captions(
        self, works: list[_Work], caption: asyncio.Future[Any] | None
    ) -> None:
        if caption is None:
            missing = ImgsearchError("no captioner configured")
            missing.status_name = "FAILED_PRECONDITION"
            failure: ImgsearchError | None = missing
        else:
            failure = None
            try:
                batch = await caption
            except ImgsearchError as exc:
                failure = exc
        for i, w in enumerate(works):
            if w.outcome is not None:
                continue
            if failure is None and batch.captions[i] is not None:
                w.caption = batch.captions[i]
                w.caption_model = batch.model
            elif self.captions_required:
                w.fail(
                    failure or f"caption failed: {batch.errors.get(i, 'unknown')}", "UNAVAILABLE"
                )
            else:
                # Searchable now by vector; `imgsearch recaption` fills it in later.
                w.caption_pending = True
        if failure is not None and not self.captions_required:
            log.warning("captioning failed, stored as caption_pending: %s", failure)

    async def _mark_near_duplicates(self, works: list[_Work]) -> None:
        accepted: list[_Work] = []
        for w in works:
            threshold = w.item.near_duplicate_threshold
            if threshold > 0 and w.vector is not None:
                best_id, best = "", -1.0
                for earlier in accepted:
                    assert earlier.vector is not None
                    score = float(np.dot(earlier.vector, w.vector))
                    if score > best:
                        best_id, best = earlier.id, score
                try:
                    hits = await w.scope.search(w.vector, 1, 0, threshold)
                except ImgsearchError as exc:
                    w.fail(exc)
                    continue
                if hits and hits[0].score > best:
                    best_id, best = hits[0].id, hits[0].score
                if best >= threshold and best_id != w.id:
                    w.duplicate_of = best_id
            accepted.append(w)

    async def _store(self, batch: list[_Work]) -> None:
        now = d.rfc3339(datetime.now(timezone.utc))
        new_points: list[d.StoredPoint] = []
        pending: list[_Work] = []
        copies: list[_Work] = []
        for w in batch:
            if w.outcome is not None:
                continue
            if w.copy_of is not None:  # settled once its first copy is stored
                copies.append(w)
                continue
            if w.vector is None:  # exact duplicate of a stored point: add this path
                try:
                    await self._add_path(w.scope, w.id, w.uri)
                except ImgsearchError as exc:
                    w.fail(exc)
                    continue
                w.outcome = IngestOutcome(
                    w.index, IngestStatus.DUPLICATE, w.id, w.uri, duplicate_of=w.duplicate_of
                )
                continue
            new_points.append(d.StoredPoint(w.id, self._payload(w, now), w.vector))
            pending.append(w)
        stored = await self._upsert(new_points, pending)
        for w in pending if stored else ():
            status = IngestStatus.DUPLICATE if w.duplicate_of else IngestStatus.ADDED
            w.outcome = IngestOutcome(
                w.index, status, w.id, w.uri, w.duplicate_of, caption_pending=w.caption_pending
            )
        # Exact duplicates within the batch share the fate of their first copy.
        for w in copies:
            first = w.copy_of
            assert first is not None and first.outcome is not None
            if first.outcome.status is IngestStatus.FAILED:
                w.fail(first.outcome.reason, first.outcome.error_code)
            else:
                w.outcome = IngestOutcome(
                    w.index, IngestStatus.DUPLICATE, w.id, w.uri, duplicate_of=w.id
                )

    async def _upsert(self, points: list[d.StoredPoint], works: list[_Work]) -> bool:
        """Spools bytes awaiting captions, then writes the points; False (and
        every work failed) when the store refuses."""
        if not points:
            return True
        try:
            if self.spool is not None:
                for w in works:
                    if w.caption_pending:
                        await asyncio.to_thread(self.spool.put, w.id, w.data)
            await works[0].scope.upsert(points)
        except (ImgsearchError, OSError) as exc:
            for w in works:
                w.fail(exc if isinstance(exc, ImgsearchError) else f"spool: {exc}", "UNAVAILABLE")
            return False
        return True

    async def _add_path(self, scope: TenantScope, point_id: str, uri: str) -> None:
        points = await scope.get([point_id])
        if not points:
            return
        payload = points[0].payload
        paths = list(payload.get(d.PATHS) or [payload.get(d.PATH)])
        if uri not in paths:
            paths.append(uri)
            await scope.set_payload(point_id, {d.PATHS: paths})

    def _payload(self, w: _Work, now: str) -> dict[str, Any]:
        payload: dict[str, Any] = dict(w.item.metadata)
        payload.update(
            {
                d.PATH: w.uri,
                d.PATHS: [w.uri, *w.extra_paths],
                d.SHA256: w.sha256,
                d.WIDTH: w.header.width,
                d.HEIGHT: w.header.height,
                d.FORMAT: w.header.format,
                d.INGESTED_AT: now,
            }
        )
        if w.caption is not None:
            payload.update(d.caption_fields(w.caption, w.caption_model))
        else:
            payload.update({d.CAPTION_PENDING: w.caption_pending, d.CAPTIONED: False})
        if w.duplicate_of:
            payload[d.DUPLICATE_OF] = w.duplicate_of
        return payload  # TenantScope.upsert stamps the tenant
