"""Domain filters to Qdrant Edge filters: small pure functions, no shard.

Edge's filter model has the same shape as qdrant-client's (must / should /
must_not, field conditions, has-id), but its own Python classes, so
search_gateway/filters.py cannot be reused as is; this mirrors it clause for
clause.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import qdrant_edge as qe

from search_gateway import domain as d


def to_edge_filter(f: d.Filter) -> qe.Filter:
    """Validates f (InvalidFilter) and converts it, nested filters included."""
    f.validate()
    return _convert_filter(f)


def _convert_filter(f: d.Filter) -> qe.Filter:
    return qe.Filter(
        must=[to_edge_condition(c) for c in f.must] or None,
        should=[to_edge_condition(c) for c in f.should] or None,
        must_not=[to_edge_condition(c) for c in f.must_not] or None,
    )


def match_value(value: str | int | bool) -> qe.MatchValue:
    """An exact-match value; booleans need care.

    qdrant-edge-py 0.9 reads a Python bool as the integer 0/1 (bool is an int
    subclass), which then matches no boolean payload; numpy.bool_ is read as
    a real boolean.
    """
    if isinstance(value, bool):
        return qe.MatchValue(np.bool_(value))  # type: ignore[arg-type]  # on purpose, see above
    return qe.MatchValue(value)


def to_edge_condition(c: d.Condition) -> qe.Filter | qe.FieldCondition:
    """One domain condition as an Edge field condition (or nested filter)."""
    if isinstance(c, d.Filter):
        return _convert_filter(c)
    if isinstance(c, d.Match):
        return qe.FieldCondition(c.key, match=match_value(c.value))
    if isinstance(c, d.MatchAny):
        return qe.FieldCondition(
            c.key, match=qe.MatchAny(cast("list[str] | list[int]", list(c.values)))
        )
    if isinstance(c, d.Range):
        return qe.FieldCondition(c.key, range=qe.RangeFloat(gt=c.gt, gte=c.gte, lt=c.lt, lte=c.lte))
    if isinstance(c, d.DatetimeRange):
        bounds = {
            name: d.rfc3339(bound)
            for name in ("gt", "gte", "lt", "lte")
            if (bound := getattr(c, name)) is not None
        }
        return qe.FieldCondition(c.key, range=qe.RangeDateTime(**bounds))
    if isinstance(c, d.GeoRadius):
        return qe.FieldCondition(
            c.key, geo_radius=qe.GeoRadius(qe.GeoPoint(lon=c.lon, lat=c.lat), float(c.radius_m))
        )
    if isinstance(c, d.TextMatch):
        return qe.FieldCondition(c.key, match=qe.MatchText(c.text))
    raise d.InvalidFilter(f"not a condition: {type(c).__name__}")


def combine(f: d.Filter | None, exclude_ids: Sequence[str] = ()) -> qe.Filter | None:
    """The Edge filter of a request: the user's filter, minus excluded ids.

    Same shape as filters.combine: the user's filter is nested as one `must`
    clause so its own should/must_not keep their meaning.
    """
    user = to_edge_filter(f) if f is not None and not f.is_empty else None
    if not exclude_ids:
        return user
    return qe.Filter(
        must=[user] if user is not None else None,
        must_not=[qe.HasIdCondition(set(exclude_ids))],
    )
