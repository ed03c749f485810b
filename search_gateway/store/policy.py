"""The store's rules, written once over two thin engine adapters.

`PolicyStore` implements the whole VectorStore protocol: input checks, the
model record and adoption of an unrecorded collection, caption-term writes,
delete-by-filter, hybrid prefetch depth and stable paging. An engine adapter
(store/qdrant_store.py for qdrant-client, store/edge_store.py for Qdrant
Edge) subclasses it and supplies only the `_engine_*` hooks (store/engine.py):
one engine call each, on canonical ids, checked vectors and the engine's
own filter objects. A rule changed here changes for both engines, which is
what the congruence tests (tests/test_store_congruence.py) hold them to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from search_gateway import domain as d
from search_gateway.caption_terms import document_terms, query_terms
from search_gateway.store.backfill import backfill_near_groups
from search_gateway.store.base import PointGroup, ScrollPage, checked_vector, unique_ids
from search_gateway.store.engine import EngineHooks, OrderedScan, PointWrite
from search_gateway.store.filter_translation import FilterTranslation

F = TypeVar("F")  # the engine's filter class

# Page size of id scans (delete by filter) and of deletes.
ID_PAGE = 1024
# Hits fetched past a page, where the engine orders ties by limit (see _page).
TIE_MARGIN = 16
UNRECORDED_MODEL = "unknown (no imgsearch model record)"

# A ranked query run as (limit, offset) -> hits, for _page.
_Query = Callable[[int, int], list[d.ScoredPoint]]


def hybrid_depth(k: int, offset: int) -> int:
    """How deep each hybrid prefetch goes.

    RRF can only rank what the prefetches return: a few pages, so items
    ranked moderately in both lists still surface in the fusion.
    """
    return min(1000, max(50, 3 * (k + offset)))


class PolicyStore(EngineHooks[F]):
    """A VectorStore over one engine: the rules here, the engine calls in hooks."""

    # True where the engine orders equal scores differently for different
    # limits (Qdrant Edge): pages are then cut from one stable ranking.
    _ties_follow_limit = False

    def __init__(
        self,
        collection: str,
        location: str,
        filters: FilterTranslation[F, Any],
        lock: contextlib.AbstractContextManager[Any] | None = None,
    ) -> None:
        self._collection = collection
        self._location = location
        self._filters = filters
        # Held around the calls of one compound operation (an engine that is
        # not thread-safe passes a re-entrant lock its hooks also take).
        self._lock: contextlib.AbstractContextManager[Any] = lock or contextlib.nullcontext()
        self._spec: d.CollectionSpec | None = None
        self._closed = False

    # --- properties ---------------------------------------------------------

    @property
    def collection(self) -> str:
        return self._collection

    @property
    def location(self) -> str:
        return self._location

    @property
    def spec(self) -> d.CollectionSpec:
        """The spec recorded with the collection (after open())."""
        if self._spec is None:
            raise RuntimeError("store not opened: call open(spec) first")
        return self._spec

    # --- collection ---------------------------------------------------------

    def open(self, spec: d.CollectionSpec) -> d.CollectionSpec:
        with self._lock:
            self._check_not_closed()
            if not self._engine_exists():
                self._engine_create(spec)
            stored = self._engine_record()
            if stored is None:
                stored = self._adopt_unrecorded(spec)
            if stored != spec:
                raise d.ModelMismatch(self._collection, stored, spec)
            self._engine_attach(spec)
            existing = self._engine_indexed_fields()
            for field, kind in d.PAYLOAD_INDEXES.items():
                if field not in existing:
                    self._engine_create_index(field, kind)
            self._spec = spec
            backfill_near_groups(self)
            return spec

    def _adopt_unrecorded(self, spec: d.CollectionSpec) -> d.CollectionSpec:
        """Spec of a collection without our record: adopted only when empty and fitting.

        That happens after a crash between create and record (Edge), when a
        server ignored the metadata (Qdrant < 1.16) or when someone created the
        collection by hand; anything else is refused as another model's.
        """
        found = self._engine_unrecorded()
        if found.dimension == spec.dimension and found.empty:
            self._engine_write_record(spec)
            return spec
        return d.CollectionSpec(UNRECORDED_MODEL, "?", max(found.dimension or 1, 1))

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._engine_close()

    # --- reads --------------------------------------------------------------

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[d.StoredPoint]:
        wanted = unique_ids(ids)
        if not wanted:
            return []
        self._require_open()
        records = self._engine_retrieve(wanted, with_payload=True, with_vectors=with_vectors)
        by_id = {p.id: p for p in records}
        return [by_id[i] for i in wanted if i in by_id]

    def count(self, filter: d.Filter | None = None) -> int:
        return self._engine_count(self._filter(filter))

    def scroll(
        self, filter: d.Filter | None = None, limit: int = 256, offset: str | None = None
    ) -> ScrollPage:
        native = self._filter(filter)
        start = d.normalize_point_id(offset) if offset is not None else None
        points, next_offset = self._engine_scroll(native, limit, start, with_payload=True)
        return ScrollPage(points=points, next_offset=next_offset)

    # --- writes -------------------------------------------------------------

    def upsert(self, points: Sequence[d.StoredPoint]) -> None:
        writes = [self._write_of(p) for p in points]
        if writes:
            self._engine_upsert(writes)

    def set_payload(self, point_id: str, fields: dict[str, Any]) -> None:
        with self._lock:
            pid = self._existing_id(point_id)
            if d.CAPTION in fields:
                # Terms first: if the payload write then fails, caption_pending
                # is still set and the caption job redoes both.
                caption = fields[d.CAPTION]
                terms = document_terms(caption) if isinstance(caption, str) else None
                self._engine_set_terms(pid, terms or None)
            self._engine_set_payload([pid], dict(fields))

    def set_caption(self, point_id: str, caption: str, model: str) -> None:
        self.set_payload(point_id, d.caption_fields(caption, model))

    def delete_ids(self, ids: Sequence[str]) -> int:
        wanted = unique_ids(ids)
        if not wanted:
            return 0
        with self._lock:
            self._require_open()
            existing = self._engine_retrieve(wanted, with_payload=False, with_vectors=False)
            found = [p.id for p in existing]
            if found:
                self._engine_delete(found)
            return len(found)

    def delete_filter(self, filter: d.Filter) -> int:
        if filter.is_empty:
            raise d.InvalidFilter("an empty filter would delete every point; refusing")
        native = self._filter(filter)
        with self._lock:
            # Ids first, then delete exactly those: the count returned is what was
            # deleted, even while other writers add matching points.
            ids: list[str] = []
            offset: str | None = None
            while True:
                page, offset = self._engine_scroll(native, ID_PAGE, offset, with_payload=False)
                ids.extend(p.id for p in page)
                if offset is None:
                    break
            for start in range(0, len(ids), ID_PAGE):
                self._engine_delete(ids[start : start + ID_PAGE])
            return len(ids)

    # --- searches -----------------------------------------------------------

    def search(
        self,
        vector: np.ndarray,
        k: int,
        offset: int = 0,
        score_threshold: float | None = None,
        filter: d.Filter | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[d.ScoredPoint]:
        dense = self._check_vector(vector).tolist()
        native = self._filter(filter, exclude_ids)
        return self._page(
            k,
            offset,
            lambda limit, skip: self._engine_nearest(dense, native, limit, skip, score_threshold),
        )

    def search_caption(
        self,
        text: str,
        k: int,
        offset: int = 0,
        filter: d.Filter | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[d.ScoredPoint]:
        self._require_open()
        terms = query_terms(text)
        if not terms:
            return []  # no word can match any caption
        native = self._filter(filter, exclude_ids)
        return self._page(
            k, offset, lambda limit, skip: self._engine_caption_nearest(terms, native, limit, skip)
        )

    def search_hybrid(
        self,
        vector: np.ndarray,
        text: str,
        k: int,
        offset: int = 0,
        filter: d.Filter | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[d.ScoredPoint]:
        dense = self._check_vector(vector).tolist()
        native = self._filter(filter, exclude_ids)
        depth = hybrid_depth(k, offset)
        terms = query_terms(text) or None
        return self._page(
            k,
            offset,
            lambda limit, skip: self._engine_fused(dense, terms, depth, native, limit, skip),
        )

    def search_groups(
        self,
        vector: np.ndarray,
        group_by: str,
        groups: int,
        group_size: int,
        score_threshold: float | None = None,
        filter: d.Filter | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[PointGroup]:
        dense = self._check_vector(vector).tolist()
        native = self._filter(filter, exclude_ids)
        return self._engine_groups(dense, native, group_by, groups, group_size, score_threshold)

    def search_ordered(
        self,
        vector: np.ndarray,
        candidates: int,
        k: int,
        order_by: str,
        descending: bool = False,
        start_from: str | None = None,
        score_threshold: float | None = None,
        filter: d.Filter | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[d.ScoredPoint]:
        query = self._check_vector(vector)
        native = self._filter(filter, exclude_ids)
        scan = OrderedScan(candidates, k, order_by, descending, start_from, score_threshold)
        points = self._engine_ordered(query.tolist(), native, scan)
        # The engine scores an order_by hit by its order value: score it by cosine again.
        return [d.ScoredPoint(p.id, _cosine(p.vector, query), p.payload) for p in points]

    # --- rules shared by the methods above ------------------------------------

    def _page(self, k: int, offset: int, query: _Query) -> list[d.ScoredPoint]:
        """The page [offset, offset + k) of a ranking.

        Where the engine orders equal scores (common among BM25 and RRF scores)
        differently for different limits, pages would overlap: ask for a margin
        past the page and sort by (score, id), which makes pages consistent
        unless more than the margin tie at the page's end.
        """
        if not self._ties_follow_limit:
            return query(k, offset)
        points = query(offset + k + max(TIE_MARGIN, k), 0)
        points.sort(key=lambda p: (-p.score, p.id))
        return points[offset : offset + k]

    def _filter(self, filter: d.Filter | None, exclude_ids: Sequence[str] = ()) -> F | None:
        self._require_open()
        return self._filters.combine(filter, unique_ids(exclude_ids))

    def _require_open(self) -> d.CollectionSpec:
        self._check_not_closed()
        return self.spec

    def _check_not_closed(self) -> None:
        if self._closed:
            raise RuntimeError(f"store of collection {self._collection!r} is closed")

    def _check_vector(self, vector: np.ndarray | None) -> np.ndarray:
        return checked_vector(vector, self._require_open(), self._collection)

    def _write_of(self, point: d.StoredPoint) -> PointWrite:
        dense = self._check_vector(point.vector)
        caption = point.payload.get(d.CAPTION)
        terms = document_terms(caption) if isinstance(caption, str) else None
        return PointWrite(d.normalize_point_id(point.id), dense, terms or None, dict(point.payload))

    def _existing_id(self, point_id: str) -> str:
        pid = d.normalize_point_id(point_id)
        self._require_open()
        if not self._engine_retrieve([pid], with_payload=False, with_vectors=False):
            raise d.PointNotFound(f"no point with id {pid}")
        return pid


def _cosine(vector: np.ndarray | None, query: np.ndarray) -> float:
    return float(np.dot(vector, query)) if vector is not None else 0.0
