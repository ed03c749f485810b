"""GatewayCore: the search gateway's behaviour, free of gRPC and of Qdrant.

It composes an Embedder, an optional Captioner (in-process or remote, see
model_clients/) and a VectorStore (store/), driven through an AsyncStore on
the store thread. Every store call of a request goes through the caller's
TenantScope (tenancy.py). The gRPC servicer and the CLI's embedded mode both
call this, so the two modes cannot drift apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from imgsearch.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidInput,
    NotFound,
    Unavailable,
)
from imgsearch.images import DEFAULT_MAX_PIXELS
from search_gateway import domain as d
from search_gateway.captions import BackfillReport, CaptionBackfill, CaptionSpool
from search_gateway.events import ResultShape, SearchPage, search_page
from search_gateway.ingest import (
    DEFAULT_MAX_FILE_BYTES,
    IngestItem,
    IngestOutcome,
    IngestPipeline,
    PathPolicy,
)
from search_gateway.model_clients.base import Captioner, Embedder
from search_gateway.store.async_store import AsyncStore
from search_gateway.store.base import VectorStore
from search_gateway.tenancy import TenantScope
from search_gateway.thumbnails import ThumbnailStore

if TYPE_CHECKING:
    from search_gateway.rerank import RerankedSearch, Reranker, RerankOptions

log = logging.getLogger(__name__)

MODES = ("vector", "caption", "hybrid")


@dataclass
class SearchQuery:
    """Exactly one of text, image or point_id."""

    text: str | None = None
    image: bytes | None = None
    point_id: str | None = None
    k: int = 10
    offset: int = 0
    score_threshold: float | None = None
    filter: d.Filter | None = None
    mode: str = "vector"


@dataclass
class Hit:
    id: str
    score: float
    uri: str
    caption: str
    payload: dict[str, Any] = field(default_factory=dict)
    # P(query matches thumbnail) when the search was re-ranked (score stays the vector score).
    rerank_score: float | None = None

    @classmethod
    def from_point(cls, point_id: str, score: float, payload: dict[str, Any]) -> Hit:
        return cls(
            id=point_id,
            score=score,
            uri=str(payload.get(d.PATH, "")),
            caption=str(payload.get(d.CAPTION) or ""),
            payload=payload,
        )


@dataclass
class Stats:
    count: int
    model: str
    pretrained: str
    dimension: int
    captioned_count: int
    caption_pending_count: int
    collection: str
    store: str


@dataclass(frozen=True)
class CoreLimits:
    max_k: int = 1000
    max_offset: int = 100_000
    max_query_chars: int = 4096
    max_ids: int = 1000
    ingest_batch_size: int = 32
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_response_bytes: int = 4 * 1024 * 1024


class GatewayCore:
    # Set by assemble.build_core when a scorer is configured (search_gateway/rerank.py).
    reranker: Reranker | None = None

    def __init__(
        self,
        embedder: Embedder,
        captioner: Captioner | None,
        store: VectorStore,
        *,
        limits: CoreLimits | None = None,
        read_roots: Sequence[Any] = (),
        captions_required: bool = False,
        store_threads: int = 1,
        caption_mode: str = "inline",
        spool_dir: Path | None = None,
        thumbnails: ThumbnailStore | None = None,
    ) -> None:
        self.embedder = embedder
        self.thumbnails = thumbnails
        self.captioner = captioner
        self.store = AsyncStore(store, store_threads)
        self.limits = limits or CoreLimits()
        self._spec: d.CollectionSpec | None = None
        self._mismatch: str | None = None
        self._open_lock = asyncio.Lock()
        self.ingest_pipeline = IngestPipeline(
            embedder,
            captioner,
            PathPolicy(read_roots, self.limits.max_file_bytes),
            batch_size=self.limits.ingest_batch_size,
            max_image_pixels=self.limits.max_image_pixels,
            captions_required=captions_required,
            caption_mode=caption_mode,
            spool=CaptionSpool(spool_dir) if spool_dir is not None else None,
            thumbnails=thumbnails,
        )
        self.captions: CaptionBackfill | None = None
        if captioner is not None:
            self.captions = CaptionBackfill(
                captioner,
                self.ingest_pipeline.spool,
                read_path=self.ingest_pipeline.paths.read,
            )

    # -- lifecycle ----------------------------------------------------------
    async def open(self) -> None:
        """Creates or checks the collection for the embedder's model.

        A collection built by another model does not stop the gateway: every
        call then answers FAILED_PRECONDITION naming both models. An embedder
        or Qdrant that is down at start-up is retried on the next call.
        """
        try:
            await self._open()
        except (Unavailable, DeadlineExceeded) as exc:
            log.warning("not ready yet, will retry on first use: %s", exc)

    async def _open(self) -> None:
        async with self._open_lock:
            if self._spec is not None or self._mismatch is not None:
                return
            ident = await self.embedder.identity()
            spec = d.CollectionSpec(ident.model, ident.pretrained, ident.dimension)
            try:
                await self.store.open(spec)
            except FailedPrecondition as exc:
                self._mismatch = str(exc)
                log.error("%s", exc)
                return
            self._spec = spec

    async def close(self) -> None:
        await self.embedder.close()
        if self.captioner is not None:
            await self.captioner.close()
        if self.reranker is not None:
            await self.reranker.close()
        await self.store.close()

    @property
    def usable(self) -> bool:
        """True once the collection is open for the embedder's model."""
        return self._spec is not None

    @property
    def refusal(self) -> str | None:
        """Why the collection can never be used by this gateway (another model's)."""
        return self._mismatch

    @property
    def model_name(self) -> str:
        return self._spec.model if self._spec else ""

    async def _ready(self) -> d.CollectionSpec:
        if self._spec is None and self._mismatch is None:
            await self._open()  # raises Unavailable while a dependency is down
        if self._mismatch is not None:
            raise FailedPrecondition(self._mismatch)
        assert self._spec is not None
        return self._spec

    def scope(self, tenant: str | None) -> TenantScope:
        """The store as the caller with this tenant (None: tenancy off) sees it."""
        return TenantScope(self.store, tenant)

    # -- ingest ---------------------------------------------------------------
    async def ingest(
        self,
        items: AsyncIterator[IngestItem],
        timeout: Callable[[], float | None] = lambda: None,
        tenant: str | None = None,
    ) -> AsyncIterator[IngestOutcome]:
        """Outcomes per image, in order. `tenant` (from the caller's API key)
        is stamped on every point and scopes ids and duplicate checks."""
        await self._ready()
        async for outcome in self.ingest_pipeline.run(items, self.scope(tenant), timeout):
            yield outcome

    # -- search ---------------------------------------------------------------
    def _check_query(self, q: SearchQuery) -> None:
        given = [x is not None for x in (q.text, q.image, q.point_id)]
        if sum(given) != 1:
            raise InvalidInput("give exactly one query: text, image or point_id")
        if q.text is not None:
            if not q.text.strip():
                raise InvalidInput("query text is empty")
            if len(q.text) > self.limits.max_query_chars:
                raise InvalidInput(
                    f"query text has {len(q.text)} characters; the limit is "
                    f"{self.limits.max_query_chars}"
                )
        if q.image is not None and not q.image:
            raise InvalidInput("query image is empty (0 bytes)")
        if not 1 <= q.k <= self.limits.max_k:
            raise InvalidInput(f"k must be within 1..{self.limits.max_k}, got {q.k}")
        if not 0 <= q.offset <= self.limits.max_offset:
            raise InvalidInput(f"offset must be within 0..{self.limits.max_offset}")
        if q.mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}, not {q.mode!r}")
        if q.mode != "vector" and q.text is None:
            raise InvalidInput(f"{q.mode} mode needs a text query")
        if q.filter is not None:
            try:
                q.filter.validate()
            except d.InvalidFilter as exc:
                raise InvalidInput(str(exc)) from exc

    async def search(
        self, q: SearchQuery, timeout: float | None = None, tenant: str | None = None
    ) -> list[Hit]:
        """Hits for a text, image or point; with a tenant, only its points."""
        await self._ready()
        self._check_query(q)
        scope = self.scope(tenant)
        exclude: tuple[str, ...] = ()
        if q.mode == "caption":
            assert q.text is not None
            points = await scope.search_caption(q.text, q.k, q.offset, q.filter, exclude)
            return self._hits(points, q.score_threshold)
        vector = await self._query_vector(q, timeout, scope)
        if q.point_id is not None:
            exclude = (d.normalize_point_id(q.point_id),)
        if q.mode == "hybrid":
            assert q.text is not None
            points = await scope.search_hybrid(vector, q.text, q.k, q.offset, q.filter, exclude)
            return self._hits(points, None)
        points = await scope.search(vector, q.k, q.offset, q.score_threshold, q.filter, exclude)
        return self._hits(points, None)

    async def search_reranked(
        self,
        q: SearchQuery,
        options: RerankOptions,
        timeout: float | None = None,
        tenant: str | None = None,
    ) -> RerankedSearch:
        """The first candidates of `q` re-ranked by the image-text matcher (rerank.py);
        with none configured, vector order marked not re-ranked (FAILED_PRECONDITION
        when strict)."""
        from search_gateway.rerank import Reranker

        reranker = self.reranker or Reranker(None, None)
        return await reranker.search(self, q, options, timeout, tenant)

    async def search_page(
        self,
        q: SearchQuery,
        shape: ResultShape,
        timeout: float | None = None,
        tenant: str | None = None,
    ) -> SearchPage:
        """Hits shaped by `shape`: grouped into events, time-ordered, cut, paged (events.py)."""
        return await search_page(
            self, q, shape, lambda p: Hit.from_point(p.id, p.score, p.payload), timeout, tenant
        )

    async def thumbnail(self, point_id: str, tenant: str | None = None) -> bytes:
        """The point's thumbnail; NotFound when the point (of this tenant) has none."""
        await self._ready()
        pid = self._check_ids([point_id])[0]
        if self.thumbnails is None:
            raise NotFound("this gateway keeps no thumbnails")
        if tenant is not None and not await self.scope(tenant).get([pid]):
            raise NotFound(f"no thumbnail for point {point_id}")  # same answer for foreign ids
        data = await asyncio.to_thread(self.thumbnails.get, pid)
        if data is None:
            raise NotFound(f"no thumbnail for point {point_id}")
        return data

    async def _query_vector(
        self, q: SearchQuery, timeout: float | None, scope: TenantScope
    ) -> np.ndarray:
        if q.text is not None:
            vectors = await self.embedder.embed_texts([q.text], timeout)
            first: np.ndarray = vectors[0]
            return first
        if q.image is not None:
            result = await self.embedder.embed_images([q.image], timeout)
            if 0 in result.errors:
                raise InvalidInput(f"query image: {result.errors[0]}")
            vector = result.vectors[0]
            assert vector is not None
            return vector
        assert q.point_id is not None
        try:
            point_id = d.normalize_point_id(q.point_id)
        except d.InvalidPointId as exc:
            raise InvalidInput(str(exc)) from exc
        points = await scope.get([point_id], True)
        if not points or points[0].vector is None:
            raise NotFound(f"no point with id {q.point_id}")  # same answer for foreign ids
        return points[0].vector

    @staticmethod
    def _hits(points: Sequence[d.ScoredPoint], threshold: float | None) -> list[Hit]:
        return [
            Hit.from_point(p.id, p.score, p.payload)
            for p in points
            if threshold is None or p.score >= threshold
        ]

    # -- captions that fill in behind ---------------------------------------------
    async def recaption(
        self,
        tenant: str | None = None,
        progress: Callable[[int], None] | None = None,
        limit: int | None = None,
    ) -> BackfillReport:
        """Captions points still marked caption_pending (see captions.py)."""
        await self._ready()
        if self.captions is None:
            raise FailedPrecondition("no captioner configured")
        return await self.captions.run(self.scope(tenant), progress, limit)

    # -- get / delete / stats ---------------------------------------------------
    def _check_ids(self, ids: Sequence[str]) -> list[str]:
        if not ids:
            raise InvalidInput("no ids given")
        if len(ids) > self.limits.max_ids:
            raise InvalidInput(f"{len(ids)} ids; the limit is {self.limits.max_ids}")
        out = []
        for i, raw in enumerate(ids):
            try:
                out.append(d.normalize_point_id(raw))
            except d.InvalidPointId as exc:
                raise InvalidInput(f"ids[{i}]: {exc}") from exc
        return out

    async def get(
        self, ids: Sequence[str], tenant: str | None = None
    ) -> tuple[list[Hit], list[str]]:
        """Points by id; unknown ids (and other tenants' ids) are `missing`."""
        await self._ready()
        wanted = self._check_ids(ids)
        points = await self.scope(tenant).get(wanted)
        found = {p.id for p in points}
        hits = [Hit.from_point(p.id, 1.0, p.payload) for p in points]
        missing = [raw for raw, norm in zip(ids, wanted, strict=True) if norm not in found]
        return hits, missing

    async def delete(
        self, ids: Sequence[str] = (), filter: d.Filter | None = None, tenant: str | None = None
    ) -> int:
        """Deletes by ids or by filter; with a tenant, only its own points."""
        await self._ready()
        if bool(ids) == (filter is not None and not filter.is_empty):
            raise InvalidInput("delete needs either ids or a filter (exactly one)")
        scope = self.scope(tenant)
        if ids:
            wanted = [p.id for p in await scope.get(self._check_ids(ids))]
            deleted = await scope.delete_ids(wanted)
            await self._delete_thumbnails(wanted)
            return deleted
        assert filter is not None
        try:
            filter.validate()
        except d.InvalidFilter as exc:
            raise InvalidInput(str(exc)) from exc
        doomed = await self._ids_matching(scope, filter) if self.thumbnails is not None else []
        deleted = await scope.delete_filter(filter)
        await self._delete_thumbnails(doomed)
        return deleted

    @staticmethod
    async def _ids_matching(scope: TenantScope, flt: d.Filter) -> list[str]:
        """Ids of the points a filter delete will take, so their thumbnails go too."""
        ids: list[str] = []
        offset: str | None = None
        while True:
            page = await scope.scroll(flt, 1024, offset)
            ids.extend(p.id for p in page.points)
            if page.next_offset is None:
                return ids
            offset = page.next_offset

    async def _delete_thumbnails(self, ids: Sequence[str]) -> None:
        """After the points: a thumbnail without its point is harmless, the reverse is not."""
        if self.thumbnails is not None and ids:
            await asyncio.to_thread(self.thumbnails.delete, list(ids))

    async def stats(self, tenant: str | None = None) -> Stats:
        """Counts (of the tenant's points only, with a tenant)."""
        spec = await self._ready()
        pending_only = d.Filter(must=(d.Match(d.CAPTION_PENDING, True),))
        captioned_only = d.Filter(must=(d.Match(d.CAPTIONED, True),))
        scope = self.scope(tenant)
        count = await scope.count()
        pending = await scope.count(pending_only)
        captioned = await scope.count(captioned_only)
        return Stats(
            count=count,
            model=spec.model,
            pretrained=spec.pretrained,
            dimension=spec.dimension,
            captioned_count=captioned,
            caption_pending_count=pending,
            collection=self.store.collection,
            store=self.store.location,
        )
