"""VectorStore over qdrant-client: embedded on disk (local mode) or a Qdrant server.

Both modes run the same calls; the differences are kept here:
* local mode locks its folder for one process and is not thread-safe, so calls
  are serialised with a lock (gRPC handlers run in a thread pool);
* only the server can be unreachable, so only server calls are retried.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from search_gateway import domain as d
from search_gateway.caption_terms import document_terms, query_terms
from search_gateway.filters import combine
from search_gateway.store import qdrant_schema as schema
from search_gateway.store.base import (
    PointGroup,
    ScrollPage,
    canonical_id,
    checked_vector,
    unique_ids,
)
from search_gateway.store.qdrant_errors import unavailable_reason

log = logging.getLogger(__name__)

T = TypeVar("T")

# Page size for id scans (delete by filter).
_ID_PAGE = 1024


class QdrantStore:
    """One imgsearch collection in Qdrant, through qdrant-client."""

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        location: str,
        *,
        serialize: bool,
        retries: int = 0,
        retry_backoff_s: float = 0.2,
    ) -> None:
        self._client = client
        self._collection = collection
        self._location = location
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if serialize else contextlib.nullcontext()
        )
        self._retries = retries
        self._retry_backoff_s = retry_backoff_s
        self._spec: d.CollectionSpec | None = None
        self._closed = False

    @classmethod
    def embedded(cls, data_dir: Path, collection: str) -> QdrantStore:
        """Qdrant local mode on disk under data_dir (one process at a time)."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            # Our own lock serialises calls, so the sqlite thread check is not needed.
            client = QdrantClient(path=str(data_dir), force_disable_check_same_thread=True)
        except RuntimeError as exc:
            raise d.StoreUnavailable(
                f"the Qdrant data folder {data_dir} is in use by another process; "
                "stop it, or use a Qdrant server (QDRANT_URL) for concurrent access"
            ) from exc
        return cls(client, collection, "embedded", serialize=True)

    @classmethod
    def in_memory(cls, collection: str) -> QdrantStore:
        """Qdrant local mode in memory: nothing persists (benchmarks, experiments)."""
        client = QdrantClient(location=":memory:", force_disable_check_same_thread=True)
        return cls(client, collection, "memory", serialize=True)

    @classmethod
    def server(
        cls,
        url: str,
        api_key: str | None,
        collection: str,
        *,
        timeout_s: int = 10,
        retries: int = 2,
        prefer_grpc: bool = False,
    ) -> QdrantStore:
        """A Qdrant server or cluster; connects lazily, on the first call."""
        client = QdrantClient(
            url=url,
            api_key=api_key or None,
            timeout=timeout_s,
            prefer_grpc=prefer_grpc,
            # The version probe would connect here, outside our error mapping.
            check_compatibility=False,
        )
        return cls(client, collection, url, serialize=False, retries=retries)

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
        if not self._call(lambda: self._client.collection_exists(self._collection)):
            self._create(spec)
        info = self._call(lambda: self._client.get_collection(self._collection))
        stored = schema.spec_from_metadata(info.config.metadata)
        if stored is None:
            stored = self._adopt_unrecorded(info, spec)
        if stored != spec:
            raise d.ModelMismatch(self._collection, stored, spec)
        self._ensure_indexes(info.payload_schema or {})
        if self.location == "embedded":
            _tune_local_persistence(self._client, self._collection)
        self._spec = stored
        return stored

    def _create(self, spec: d.CollectionSpec) -> None:
        log.info("creating collection %s for %s", self._collection, spec.describe())
        try:
            self._call(
                lambda: self._client.create_collection(
                    self._collection,
                    vectors_config=schema.vectors_config(spec),
                    sparse_vectors_config=schema.sparse_vectors_config(),
                    metadata=schema.spec_to_metadata(spec),
                )
            )
        except UnexpectedResponse as exc:
            # Another gateway created it first; open() checks what it recorded.
            if exc.status_code != 409:
                raise

    def _adopt_unrecorded(
        self, info: models.CollectionInfo, spec: d.CollectionSpec
    ) -> d.CollectionSpec:
        """Spec of a collection without our record: adopted only when empty and fitting.

        That happens when a server ignored the metadata (Qdrant < 1.16) or
        someone created the collection by hand; anything else is refused.
        """
        vectors = info.config.params.vectors
        dense = vectors.get(d.DENSE_VECTOR) if isinstance(vectors, dict) else None
        size = dense.size if dense is not None else 0
        empty = self._call(lambda: self._client.count(self._collection, exact=True)).count == 0
        if size == spec.dimension and empty:
            self._call(
                lambda: self._client.update_collection(
                    self._collection, metadata=schema.spec_to_metadata(spec)
                )
            )
            return spec
        return d.CollectionSpec("unknown (no imgsearch model record)", "?", max(size, 1))

    def _ensure_indexes(self, existing: dict[str, Any]) -> None:
        with warnings.catch_warnings():
            # Local mode warns that it builds no payload indexes; that is expected
            # (filters still work by scanning) and the server does build them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for field, kind in d.PAYLOAD_INDEXES.items():
                if field in existing:
                    continue
                self._call(
                    lambda f=field, k=kind: self._client.create_payload_index(
                        self._collection, f, field_schema=schema.payload_index_schema(k), wait=True
                    )
                )

    # --- reads --------------------------------------------------------------

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[d.StoredPoint]:
        wanted = unique_ids(ids)
        if not wanted:
            return []
        records = self._call(
            lambda: self._client.retrieve(
                self._collection,
                wanted,
                with_payload=True,
                with_vectors=[d.DENSE_VECTOR] if with_vectors else False,
            )
        )
        by_id = {p.id: p for p in map(self._stored_point, records)}
        return [by_id[i] for i in wanted if i in by_id]

    def count(self, filter: d.Filter | None = None) -> int:
        self._require_open()
        qfilter = combine(filter)
        result = self._call(
            lambda: self._client.count(self._collection, count_filter=qfilter, exact=True)
        )
        return int(result.count)

    def scroll(
        self, filter: d.Filter | None = None, limit: int = 256, offset: str | None = None
    ) -> ScrollPage:
        self._require_open()
        qfilter = combine(filter)
        start = d.normalize_point_id(offset) if offset is not None else None
        records, next_offset = self._call(
            lambda: self._client.scroll(
                self._collection,
                scroll_filter=qfilter,
                limit=limit,
                offset=start,
                with_payload=True,
                with_vectors=False,
            )
        )
        return ScrollPage(
            points=[self._stored_point(r) for r in records],
            next_offset=None if next_offset is None else canonical_id(next_offset),
        )

    # --- writes -------------------------------------------------------------

    def upsert(self, points: Sequence[d.StoredPoint]) -> None:
        structs = [self._point_struct(p) for p in points]
        if structs:
            self._call(lambda: self._client.upsert(self._collection, structs, wait=True))

    def set_payload(self, point_id: str, fields: dict[str, Any]) -> None:
        pid = self._existing_id(point_id)
        if d.CAPTION in fields:
            # Terms first: if the payload write then fails, caption_pending is still
            # set and the caption job redoes both.
            self._write_caption_terms(pid, fields[d.CAPTION])
        self._call(
            lambda: self._client.set_payload(
                self._collection, dict(fields), points=[pid], wait=True
            )
        )

    def set_caption(self, point_id: str, caption: str, model: str) -> None:
        self.set_payload(point_id, d.caption_fields(caption, model))

    def delete_ids(self, ids: Sequence[str]) -> int:
        wanted = unique_ids(ids)
        if not wanted:
            return 0
        self._require_open()
        existing = self._call(
            lambda: self._client.retrieve(
                self._collection, wanted, with_payload=False, with_vectors=False
            )
        )
        found = [canonical_id(r.id) for r in existing]
        self._delete(found)
        return len(found)

    def delete_filter(self, filter: d.Filter) -> int:
        if filter.is_empty:
            raise d.InvalidFilter("an empty filter would delete every point; refusing")
        self._require_open()
        # Ids first, then delete exactly those: the count returned is what was deleted,
        # even while other writers add matching points.
        ids: list[str] = []
        offset: str | None = None
        while True:
            page, offset = self._scroll_ids(filter, offset)
            ids.extend(page)
            if offset is None:
                break
        for start in range(0, len(ids), _ID_PAGE):
            self._delete(ids[start : start + _ID_PAGE])
        return len(ids)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._lock:
                self._client.close()

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
        query = self._check_vector(vector).tolist()
        qfilter = combine(filter, unique_ids(exclude_ids))
        response = self._call(
            lambda: self._client.query_points(
                self._collection,
                query=query,
                using=d.DENSE_VECTOR,
                limit=k,
                offset=offset,
                score_threshold=score_threshold,
                query_filter=qfilter,
                with_payload=True,
            )
        )
        return [_scored(p) for p in response.points]

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
        qfilter = combine(filter, unique_ids(exclude_ids))
        response = self._call(
            lambda: self._client.query_points(
                self._collection,
                query=models.SparseVector(indices=list(terms.indices), values=list(terms.values)),
                using=d.CAPTION_VECTOR,
                limit=k,
                offset=offset,
                query_filter=qfilter,
                with_payload=True,
            )
        )
        return [_scored(p) for p in response.points]

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
        qfilter = combine(filter, unique_ids(exclude_ids))
        # RRF can only rank what the prefetches return: fetch a few times the page
        # so items ranked moderately in both lists still surface.
        depth = min(1000, max(50, 3 * (k + offset)))
        prefetch = [models.Prefetch(query=dense, using=d.DENSE_VECTOR, filter=qfilter, limit=depth)]
        terms = query_terms(text)
        if terms:
            prefetch.append(
                models.Prefetch(
                    query=models.SparseVector(
                        indices=list(terms.indices), values=list(terms.values)
                    ),
                    using=d.CAPTION_VECTOR,
                    filter=qfilter,
                    limit=depth,
                )
            )
        response = self._call(
            lambda: self._client.query_points(
                self._collection,
                prefetch=prefetch,
                query=models.FusionQuery(fusion=models.Fusion.RRF),
                limit=k,
                offset=offset,
                query_filter=qfilter,
                with_payload=True,
            )
        )
        return [_scored(p) for p in response.points]

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
        query = self._check_vector(vector).tolist()
        qfilter = combine(filter, unique_ids(exclude_ids))
        response = self._call(
            lambda: self._client.query_points_groups(
                self._collection,
                query=query,
                using=d.DENSE_VECTOR,
                group_by=group_by,
                limit=groups,
                group_size=group_size,
                score_threshold=score_threshold,
                query_filter=qfilter,
                with_payload=True,
            )
        )
        return [PointGroup(str(g.id), [_scored(p) for p in g.hits]) for g in response.groups]

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
        qfilter = combine(filter, unique_ids(exclude_ids))
        order = models.OrderBy(
            key=order_by,
            direction=models.Direction.DESC if descending else models.Direction.ASC,
            start_from=_order_start(start_from),
        )
        response = self._call(
            lambda: self._client.query_points(
                self._collection,
                prefetch=models.Prefetch(
                    query=q.tolist(),
                    using=d.DENSE_VECTOR,
                    limit=candidates,
                    score_threshold=score_threshold,
                    filter=qfilter,
                ),
                query=models.OrderByQuery(order_by=order),
                limit=k,
                with_payload=True,
                with_vectors=[d.DENSE_VECTOR],
            )
        )
        return [_cosine_scored(p, q) for p in response.points]

    # --- helpers ------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        """Runs one client call: serialised in local mode, retried when unreachable."""
        attempt = 0
        while True:
            try:
                with self._lock:
                    return fn()
            except Exception as exc:
                reason, retryable = unavailable_reason(exc)
                if reason is None:
                    raise
                if not retryable or attempt >= self._retries:
                    raise d.StoreUnavailable(
                        f"Qdrant at {self._location} is unavailable: {reason}"
                    ) from exc
                delay = self._retry_backoff_s * 2**attempt
                log.warning("Qdrant call failed (%s), retrying in %.1fs", reason, delay)
                time.sleep(delay)
                attempt += 1

    def _require_open(self) -> d.CollectionSpec:
        return self.spec

    def _check_vector(self, vector: np.ndarray | None) -> np.ndarray:
        return checked_vector(vector, self._require_open(), self._collection)

    def _point_struct(self, point: d.StoredPoint) -> models.PointStruct:
        vectors: dict[str, Any] = {d.DENSE_VECTOR: self._check_vector(point.vector).tolist()}
        caption = point.payload.get(d.CAPTION)
        if isinstance(caption, str) and (terms := document_terms(caption)):
            vectors[d.CAPTION_VECTOR] = models.SparseVector(
                indices=list(terms.indices), values=list(terms.values)
            )
        return models.PointStruct(
            id=d.normalize_point_id(point.id), vector=vectors, payload=dict(point.payload)
        )

    def _write_caption_terms(self, pid: str, caption: Any) -> None:
        terms = document_terms(caption) if isinstance(caption, str) else None
        if terms:
            sparse = models.SparseVector(indices=list(terms.indices), values=list(terms.values))
            self._call(
                lambda: self._client.update_vectors(
                    self._collection,
                    [models.PointVectors(id=pid, vector={d.CAPTION_VECTOR: sparse})],
                    wait=True,
                )
            )
        else:
            self._call(
                lambda: self._client.delete_vectors(
                    self._collection, [d.CAPTION_VECTOR], points=[pid], wait=True
                )
            )

    def _existing_id(self, point_id: str) -> str:
        pid = d.normalize_point_id(point_id)
        if not self.get([pid]):
            raise d.PointNotFound(f"no point with id {pid}")
        return pid

    def _delete(self, ids: list[str]) -> None:
        if ids:
            self._call(
                lambda: self._client.delete(
                    self._collection, points_selector=models.PointIdsList(points=ids), wait=True
                )
            )

    def _scroll_ids(self, filter: d.Filter, offset: str | None) -> tuple[list[str], str | None]:
        qfilter = combine(filter)
        records, next_offset = self._call(
            lambda: self._client.scroll(
                self._collection,
                scroll_filter=qfilter,
                limit=_ID_PAGE,
                offset=offset,
                with_payload=False,
                with_vectors=False,
            )
        )
        ids = [canonical_id(r.id) for r in records]
        return ids, None if next_offset is None else canonical_id(next_offset)

    def _stored_point(self, record: models.Record) -> d.StoredPoint:
        vector = None
        if isinstance(record.vector, dict) and d.DENSE_VECTOR in record.vector:
            vector = np.asarray(record.vector[d.DENSE_VECTOR], dtype=np.float32)
        return d.StoredPoint(
            id=canonical_id(record.id), payload=record.payload or {}, vector=vector
        )


def _scored(point: models.ScoredPoint) -> d.ScoredPoint:
    return d.ScoredPoint(
        id=canonical_id(point.id), score=float(point.score), payload=point.payload or {}
    )


def _order_start(value: str | None) -> datetime | float | None:
    """start_from of an order_by: RFC 3339 text as a datetime, else a number."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _cosine_scored(point: Any, query: np.ndarray) -> d.ScoredPoint:
    """An order_by hit (whose score is the order value) scored by cosine again."""
    vec = point.vector[d.DENSE_VECTOR] if isinstance(point.vector, dict) else point.vector
    score = float(np.dot(np.asarray(vec, dtype=np.float32), query))
    return d.ScoredPoint(id=canonical_id(point.id), score=score, payload=point.payload or {})


def _tune_local_persistence(client: QdrantClient, collection: str) -> None:
    """Puts local mode's SQLite file in WAL mode with synchronous=NORMAL.

    qdrant-client's local mode commits every point in its own transaction
    with a full fsync: about 70 points/s on our disks, slower than the model.
    WAL + NORMAL makes a commit an append to the log (~3,000 points/s). The
    file stays consistent; a process crash loses nothing that was committed;
    only an OS crash or power loss can drop the last commits, which a re-run
    of the (idempotent) ingest restores. The objects reached here are
    qdrant-client internals, so any surprise leaves the defaults in place.
    """
    try:
        local = client._client  # QdrantLocal
        conn = local.collections[collection].storage.storage  # sqlite3.Connection
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except Exception as exc:
        log.debug("local persistence left at defaults: %s", exc)
