"""The storage interface every engine implements (qdrant-client and Qdrant Edge).

Handlers and jobs depend on this Protocol only, through AsyncStore
(store/async_store.py) and the caller's TenantScope (tenancy.py). A new
method goes here, on PolicyStore (store/policy.py) with its engine hooks in
both adapters, as one line on AsyncStore and, scoped, on TenantScope.

Ids are canonical UUID strings, vectors are L2-normalised float32 numpy
arrays, payloads are plain JSON-like dicts (datetimes as RFC 3339 strings,
geo as {"lat", "lon"}).
Engines raise the domain errors: ModelMismatch, InvalidFilter,
InvalidPointId, PointNotFound, StoreUnavailable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from search_gateway import domain as d
from search_gateway.domain import CollectionSpec, Filter, ScoredPoint, StoredPoint


@dataclass(frozen=True)
class ScrollPage:
    """One page of a scroll; pass next_offset back to continue, None means done."""

    points: list[StoredPoint]
    next_offset: str | None


@dataclass(frozen=True)
class PointGroup:
    """Hits sharing one value of the group-by field, best first (issue 13)."""

    key: str
    hits: list[ScoredPoint]


@runtime_checkable
class VectorStore(Protocol):
    """One collection of image points: dense CLIP vector, caption terms, payload."""

    @property
    def collection(self) -> str:
        """Name of the collection."""
        ...

    @property
    def location(self) -> str:
        """Where the data lives, for Stats: "embedded" or the server URL."""
        ...

    def open(self, spec: CollectionSpec) -> CollectionSpec:
        """Creates the collection for spec, or checks that it was built with spec.

        Returns the stored spec. Raises ModelMismatch when the collection holds
        vectors of another model, pretrained tag or dimension. Every other
        method needs open() first.
        """
        ...

    def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[StoredPoint]:
        """Points with these ids, in the order given; unknown ids are left out."""
        ...

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        """Writes points whole (vector + payload); a caption in the payload is indexed."""
        ...

    def set_payload(self, point_id: str, fields: dict[str, Any]) -> None:
        """Overwrites these payload keys of an existing point (PointNotFound if missing).

        A `caption` among them also refreshes the caption terms.
        """
        ...

    def set_caption(self, point_id: str, caption: str, model: str) -> None:
        """Stores a late caption: text, model, terms, and clears caption_pending."""
        ...

    def search(
        self,
        vector: np.ndarray,
        k: int,
        offset: int = 0,
        score_threshold: float | None = None,
        filter: Filter | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[ScoredPoint]:
        """Nearest points by cosine similarity (score in [-1, 1], best first)."""
        ...

    def search_caption(
        self,
        text: str,
        k: int,
        offset: int = 0,
        filter: Filter | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[ScoredPoint]:
        """Points whose captions best match text (BM25-like score, best first)."""
        ...

    def search_hybrid(
        self,
        vector: np.ndarray,
        text: str,
        k: int,
        offset: int = 0,
        filter: Filter | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[ScoredPoint]:
        """Vector and caption rankings fused by reciprocal rank (RRF score)."""
        ...

    def search_groups(
        self,
        vector: np.ndarray,
        group_by: str,
        groups: int,
        group_size: int,
        score_threshold: float | None = None,
        filter: Filter | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[PointGroup]:
        """Best `groups` groups of nearest points sharing a `group_by` value, best first.

        Points without the field are left out. Each group holds up to
        `group_size` hits, best first (Qdrant's query_points_groups).
        """
        ...

    def search_ordered(
        self,
        vector: np.ndarray,
        candidates: int,
        k: int,
        order_by: str,
        descending: bool = False,
        start_from: str | None = None,
        score_threshold: float | None = None,
        filter: Filter | None = None,
        exclude_ids: Sequence[str] = (),
    ) -> list[ScoredPoint]:
        """The `candidates` nearest points (above score_threshold) ordered by a payload field.

        The engine does both steps (a prefetch, then order_by), returning the
        first k from `start_from` (inclusive, in the field's own terms: an RFC
        3339 datetime for timestamps). Scores are cosines, as in search().
        """
        ...

    def delete_ids(self, ids: Sequence[str]) -> int:
        """Deletes these points; returns how many existed."""
        ...

    def delete_filter(self, filter: Filter) -> int:
        """Deletes the points matching filter; returns how many were deleted."""
        ...

    def count(self, filter: Filter | None = None) -> int:
        """Exact number of points (matching filter when given)."""
        ...

    def scroll(
        self, filter: Filter | None = None, limit: int = 256, offset: str | None = None
    ) -> ScrollPage:
        """Pages through points in id order, for maintenance jobs."""
        ...

    def close(self) -> None:
        """Releases the engine (and the data folder lock in embedded mode)."""
        ...


def iter_points(
    store: VectorStore, filter: Filter | None = None, page_size: int = 256
) -> Iterator[StoredPoint]:
    """Every point matching filter, page by page, for maintenance jobs."""
    offset: str | None = None
    while True:
        page = store.scroll(filter, limit=page_size, offset=offset)
        yield from page.points
        if page.next_offset is None:
            return
        offset = page.next_offset


def group_nearest(
    points: Sequence[ScoredPoint], group_by: str, groups: int, group_size: int
) -> list[PointGroup]:
    """Groups ranked hits by a payload field, for engines without a group API.

    Keeps the engine's order: groups rank by their best hit. List values
    count once per value, as Qdrant's grouping does.
    """
    out: dict[str, list[ScoredPoint]] = {}
    for p in points:
        raw = p.payload.get(group_by)
        for value in raw if isinstance(raw, list) else [raw]:
            if value is None or isinstance(value, (dict, float)):
                continue
            key = str(value)
            if key not in out and len(out) >= groups:
                continue
            members = out.setdefault(key, [])
            if len(members) < group_size:
                members.append(p)
    return [PointGroup(k, v) for k, v in out.items()]


def checked_vector(vector: np.ndarray | None, spec: CollectionSpec, collection: str) -> np.ndarray:
    """The vector as float32, or ValueError when it does not fit the collection."""
    if vector is None:
        raise ValueError("a point needs its CLIP vector")
    arr = np.asarray(vector, dtype=np.float32)
    if arr.shape != (spec.dimension,):
        raise ValueError(
            f"vector has shape {arr.shape}; collection {collection!r} "
            f"holds {spec.dimension}-dimensional vectors"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("vector has non-finite values")
    return arr


def canonical_id(point_id: Any) -> str:
    """An engine's id (UUID object or string) in the canonical string form."""
    return str(uuid.UUID(str(point_id)))


def unique_ids(ids: Sequence[str]) -> list[str]:
    """Canonical ids, first occurrence kept (InvalidPointId for a malformed one)."""
    if isinstance(ids, str):
        raise TypeError("expected a sequence of ids, got one string")
    return list(dict.fromkeys(d.normalize_point_id(i) for i in ids))
