"""VectorStore over Qdrant Edge: the Qdrant engine in-process, on disk.

The rules live in store/policy.py (same semantics and domain errors as
QdrantStore); this adapter only speaks qdrant-edge-py, and keeps what differs:
* Edge has no collection metadata: the model record is a JSON file next to
  the shard (store/edge_files.py);
* Edge has no background optimizer: new points land in a plain (exact-scan)
  segment until optimize() builds the HNSW graph; the store calls it once
  enough points have arrived (EdgeTuning.optimize_after_points);
* qdrant-edge-py 0.9 holds the GIL while optimize() runs, so the whole
  process pauses for that call (seconds at 10k new points, minutes at 1M);
* Edge orders equal scores differently for different limits, so the policy
  cuts pages from one stable ranking (PolicyStore._page).

Layout of one collection: <data_dir>/<collection>/{shard/, imgsearch.json, .lock}.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import qdrant_edge as qe

from search_gateway import domain as d
from search_gateway.caption_terms import SparseTerms
from search_gateway.store import edge_files
from search_gateway.store.base import PointGroup, canonical_id, group_nearest
from search_gateway.store.edge_files import MODEL_RECORD, FolderLock
from search_gateway.store.edge_filters import EDGE_FILTERS
from search_gateway.store.edge_schema import (
    EdgeTuning,
    index_params,
    shard_config,
    shard_dense_size,
    sparse,
)
from search_gateway.store.engine import (
    OrderedScan,
    PointWrite,
    Unrecorded,
    named_vectors,
    stored_point,
)
from search_gateway.store.policy import PolicyStore

__all__ = ["MODEL_RECORD", "RRF_K", "EdgeStore", "EdgeTuning"]

# Deepest nearest list grouped in Python (Edge has no group API).
_GROUP_DEPTH_MAX = 2000

log = logging.getLogger(__name__)

T = TypeVar("T")

# Qdrant's default RRF constant (qdrant-client local mode and the server use 2).
RRF_K = 2
_COLLECTION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


class EdgeStore(PolicyStore[qe.Filter]):
    """One imgsearch collection as a Qdrant Edge shard in a folder of its own."""

    _ties_follow_limit = True

    def __init__(self, folder: Path, collection: str, tuning: EdgeTuning | None = None) -> None:
        super().__init__(collection, "embedded", EDGE_FILTERS, threading.RLock())
        self._folder = Path(folder)
        self._tuning = tuning or EdgeTuning()
        self._shard: qe.EdgeShard | None = None
        self._unoptimized = 0
        self._optimize_threshold = self._tuning.optimize_after_points
        self._flushed_at = time.monotonic()
        # Whether anything changed since the last flush: a read-only session
        # (a CLI query, stats) closes without flushing, which costs Edge an
        # msync of every segment file (0.2-0.4 s here) for nothing.
        self._changed = False
        self._wrote = False  # anything at all in this session (see `wrote`)
        self._folder.mkdir(parents=True, exist_ok=True)
        self._folder_lock = FolderLock(self._folder)

    @classmethod
    def open_dir(
        cls, data_dir: Path, collection: str, tuning: EdgeTuning | None = None
    ) -> EdgeStore:
        """The collection's shard under data_dir (one process at a time)."""
        if not _COLLECTION_RE.fullmatch(collection):
            raise ValueError(
                f"collection name {collection!r} cannot name a folder: "
                "use letters, digits, '_', '-' and '.'"
            )
        return cls(Path(data_dir) / collection, collection, tuning)

    @property
    def shard_path(self) -> Path:
        return self._folder / "shard"

    @property
    def wrote(self) -> bool:
        """Whether this session changed the shard (a process that wrote nothing
        may end without closing it: the OS releases its files and lock)."""
        return self._wrote

    # --- Edge's own maintenance ---------------------------------------------

    def optimize(self) -> None:
        """Builds HNSW graphs and merges segments now (blocks, GIL included)."""
        with self._lock:
            shard = self._require_shard()
            log.info("optimizing Edge shard %s (%d new points)", self.shard_path, self._unoptimized)
            shard.optimize()
            self._wrote = True  # segments rewritten (flushed just below)
            self.flush()
            self._unoptimized = 0
            self._update_optimize_threshold(shard)

    def flush(self) -> None:
        """Writes pending segment changes to disk (the WAL already holds them)."""
        with self._lock:
            self._require_shard().flush()
            self._flushed_at = time.monotonic()
            self._changed = False

    def _update_optimize_threshold(self, shard: qe.EdgeShard) -> None:
        t = self._tuning
        indexed = shard.info().points_count - self._unoptimized
        self._optimize_threshold = max(t.optimize_after_points, int(t.optimize_growth * indexed))

    # --- collection ---------------------------------------------------------

    def _engine_exists(self) -> bool:
        return (self.shard_path / "segments").is_dir()

    def _engine_create(self, spec: d.CollectionSpec) -> None:
        stored = edge_files.read_record(self._folder)
        if stored is not None and stored != spec:  # a record left without its shard
            raise d.ModelMismatch(self._collection, stored, spec)
        log.info("creating Edge shard %s for %s", self.shard_path, spec.describe())
        config = shard_config(spec, self._tuning)
        self._shard = self._edge(lambda: qe.EdgeShard.create(str(self.shard_path), config))
        self._changed = self._wrote = True
        edge_files.write_record(self._folder, spec)

    def _engine_record(self) -> d.CollectionSpec | None:
        return edge_files.read_record(self._folder)

    def _engine_unrecorded(self) -> Unrecorded:
        size = shard_dense_size(self.shard_path)
        shard = self._edge(lambda: qe.EdgeShard.load(str(self.shard_path)))
        try:
            empty = shard.info().points_count == 0
        finally:
            shard.close()
        return Unrecorded(size, empty)

    def _engine_write_record(self, spec: d.CollectionSpec) -> None:
        edge_files.write_record(self._folder, spec)

    def _engine_attach(self, spec: d.CollectionSpec) -> None:
        if self._shard is None:
            # Passing the config applies changed tuning; Edge checks the vectors fit.
            config = shard_config(spec, self._tuning)
            self._shard = self._edge(lambda: qe.EdgeShard.load(str(self.shard_path), config))
        info = self._shard.info()
        self._unoptimized = max(0, info.points_count - info.indexed_vectors_count)
        self._update_optimize_threshold(self._shard)

    def _engine_indexed_fields(self) -> Collection[str]:
        assert self._shard is not None
        return set(self._shard.info().payload_schema)

    def _engine_create_index(self, field: str, kind: d.IndexKind) -> None:
        assert self._shard is not None
        self._shard.update(qe.UpdateOperation.create_field_index(field, index_params(kind)))
        self._changed = self._wrote = True

    def _engine_close(self) -> None:
        try:
            if self._shard is not None:
                if self._changed:
                    self._shard.flush()
                self._shard.close()
                self._shard = None
        finally:
            self._folder_lock.release()

    # --- reads --------------------------------------------------------------

    def _engine_retrieve(
        self, ids: list[str], *, with_payload: bool, with_vectors: bool
    ) -> list[d.StoredPoint]:
        wanted: list[int | uuid.UUID | str] = list(ids)
        with self._lock:
            records = self._require_shard().retrieve(
                wanted, with_payload, [d.DENSE_VECTOR] if with_vectors else False
            )
        return [stored_point(r.id, r.payload, r.vector) for r in records]

    def _engine_lacking(self, field: str) -> qe.Filter:
        return qe.Filter(must=[qe.IsEmptyCondition(field)])

    def _engine_count(self, flt: qe.Filter | None) -> int:
        with self._lock:
            return int(self._require_shard().count(qe.CountRequest(exact=True, filter=flt)))

    def _engine_scroll(
        self, flt: qe.Filter | None, limit: int, offset: str | None, *, with_payload: bool
    ) -> tuple[list[d.StoredPoint], str | None]:
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=flt, with_payload=with_payload, with_vector=False
        )
        with self._lock:
            records, next_offset = self._require_shard().scroll(request)
        points = [stored_point(r.id, r.payload, r.vector) for r in records]
        return points, None if next_offset is None else canonical_id(next_offset)

    # --- writes -------------------------------------------------------------

    def _engine_upsert(self, points: list[PointWrite]) -> None:
        edge_points = [qe.Point(p.id, named_vectors(p, sparse), p.payload) for p in points]
        with self._lock:
            self._require_shard().update(qe.UpdateOperation.upsert_points(edge_points))
            self._changed = self._wrote = True
            self._unoptimized += len(edge_points)
            if self._unoptimized >= self._optimize_threshold:
                self.optimize()
            elif time.monotonic() - self._flushed_at >= self._tuning.flush_interval_s:
                self.flush()

    def _engine_set_terms(self, point_id: str, terms: SparseTerms | None) -> None:
        if terms is not None:
            vectors = [qe.PointVectors(point_id, {d.CAPTION_VECTOR: sparse(terms)})]
            self._update(qe.UpdateOperation.update_vectors(vectors))
        else:
            self._update(qe.UpdateOperation.delete_vectors([point_id], [d.CAPTION_VECTOR]))

    def _engine_set_payload(self, ids: list[str], fields: dict[str, Any]) -> None:
        wanted: list[int | uuid.UUID | str] = list(ids)
        self._update(qe.UpdateOperation.set_payload(wanted, fields))

    def _engine_delete(self, ids: list[str]) -> None:
        wanted: list[int | uuid.UUID | str] = list(ids)
        self._update(qe.UpdateOperation.delete_points(wanted))

    # --- searches -----------------------------------------------------------

    def _engine_nearest(
        self,
        dense: list[float],
        flt: qe.Filter | None,
        limit: int,
        offset: int,
        score_threshold: float | None,
    ) -> list[d.ScoredPoint]:
        return self._query(
            limit,
            offset,
            query=qe.Query.Nearest(dense, using=d.DENSE_VECTOR),
            filter=flt,
            score_threshold=score_threshold,
            params=self._search_params(),
        )

    def _engine_caption_nearest(
        self, terms: SparseTerms, flt: qe.Filter | None, limit: int, offset: int
    ) -> list[d.ScoredPoint]:
        query = qe.Query.Nearest(sparse(terms), using=d.CAPTION_VECTOR)
        return self._query(limit, offset, query=query, filter=flt)

    def _engine_fused(
        self,
        dense: list[float],
        terms: SparseTerms | None,
        depth: int,
        flt: qe.Filter | None,
        limit: int,
        offset: int,
    ) -> list[d.ScoredPoint]:
        prefetches = [
            qe.Prefetch(
                limit=depth,
                query=qe.Query.Nearest(dense, using=d.DENSE_VECTOR),
                filter=flt,
                params=self._search_params(),
            )
        ]
        if terms is not None:
            caption = qe.Query.Nearest(sparse(terms), using=d.CAPTION_VECTOR)
            prefetches.append(qe.Prefetch(limit=depth, query=caption, filter=flt))
        return self._query(
            limit, offset, query=qe.Fusion.Rrf(k=RRF_K), prefetches=prefetches, filter=flt
        )

    # --- helpers ------------------------------------------------------------

    def _engine_groups(
        self,
        dense: list[float],
        flt: qe.Filter | None,
        group_by: str,
        groups: int,
        group_size: int,
        score_threshold: float | None,
    ) -> list[PointGroup]:
        # qdrant-edge-py 0.9 has no group API (no query_points_groups): group a
        # deep nearest list, as the server groups its candidates.
        depth = min(_GROUP_DEPTH_MAX, max(100, 4 * groups * group_size))
        hits = self._engine_nearest(dense, flt, depth, 0, score_threshold)
        return group_nearest(hits, group_by, groups, group_size)

    def _engine_ordered(
        self,
        dense: list[float],
        flt: qe.Filter | None,
        scan: OrderedScan,
    ) -> list[d.StoredPoint]:
        direction = qe.Direction.Desc if scan.descending else qe.Direction.Asc
        order = qe.OrderBy(scan.order_by, direction, scan.start_from)
        prefetch = qe.Prefetch(
            limit=scan.candidates,
            query=qe.Query.Nearest(dense, using=d.DENSE_VECTOR),
            filter=flt,
            score_threshold=scan.score_threshold,
            params=self._search_params(),
        )
        request = qe.QueryRequest(
            limit=scan.k, query=order, prefetches=[prefetch], with_payload=True, with_vector=True
        )
        with self._lock:
            hits = self._require_shard().query(request)
        return [stored_point(h.id, h.payload, h.vector) for h in hits]

    def _query(self, limit: int, offset: int, **request: Any) -> list[d.ScoredPoint]:
        with self._lock:
            hits = self._require_shard().query(
                qe.QueryRequest(limit=limit, offset=offset, with_payload=True, **request)
            )
        return [
            d.ScoredPoint(id=canonical_id(h.id), score=float(h.score), payload=h.payload or {})
            for h in hits
        ]

    def _update(self, operation: qe.UpdateOperation) -> None:
        with self._lock:
            self._require_shard().update(operation)
            self._changed = self._wrote = True

    def _search_params(self) -> qe.SearchParams:
        return qe.SearchParams(hnsw_ef=self._tuning.hnsw_ef)

    def _require_shard(self) -> qe.EdgeShard:
        self._require_open()
        assert self._shard is not None
        return self._shard

    def _edge(self, fn: Callable[[], T]) -> T:
        """Runs a shard open/create, mapping "locked by another process" to StoreUnavailable."""
        try:
            return fn()
        except Exception as exc:
            if "WouldBlock" in str(exc):  # Edge's own WAL lock (no flock on this OS)
                raise d.StoreUnavailable(edge_files.in_use_message(self._folder)) from exc
            raise
