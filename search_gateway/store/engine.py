"""What an engine adapter supplies to PolicyStore: one engine call per hook.

The hooks take canonical ids, checked vectors and the engine's own filter
objects, and return domain points; the rules that decide when and with what
they are called live in store/policy.py. An adapter (store/qdrant_store.py,
store/edge_store.py) subclasses PolicyStore and implements every hook here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from search_gateway import domain as d
from search_gateway.caption_terms import SparseTerms
from search_gateway.store.base import PointGroup, canonical_id

F = TypeVar("F")  # the engine's filter class


@dataclass(frozen=True)
class PointWrite:
    """One point as an engine writes it: canonical id, checked vector, terms.

    The vector stays a numpy array until the adapter builds its engine's point
    (`named_vectors`), so a batch holds one Python float list at a time.
    """

    id: str
    dense: np.ndarray  # float32, checked against the collection
    terms: SparseTerms | None  # caption terms; None when the point has no caption words
    payload: dict[str, Any]


@dataclass(frozen=True)
class OrderedScan:
    """What search_ordered asks an engine: k of the `candidates` nearest points
    (a prefetch, above `score_threshold`), ordered by the payload field
    `order_by` from `start_from` (inclusive)."""

    candidates: int
    k: int
    order_by: str
    descending: bool
    start_from: str | None
    score_threshold: float | None


@dataclass(frozen=True)
class Unrecorded:
    """What an engine knows of a collection that carries no model record."""

    dimension: int | None  # of the dense vector, when readable
    empty: bool


def stored_point(raw_id: Any, payload: dict[str, Any] | None, vectors: Any) -> d.StoredPoint:
    """An engine's record as a StoredPoint: canonical id, the dense vector if fetched."""
    vector = None
    if isinstance(vectors, dict) and d.DENSE_VECTOR in vectors:
        vector = np.asarray(vectors[d.DENSE_VECTOR], dtype=np.float32)
    return d.StoredPoint(id=canonical_id(raw_id), payload=payload or {}, vector=vector)


def named_vectors(point: PointWrite, sparse: Callable[[SparseTerms], Any]) -> dict[str, Any]:
    """The vectors of a point write, caption terms in the engine's sparse class."""
    vectors: dict[str, Any] = {d.DENSE_VECTOR: point.dense.tolist()}
    if point.terms is not None:
        vectors[d.CAPTION_VECTOR] = sparse(point.terms)
    return vectors


class EngineHooks(ABC, Generic[F]):
    """The engine calls PolicyStore is written over."""

    @abstractmethod
    def _engine_exists(self) -> bool:
        """Whether the collection's data exists."""

    @abstractmethod
    def _engine_create(self, spec: d.CollectionSpec) -> None:
        """Creates the collection for spec, with its model record (ModelMismatch
        where a record of another model is left without data)."""

    @abstractmethod
    def _engine_record(self) -> d.CollectionSpec | None:
        """The recorded spec, or None when there is no (valid) record."""

    @abstractmethod
    def _engine_unrecorded(self) -> Unrecorded:
        """Dimension and emptiness of a collection that has no record."""

    @abstractmethod
    def _engine_write_record(self, spec: d.CollectionSpec) -> None:
        """Records spec as the collection's model."""

    @abstractmethod
    def _engine_attach(self, spec: d.CollectionSpec) -> None:
        """Readies a checked collection for use (load it, tune it)."""

    @abstractmethod
    def _engine_indexed_fields(self) -> Collection[str]:
        """Payload fields that already have an index."""

    @abstractmethod
    def _engine_create_index(self, field: str, kind: d.IndexKind) -> None:
        """Creates the payload index of one field."""

    @abstractmethod
    def _engine_retrieve(
        self, ids: list[str], *, with_payload: bool, with_vectors: bool
    ) -> list[d.StoredPoint]:
        """The points of these ids that exist (payload {} without with_payload)."""

    @abstractmethod
    def _engine_lacking(self, field: str) -> F:
        """The engine's filter of points without `field` (Qdrant's is_empty)."""

    @abstractmethod
    def _engine_count(self, flt: F | None) -> int:
        """Exact number of points matching flt."""

    @abstractmethod
    def _engine_scroll(
        self, flt: F | None, limit: int, offset: str | None, *, with_payload: bool
    ) -> tuple[list[d.StoredPoint], str | None]:
        """One page in id order and the canonical id the next page starts at."""

    @abstractmethod
    def _engine_upsert(self, points: list[PointWrite]) -> None:
        """Writes points whole; a point without terms loses its old ones."""

    @abstractmethod
    def _engine_set_terms(self, point_id: str, terms: SparseTerms | None) -> None:
        """Replaces (or, with None, deletes) one point's caption terms."""

    @abstractmethod
    def _engine_set_payload(self, ids: list[str], fields: dict[str, Any]) -> None:
        """Overwrites these payload keys of these (existing) points."""

    @abstractmethod
    def _engine_delete(self, ids: list[str]) -> None:
        """Deletes these (existing) points."""

    @abstractmethod
    def _engine_nearest(
        self,
        dense: list[float],
        flt: F | None,
        limit: int,
        offset: int,
        score_threshold: float | None,
    ) -> list[d.ScoredPoint]:
        """Cosine nearest neighbours of the dense vector."""

    @abstractmethod
    def _engine_caption_nearest(
        self, terms: SparseTerms, flt: F | None, limit: int, offset: int
    ) -> list[d.ScoredPoint]:
        """Best caption matches of the query terms (BM25 through the IDF modifier)."""

    @abstractmethod
    def _engine_fused(
        self,
        dense: list[float],
        terms: SparseTerms | None,
        depth: int,
        flt: F | None,
        limit: int,
        offset: int,
    ) -> list[d.ScoredPoint]:
        """RRF over a dense and (with terms) a caption prefetch, each `depth` deep."""

    @abstractmethod
    def _engine_groups(
        self,
        dense: list[float],
        flt: F | None,
        group_by: str,
        groups: int,
        group_size: int,
        score_threshold: float | None,
    ) -> list[PointGroup]:
        """Nearest points grouped by a payload field (Qdrant's query_points_groups)."""

    @abstractmethod
    def _engine_ordered(
        self, dense: list[float], flt: F | None, scan: OrderedScan
    ) -> list[d.StoredPoint]:
        """The points `scan` describes, in its order, with their dense vectors."""

    @abstractmethod
    def _engine_close(self) -> None:
        """Releases the engine."""
