"""VectorStore over Qdrant Edge: the Qdrant engine in-process, on disk.

Same semantics and domain errors as QdrantStore; what differs is kept here:
* Edge has no collection metadata, so the model record is a small JSON file
  next to the shard (written atomically: temp file + rename);
* Edge has no background optimizer: new points land in a plain (exact-scan)
  segment until optimize() builds the HNSW graph; the store calls it once
  enough points have arrived (EdgeTuning.optimize_after_points);
* qdrant-edge-py 0.9 holds the GIL while optimize() runs, so the whole
  process pauses for that call (seconds at 10k new points, minutes at 1M).

Layout of one collection: <data_dir>/<collection>/{shard/, imgsearch.json, .lock}.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import qdrant_edge as qe

from search_gateway import domain as d
from search_gateway.caption_terms import document_terms, query_terms
from search_gateway.store import qdrant_schema as schema
from search_gateway.store.base import (
    PointGroup,
    ScrollPage,
    canonical_id,
    checked_vector,
    group_nearest,
    unique_ids,
)
from search_gateway.store.edge_filters import combine

try:  # POSIX: one process per data folder, as qdrant-client local mode enforces
    import fcntl
except ImportError:  # pragma: no cover - Windows relies on Edge's own WAL lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Page size for id scans (delete by filter).
_ID_PAGE = 1024
# Qdrant's default RRF constant (qdrant-client local mode and the server use 2).
RRF_K = 2
MODEL_RECORD = "imgsearch.json"
# Extra hits fetched past a page so ties at its end are ordered consistently.
_TIE_MARGIN = 16
# Deepest nearest list grouped in Python (Edge has no group API).
_GROUP_DEPTH_MAX = 2000
_COLLECTION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


@dataclass(frozen=True)
class EdgeTuning:
    """HNSW and optimizer knobs of an Edge shard (defaults meet the 1M-point target)."""

    hnsw_m: int = 16
    hnsw_ef_construct: int = 100  # Qdrant's default
    # Segments under this size (KB of vectors) are scanned exactly instead of
    # searched through HNSW; Qdrant's default.
    full_scan_threshold_kb: int = 10_000
    # ef at query time: recall@10 >= 0.95 on clustered CLIP-like vectors at 1M.
    hnsw_ef: int = 128
    # optimize() runs once max(optimize_after_points, optimize_growth * points
    # already indexed) points were written since the last run: rebuilds stay
    # rare as the shard grows. Until then new points are searched exactly (a
    # plain scan, ~1 ms per 10k points).
    optimize_after_points: int = 20_000
    optimize_growth: float = 0.2
    # Upper bound of one segment (KB); bounds what one optimize() rebuilds.
    max_segment_size_kb: int | None = None
    # Writes flush segments at most this often (Qdrant server's default), so
    # the WAL is truncated instead of growing and replaying at every start.
    flush_interval_s: float = 5.0


class EdgeStore:
    """One imgsearch collection as a Qdrant Edge shard in a folder of its own."""

    def __init__(self, folder: Path, collection: str, tuning: EdgeTuning | None = None) -> None:
        self._folder = Path(folder)
        self._collection = collection
        self._tuning = tuning or EdgeTuning()
        self._lock = threading.RLock()
        self._shard: qe.EdgeShard | None = None
        self._spec: d.CollectionSpec | None = None
        self._lock_file: Any = None
        self._closed = False
        self._unoptimized = 0
        self._optimize_threshold = self._tuning.optimize_after_points
        self._flushed_at = time.monotonic()
        self._folder.mkdir(parents=True, exist_ok=True)
        self._take_folder_lock()

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

    # --- properties ---------------------------------------------------------

    @property
    def collection(self) -> str:
        return self._collection

    @property
    def location(self) -> str:
        return "embedded"

    @property
    def spec(self) -> d.CollectionSpec:
        """The spec recorded with the collection (after open())."""
        if self._spec is None:
            raise RuntimeError("store not opened: call open(spec) first")
        return self._spec

    @property
    def shard_path(self) -> Path:
        return self._folder / "shard"

    # --- collection ---------------------------------------------------------

    def open(self, spec: d.CollectionSpec) -> d.CollectionSpec:
        with self._lock:
            self._check_not_closed()
            stored = self._read_record()
            if self._shard_exists():
                if stored is None:
                    stored = self._adopt_unrecorded(spec)
                if stored != spec:
                    raise d.ModelMismatch(self._collection, stored, spec)
                # Passing the config applies changed tuning; Edge checks the vectors fit.
                self._shard = self._edge(
                    lambda: qe.EdgeShard.load(str(self.shard_path), self._config(spec))
                )
            else:
                if stored is not None and stored != spec:
                    raise d.ModelMismatch(self._collection, stored, spec)
                log.info("creating Edge shard %s for %s", self.shard_path, spec.describe())
                self._shard = self._edge(
                    lambda: qe.EdgeShard.create(str(self.shard_path), self._config(spec))
                )
                self._write_record(spec)
            self._ensure_indexes()
            info = self._shard.info()
            self._unoptimized = max(0, info.points_count - info.indexed_vectors_count)
            self._update_optimize_threshold(self._shard)
            self._spec = spec
            return spec

    def _config(self, spec: d.CollectionSpec) -> qe.EdgeConfig:
        t = self._tuning
        return qe.EdgeConfig(
            vectors={
                d.DENSE_VECTOR: qe.EdgeVectorParams(
                    size=spec.dimension, distance=qe.Distance.Cosine
                )
            },
            # Qdrant's IDF modifier turns the caption terms' dot product into BM25.
            sparse_vectors={d.CAPTION_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            hnsw_config=qe.HnswIndexConfig(
                m=t.hnsw_m,
                ef_construct=t.hnsw_ef_construct,
                full_scan_threshold=t.full_scan_threshold_kb,
            ),
            optimizers=qe.EdgeOptimizersConfig(max_segment_size=t.max_segment_size_kb)
            if t.max_segment_size_kb
            else None,
        )

    def _adopt_unrecorded(self, spec: d.CollectionSpec) -> d.CollectionSpec:
        """Spec of a shard without our record (a crash between create and record).

        Adopted only when empty and of spec's dimension; anything else is refused.
        """
        size = _shard_dense_size(self.shard_path)
        shard = self._edge(lambda: qe.EdgeShard.load(str(self.shard_path)))
        try:
            empty = shard.info().points_count == 0
        finally:
            shard.close()
        if size == spec.dimension and empty:
            self._write_record(spec)
            return spec
        return d.CollectionSpec("unknown (no imgsearch model record)", "?", max(size or 1, 1))

    def _ensure_indexes(self) -> None:
        shard = self._shard
        assert shard is not None
        existing = shard.info().payload_schema
        for field, kind in d.PAYLOAD_INDEXES.items():
            if field not in existing:
                shard.update(qe.UpdateOperation.create_field_index(field, _index_params(kind)))

    # --- reads --------------------------------------------------------------

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[d.StoredPoint]:
        wanted = unique_ids(ids)
        if not wanted:
            return []
        with self._lock:
            records = self._require_shard().retrieve(
                wanted, True, [d.DENSE_VECTOR] if with_vectors else False
            )
        by_id = {p.id: p for p in map(_stored_point, records)}
        return [by_id[i] for i in wanted if i in by_id]

    def count(self, filter: d.Filter | None = None) -> int:
        flt = self._filter(filter)
        with self._lock:
            return int(self._require_shard().count(qe.CountRequest(exact=True, filter=flt)))

    def scroll(
        self, filter: d.Filter | None = None, limit: int = 256, offset: str | None = None
    ) -> ScrollPage:
        flt = self._filter(filter)
        start = d.normalize_point_id(offset) if offset is not None else None
        with self._lock:
            records, next_offset = self._require_shard().scroll(
                qe.ScrollRequest(
                    offset=start, limit=limit, filter=flt, with_payload=True, with_vector=False
                )
            )
        return ScrollPage(
            points=[_stored_point(r) for r in records],
            next_offset=None if next_offset is None else canonical_id(next_offset),
        )

    # --- writes -------------------------------------------------------------

    def upsert(self, points: Sequence[d.StoredPoint]) -> None:
        edge_points = [self._edge_point(p) for p in points]
        if not edge_points:
            return
        with self._lock:
            self._require_shard().update(qe.UpdateOperation.upsert_points(edge_points))
            self._unoptimized += len(edge_points)
            if self._unoptimized >= self._optimize_threshold:
                self.optimize()
            elif time.monotonic() - self._flushed_at >= self._tuning.flush_interval_s:
                self.flush()

    def set_payload(self, point_id: str, fields: dict[str, Any]) -> None:
        with self._lock:
            pid = self._existing_id(point_id)
            shard = self._require_shard()
            if d.CAPTION in fields:
                # Terms first, as QdrantStore: if the payload write then fails,
                # caption_pending is still set and the caption job redoes both.
                caption = fields[d.CAPTION]
                terms = document_terms(caption) if isinstance(caption, str) else None
                if terms:
                    vectors = {d.CAPTION_VECTOR: _sparse(terms)}
                    shard.update(qe.UpdateOperation.update_vectors([qe.PointVectors(pid, vectors)]))
                else:
                    shard.update(qe.UpdateOperation.delete_vectors([pid], [d.CAPTION_VECTOR]))
            shard.update(qe.UpdateOperation.set_payload([pid], dict(fields)))

    def set_caption(self, point_id: str, caption: str, model: str) -> None:
        self.set_payload(point_id, d.caption_fields(caption, model))

    def delete_ids(self, ids: Sequence[str]) -> int:
        wanted = unique_ids(ids)
        if not wanted:
            return 0
        with self._lock:
            shard = self._require_shard()
            existing = [canonical_id(r.id) for r in shard.retrieve(wanted, False, False)]
            if existing:
                shard.update(qe.UpdateOperation.delete_points(existing))
            return len(existing)

    def delete_filter(self, filter: d.Filter) -> int:
        if filter.is_empty:
            raise d.InvalidFilter("an empty filter would delete every point; refusing")
        flt = self._filter(filter)
        with self._lock:
            shard = self._require_shard()
            # Ids first, then exactly those: the count returned is what was deleted.
            ids: list[str] = []
            offset: str | None = None
            while True:
                records, next_offset = shard.scroll(
                    qe.ScrollRequest(
                        offset=offset,
                        limit=_ID_PAGE,
                        filter=flt,
                        with_payload=False,
                        with_vector=False,
                    )
                )
                ids.extend(canonical_id(r.id) for r in records)
                if next_offset is None:
                    break
                offset = canonical_id(next_offset)
            for start in range(0, len(ids), _ID_PAGE):
                shard.update(qe.UpdateOperation.delete_points(ids[start : start + _ID_PAGE]))
            return len(ids)

    def optimize(self) -> None:
        """Builds HNSW graphs and merges segments now (blocks, GIL included)."""
        with self._lock:
            shard = self._require_shard()
            log.info("optimizing Edge shard %s (%d new points)", self.shard_path, self._unoptimized)
            shard.optimize()
            self.flush()
            self._unoptimized = 0
            self._update_optimize_threshold(shard)

    def _update_optimize_threshold(self, shard: qe.EdgeShard) -> None:
        t = self._tuning
        indexed = shard.info().points_count - self._unoptimized
        self._optimize_threshold = max(t.optimize_after_points, int(t.optimize_growth * indexed))

    def flush(self) -> None:
        """Writes pending segment changes to disk (the WAL already holds them)."""
        with self._lock:
            self._require_shard().flush()
            self._flushed_at = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._shard is not None:
                    self._shard.flush()
                    self._shard.close()
                    self._shard = None
            finally:
                self._release_folder_lock()

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
        query = qe.Query.Nearest(self._check_vector(vector).tolist(), using=d.DENSE_VECTOR)
        flt = self._filter(filter, exclude_ids)
        return self._query(
            k,
            offset,
            query=query,
            filter=flt,
            score_threshold=score_threshold,
            with_payload=True,
            params=self._search_params(),
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
        flt = self._filter(filter, exclude_ids)
        return self._query(
            k,
            offset,
            query=qe.Query.Nearest(_sparse(terms), using=d.CAPTION_VECTOR),
            filter=flt,
            with_payload=True,
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
        flt = self._filter(filter, exclude_ids)
        # As QdrantStore: prefetch a few pages so items ranked moderately in
        # both lists still surface in the fusion.
        depth = min(1000, max(50, 3 * (k + offset)))
        prefetches = [
            qe.Prefetch(
                limit=depth,
                query=qe.Query.Nearest(dense, using=d.DENSE_VECTOR),
                filter=flt,
                params=self._search_params(),
            )
        ]
        terms = query_terms(text)
        if terms:
            prefetches.append(
                qe.Prefetch(
                    limit=depth,
                    query=qe.Query.Nearest(_sparse(terms), using=d.CAPTION_VECTOR),
                    filter=flt,
                )
            )
        return self._query(
            k,
            offset,
            query=qe.Fusion.Rrf(k=RRF_K),
            prefetches=prefetches,
            filter=flt,
            with_payload=True,
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
        # qdrant-edge-py 0.9 has no group API (no query_points_groups): take a
        # deep nearest list and group it, as the server does over its candidates.
        depth = min(_GROUP_DEPTH_MAX, max(100, 4 * groups * group_size))
        hits = self.search(vector, depth, 0, score_threshold, filter, exclude_ids)
        return group_nearest(hits, group_by, groups, group_size)

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
        q = self._check_vector(vector)
        flt = self._filter(filter, exclude_ids)
        order = qe.OrderBy(
            order_by, qe.Direction.Desc if descending else qe.Direction.Asc, start_from
        )
        prefetch = qe.Prefetch(
            limit=candidates,
            query=qe.Query.Nearest(q.tolist(), using=d.DENSE_VECTOR),
            filter=flt,
            score_threshold=score_threshold,
            params=self._search_params(),
        )
        request = qe.QueryRequest(
            limit=k, query=order, prefetches=[prefetch], with_payload=True, with_vector=True
        )
        with self._lock:
            hits = self._require_shard().query(request)
        out = []
        for h in hits:
            vec = h.vector[d.DENSE_VECTOR] if isinstance(h.vector, dict) else h.vector
            score = float(np.dot(np.asarray(vec, dtype=np.float32), q))
            out.append(d.ScoredPoint(id=canonical_id(h.id), score=score, payload=h.payload or {}))
        return out

    # --- helpers ------------------------------------------------------------

    def _query(self, k: int, offset: int, **request: Any) -> list[d.ScoredPoint]:
        """Runs a query and cuts the page [offset, offset + k) from a stable ranking.

        Edge orders equal scores (common among BM25 and RRF scores) differently
        for different limits, so pages would overlap. Asking for a margin past
        the page and sorting by (score, id) makes pages consistent, unless more
        than the margin tie at the page's end.
        """
        margin = max(_TIE_MARGIN, k)
        with self._lock:
            hits = self._require_shard().query(
                qe.QueryRequest(limit=offset + k + margin, offset=0, **request)
            )
        points = [
            d.ScoredPoint(id=canonical_id(h.id), score=float(h.score), payload=h.payload or {})
            for h in hits
        ]
        points.sort(key=lambda p: (-p.score, p.id))
        return points[offset : offset + k]

    def _search_params(self) -> qe.SearchParams:
        return qe.SearchParams(hnsw_ef=self._tuning.hnsw_ef)

    def _filter(self, filter: d.Filter | None, exclude_ids: Sequence[str] = ()) -> qe.Filter | None:
        self._require_open()
        return combine(filter, unique_ids(exclude_ids))

    def _require_open(self) -> d.CollectionSpec:
        return self.spec

    def _require_shard(self) -> qe.EdgeShard:
        self._check_not_closed()
        self._require_open()
        assert self._shard is not None
        return self._shard

    def _check_not_closed(self) -> None:
        if self._closed:
            raise RuntimeError(f"store of collection {self._collection!r} is closed")

    def _check_vector(self, vector: np.ndarray | None) -> np.ndarray:
        return checked_vector(vector, self._require_open(), self._collection)

    def _edge_point(self, point: d.StoredPoint) -> qe.Point:
        vectors: dict[str, Any] = {d.DENSE_VECTOR: self._check_vector(point.vector).tolist()}
        caption = point.payload.get(d.CAPTION)
        if isinstance(caption, str) and (terms := document_terms(caption)):
            vectors[d.CAPTION_VECTOR] = _sparse(terms)
        return qe.Point(d.normalize_point_id(point.id), vectors, dict(point.payload))

    def _existing_id(self, point_id: str) -> str:
        pid = d.normalize_point_id(point_id)
        if not self._require_shard().retrieve([pid], False, False):
            raise d.PointNotFound(f"no point with id {pid}")
        return pid

    def _shard_exists(self) -> bool:
        return (self.shard_path / "segments").is_dir()

    def _read_record(self) -> d.CollectionSpec | None:
        path = self._folder / MODEL_RECORD
        try:
            return schema.spec_from_metadata(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("unreadable model record %s: %s", path, exc)
            return None

    def _write_record(self, spec: d.CollectionSpec) -> None:
        """Writes the model record atomically: a temp file, fsynced, renamed over."""
        text = json.dumps(schema.spec_to_metadata(spec), indent=2, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=".imgsearch-", suffix=".json", dir=self._folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._folder / MODEL_RECORD)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _take_folder_lock(self) -> None:
        if fcntl is None:
            return
        f = open(self._folder / ".lock", "a+b")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            f.close()
            raise d.StoreUnavailable(self._in_use_message()) from exc
        self._lock_file = f

    def _release_folder_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing releases the flock
            self._lock_file = None

    def _in_use_message(self) -> str:
        return (
            f"the Qdrant Edge data folder {self._folder} is in use by another process; "
            "stop it, or use a Qdrant server (QDRANT_URL) for concurrent access"
        )

    def _edge(self, fn: Callable[[], T]) -> T:
        """Runs a shard open/create, mapping "locked by another process" to StoreUnavailable."""
        try:
            return fn()
        except Exception as exc:
            if "WouldBlock" in str(exc):  # Edge's own WAL lock (no flock on this OS)
                raise d.StoreUnavailable(self._in_use_message()) from exc
            raise


def _index_params(kind: d.IndexKind) -> qe.PayloadSchemaType | Any:
    """Edge payload index for a domain index kind (as qdrant_schema.payload_index_schema)."""
    if kind is d.IndexKind.KEYWORD:
        return qe.PayloadSchemaType.Keyword
    if kind is d.IndexKind.TENANT_KEYWORD:
        return qe.KeywordIndexParams(is_tenant=True)
    if kind is d.IndexKind.INTEGER:
        return qe.IntegerIndexParams(lookup=True, range=True)
    if kind is d.IndexKind.BOOL:
        return qe.PayloadSchemaType.Bool
    if kind is d.IndexKind.DATETIME:
        return qe.PayloadSchemaType.Datetime
    if kind is d.IndexKind.GEO:
        return qe.PayloadSchemaType.Geo
    if kind is d.IndexKind.TEXT:
        # The word tokenizer, lowercased: the same tokens as caption_terms.
        return qe.TextIndexParams(tokenizer=qe.TokenizerType.Word, lowercase=True)
    raise ValueError(f"no Edge index for {kind}")


def _shard_dense_size(shard_path: Path) -> int | None:
    """Dimension of the dense vector from the shard's edge_config.json, if readable."""
    try:
        config = json.loads((shard_path / "edge_config.json").read_text(encoding="utf-8"))
        return int(config["vectors"][d.DENSE_VECTOR]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _sparse(terms: Any) -> qe.SparseVector:
    return qe.SparseVector(list(terms.indices), list(terms.values))


def _stored_point(record: qe.Record) -> d.StoredPoint:
    vector = None
    if isinstance(record.vector, dict) and d.DENSE_VECTOR in record.vector:
        vector = np.asarray(record.vector[d.DENSE_VECTOR], dtype=np.float32)
    return d.StoredPoint(id=canonical_id(record.id), payload=record.payload or {}, vector=vector)
