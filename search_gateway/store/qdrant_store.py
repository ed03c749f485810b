"""VectorStore over qdrant-client: embedded on disk (local mode) or a Qdrant server.

The rules live in store/policy.py; this adapter only speaks qdrant-client.
Both modes run the same calls; the differences are kept here:
* local mode locks its folder for one process and is not thread-safe, so calls
  are serialised with a lock (gRPC handlers run in a thread pool);
* only the server can be unreachable, so only server calls are retried.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from search_gateway import domain as d
from search_gateway.caption_terms import SparseTerms
from search_gateway.store import model_record
from search_gateway.store import qdrant_schema as schema
from search_gateway.store.base import PointGroup, canonical_id
from search_gateway.store.engine import (
    OrderedScan,
    PointWrite,
    Unrecorded,
    named_vectors,
    stored_point,
)
from search_gateway.store.policy import PolicyStore
from search_gateway.store.qdrant_errors import unavailable_reason
from search_gateway.store.qdrant_filters import QDRANT_FILTERS

log = logging.getLogger(__name__)

T = TypeVar("T")


class QdrantStore(PolicyStore[models.Filter]):
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
        super().__init__(
            collection, location, QDRANT_FILTERS, threading.RLock() if serialize else None
        )
        self._client = client
        self._retries = retries
        self._retry_backoff_s = retry_backoff_s

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

    # --- collection ---------------------------------------------------------

    def _engine_exists(self) -> bool:
        return self._call(lambda: self._client.collection_exists(self._collection))

    def _engine_create(self, spec: d.CollectionSpec) -> None:
        log.info("creating collection %s for %s", self._collection, spec.describe())
        try:
            self._call(
                lambda: self._client.create_collection(
                    self._collection,
                    vectors_config=schema.vectors_config(spec),
                    sparse_vectors_config=schema.sparse_vectors_config(),
                    metadata=model_record.spec_to_metadata(spec),
                )
            )
        except UnexpectedResponse as exc:
            # Another gateway created it first; open() checks what it recorded.
            if exc.status_code != 409:
                raise

    def _info(self) -> models.CollectionInfo:
        return self._call(lambda: self._client.get_collection(self._collection))

    def _engine_record(self) -> d.CollectionSpec | None:
        return model_record.spec_from_metadata(self._info().config.metadata)

    def _engine_unrecorded(self) -> Unrecorded:
        vectors = self._info().config.params.vectors
        dense = vectors.get(d.DENSE_VECTOR) if isinstance(vectors, dict) else None
        count = self._call(lambda: self._client.count(self._collection, exact=True)).count
        return Unrecorded(dense.size if dense is not None else None, count == 0)

    def _engine_write_record(self, spec: d.CollectionSpec) -> None:
        self._call(
            lambda: self._client.update_collection(
                self._collection, metadata=model_record.spec_to_metadata(spec)
            )
        )

    def _engine_attach(self, spec: d.CollectionSpec) -> None:
        if self.location == "embedded":
            _tune_local_persistence(self._client, self._collection)

    def _engine_indexed_fields(self) -> Collection[str]:
        return set(self._info().payload_schema or {})

    def _engine_create_index(self, field: str, kind: d.IndexKind) -> None:
        with warnings.catch_warnings():
            # Local mode warns that it builds no payload indexes; that is expected
            # (filters still work by scanning) and the server does build them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            self._call(
                lambda: self._client.create_payload_index(
                    self._collection,
                    field,
                    field_schema=schema.payload_index_schema(kind),
                    wait=True,
                )
            )

    def _engine_close(self) -> None:
        self._client.close()

    # --- reads --------------------------------------------------------------

    def _engine_retrieve(
        self, ids: list[str], *, with_payload: bool, with_vectors: bool
    ) -> list[d.StoredPoint]:
        records = self._call(
            lambda: self._client.retrieve(
                self._collection,
                ids,
                with_payload=with_payload,
                with_vectors=[d.DENSE_VECTOR] if with_vectors else False,
            )
        )
        return [stored_point(r.id, r.payload, r.vector) for r in records]

    def _engine_lacking(self, field: str) -> models.Filter:
        empty = models.IsEmptyCondition(is_empty=models.PayloadField(key=field))
        return models.Filter(must=[empty])

    def _engine_count(self, flt: models.Filter | None) -> int:
        result = self._call(
            lambda: self._client.count(self._collection, count_filter=flt, exact=True)
        )
        return int(result.count)

    def _engine_scroll(
        self, flt: models.Filter | None, limit: int, offset: str | None, *, with_payload: bool
    ) -> tuple[list[d.StoredPoint], str | None]:
        records, next_offset = self._call(
            lambda: self._client.scroll(
                self._collection,
                scroll_filter=flt,
                limit=limit,
                offset=offset,
                with_payload=with_payload,
                with_vectors=False,
            )
        )
        points = [stored_point(r.id, r.payload, r.vector) for r in records]
        return points, None if next_offset is None else canonical_id(next_offset)

    # --- writes -------------------------------------------------------------

    def _engine_upsert(self, points: list[PointWrite]) -> None:
        structs = [
            models.PointStruct(id=p.id, vector=named_vectors(p, _sparse), payload=p.payload)
            for p in points
        ]
        self._call(lambda: self._client.upsert(self._collection, structs, wait=True))

    def _engine_set_terms(self, point_id: str, terms: SparseTerms | None) -> None:
        if terms is not None:
            vector: dict[str, Any] = {d.CAPTION_VECTOR: _sparse(terms)}
            self._call(
                lambda: self._client.update_vectors(
                    self._collection, [models.PointVectors(id=point_id, vector=vector)], wait=True
                )
            )
        else:
            self._call(
                lambda: self._client.delete_vectors(
                    self._collection, [d.CAPTION_VECTOR], points=[point_id], wait=True
                )
            )

    def _engine_set_payload(self, ids: list[str], fields: dict[str, Any]) -> None:
        selector = models.PointIdsList(points=list(ids))
        self._call(
            lambda: self._client.set_payload(self._collection, fields, points=selector, wait=True)
        )

    def _engine_delete(self, ids: list[str]) -> None:
        selector = models.PointIdsList(points=list(ids))
        self._call(
            lambda: self._client.delete(self._collection, points_selector=selector, wait=True)
        )

    # --- searches -----------------------------------------------------------

    def _engine_nearest(
        self,
        dense: list[float],
        flt: models.Filter | None,
        limit: int,
        offset: int,
        score_threshold: float | None,
    ) -> list[d.ScoredPoint]:
        return self._query(
            query=dense,
            using=d.DENSE_VECTOR,
            limit=limit,
            offset=offset,
            score_threshold=score_threshold,
            query_filter=flt,
        )

    def _engine_caption_nearest(
        self, terms: SparseTerms, flt: models.Filter | None, limit: int, offset: int
    ) -> list[d.ScoredPoint]:
        return self._query(
            query=_sparse(terms),
            using=d.CAPTION_VECTOR,
            limit=limit,
            offset=offset,
            query_filter=flt,
        )

    def _engine_fused(
        self,
        dense: list[float],
        terms: SparseTerms | None,
        depth: int,
        flt: models.Filter | None,
        limit: int,
        offset: int,
    ) -> list[d.ScoredPoint]:
        prefetch = [models.Prefetch(query=dense, using=d.DENSE_VECTOR, filter=flt, limit=depth)]
        if terms is not None:
            prefetch.append(
                models.Prefetch(
                    query=_sparse(terms), using=d.CAPTION_VECTOR, filter=flt, limit=depth
                )
            )
        return self._query(
            prefetch=prefetch,
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            limit=limit,
            offset=offset,
            query_filter=flt,
        )

    def _engine_groups(
        self,
        dense: list[float],
        flt: models.Filter | None,
        group_by: str,
        groups: int,
        group_size: int,
        score_threshold: float | None,
    ) -> list[PointGroup]:
        response = self._call(
            lambda: self._client.query_points_groups(
                self._collection,
                query=dense,
                using=d.DENSE_VECTOR,
                group_by=group_by,
                limit=groups,
                group_size=group_size,
                score_threshold=score_threshold,
                query_filter=flt,
                with_payload=True,
            )
        )
        return [
            PointGroup(
                str(g.id),
                [
                    d.ScoredPoint(canonical_id(p.id), float(p.score), p.payload or {})
                    for p in g.hits
                ],
            )
            for g in response.groups
        ]

    def _engine_ordered(
        self,
        dense: list[float],
        flt: models.Filter | None,
        scan: OrderedScan,
    ) -> list[d.StoredPoint]:
        order = models.OrderBy(
            key=scan.order_by,
            direction=models.Direction.DESC if scan.descending else models.Direction.ASC,
            start_from=_order_start(scan.start_from),
        )
        prefetch = models.Prefetch(
            query=dense, using=d.DENSE_VECTOR, limit=scan.candidates,
            score_threshold=scan.score_threshold, filter=flt,
        )  # fmt: skip
        response = self._call(
            lambda: self._client.query_points(
                self._collection,
                prefetch=prefetch,
                query=models.OrderByQuery(order_by=order),
                limit=scan.k,
                with_payload=True,
                with_vectors=[d.DENSE_VECTOR],
            )
        )
        return [stored_point(p.id, p.payload, p.vector) for p in response.points]

    # --- helpers ------------------------------------------------------------

    def _query(self, **request: Any) -> list[d.ScoredPoint]:
        response = self._call(
            lambda: self._client.query_points(self._collection, with_payload=True, **request)
        )
        return [
            d.ScoredPoint(id=canonical_id(p.id), score=float(p.score), payload=p.payload or {})
            for p in response.points
        ]

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


def _sparse(terms: SparseTerms) -> models.SparseVector:
    return models.SparseVector(indices=list(terms.indices), values=list(terms.values))


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
        conn = local.collections[collection].storage.storage  # type: ignore[attr-defined]
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except Exception as exc:
        log.debug("local persistence left at defaults: %s", exc)


def _order_start(value: str | None) -> datetime | float | None:
    """start_from of an order_by: RFC 3339 text as a datetime, else a number."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
