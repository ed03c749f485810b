"""Domain filters to Qdrant Edge filters: no shard.

Edge's filter model has the same shape as qdrant-client's but its own Python
classes; the walk and the request shape live in store/filter_translation.py,
this is only the Edge dialect of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import qdrant_edge as qe

from search_gateway import domain as d
from search_gateway.store.filter_translation import FilterTranslation

if TYPE_CHECKING:  # the stub's union of every Edge condition class (not in the module)
    EdgeCondition = qe.ConditionType


def match_value(value: str | int | bool) -> qe.MatchValue:
    """An exact-match value; booleans need care.

    qdrant-edge-py 0.9 reads a Python bool as the integer 0/1 (bool is an int
    subclass), which then matches no boolean payload; numpy.bool_ is read as
    a real boolean.
    """
    if isinstance(value, bool):
        return qe.MatchValue(np.bool_(value))  # type: ignore[arg-type]  # the stub lists bool only
    return qe.MatchValue(value)


class EdgeDialect:
    """qdrant-edge-py's filter classes, one constructor per domain clause."""

    def filter(
        self,
        must: list[EdgeCondition] | None,
        should: list[EdgeCondition] | None,
        must_not: list[EdgeCondition] | None,
    ) -> qe.Filter:
        return qe.Filter(must=must, should=should, must_not=must_not)

    def match(self, key: str, value: str | int | bool) -> EdgeCondition:
        return qe.FieldCondition(key, match=match_value(value))

    def match_any(self, key: str, values: list[str] | list[int]) -> EdgeCondition:
        return qe.FieldCondition(key, match=qe.MatchAny(values))

    def range(self, key: str, bounds: dict[str, float | None]) -> EdgeCondition:
        return qe.FieldCondition(key, range=qe.RangeFloat(**bounds))

    def datetime_range(self, key: str, bounds: dict[str, str]) -> EdgeCondition:
        return qe.FieldCondition(key, range=qe.RangeDateTime(**bounds))

    def geo_radius(self, key: str, lat: float, lon: float, radius_m: float) -> EdgeCondition:
        return qe.FieldCondition(
            key, geo_radius=qe.GeoRadius(qe.GeoPoint(lon=lon, lat=lat), float(radius_m))
        )

    def text(self, key: str, text: str) -> EdgeCondition:
        return qe.FieldCondition(key, match=qe.MatchText(text))

    def has_id(self, ids: Sequence[str]) -> EdgeCondition:
        return qe.HasIdCondition(set(ids))


EDGE_FILTERS: FilterTranslation[qe.Filter, EdgeCondition] = FilterTranslation(EdgeDialect())


def to_edge_filter(f: d.Filter) -> qe.Filter:
    """Validates f (InvalidFilter) and converts it, nested filters included."""
    return EDGE_FILTERS.filter(f)


def to_edge_condition(c: d.Condition) -> EdgeCondition:
    """One domain condition as an Edge field condition (or nested filter)."""
    return EDGE_FILTERS.condition(c)


def combine(f: d.Filter | None, exclude_ids: Sequence[str] = ()) -> qe.Filter | None:
    """The Edge filter of a request: the user's filter, minus excluded ids."""
    return EDGE_FILTERS.combine(f, exclude_ids)
