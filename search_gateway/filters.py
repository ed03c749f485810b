"""Domain filters to qdrant-client filters: small pure functions, no client.

Shared by every engine that speaks Qdrant's filter model (server, local mode,
and Qdrant Edge, whose filters have the same shape).
"""

from __future__ import annotations

from collections.abc import Sequence

from qdrant_client import models

from search_gateway import domain as d


def to_qdrant_filter(f: d.Filter) -> models.Filter:
    """Validates f (InvalidFilter) and converts it, nested filters included."""
    f.validate()
    return _convert_filter(f)


def _convert_filter(f: d.Filter) -> models.Filter:
    return models.Filter(
        must=[to_qdrant_condition(c) for c in f.must] or None,
        should=[to_qdrant_condition(c) for c in f.should] or None,
        must_not=[to_qdrant_condition(c) for c in f.must_not] or None,
    )


def to_qdrant_condition(c: d.Condition) -> models.Filter | models.FieldCondition:
    """One domain condition as a Qdrant field condition (or nested filter)."""
    if isinstance(c, d.Filter):
        return _convert_filter(c)
    if isinstance(c, d.Match):
        return models.FieldCondition(key=c.key, match=models.MatchValue(value=c.value))
    if isinstance(c, d.MatchAny):
        return models.FieldCondition(key=c.key, match=models.MatchAny(any=list(c.values)))
    if isinstance(c, d.Range):
        return models.FieldCondition(
            key=c.key, range=models.Range(gt=c.gt, gte=c.gte, lt=c.lt, lte=c.lte)
        )
    if isinstance(c, d.DatetimeRange):
        bounds = {
            name: d.rfc3339(bound)
            for name in ("gt", "gte", "lt", "lte")
            if (bound := getattr(c, name)) is not None
        }
        return models.FieldCondition(key=c.key, range=models.DatetimeRange(**bounds))
    if isinstance(c, d.GeoRadius):
        return models.FieldCondition(
            key=c.key,
            geo_radius=models.GeoRadius(
                center=models.GeoPoint(lat=c.lat, lon=c.lon), radius=c.radius_m
            ),
        )
    if isinstance(c, d.TextMatch):
        return models.FieldCondition(key=c.key, match=models.MatchText(text=c.text))
    raise d.InvalidFilter(f"not a condition: {type(c).__name__}")


def combine(f: d.Filter | None, exclude_ids: Sequence[str] = ()) -> models.Filter | None:
    """The Qdrant filter of a request: the user's filter, minus excluded ids.

    The user's filter is nested as one `must` clause so its own should/must_not
    keep their meaning next to the added conditions.
    """
    must: list[models.Condition] = []
    if f is not None and not f.is_empty:
        must.append(to_qdrant_filter(f))
    must_not: list[models.Condition] = []
    if exclude_ids:
        must_not.append(models.HasIdCondition(has_id=list(exclude_ids)))
    if not must and not must_not:
        return None
    if len(must) == 1 and not must_not and isinstance(must[0], models.Filter):
        return must[0]
    return models.Filter(must=must or None, must_not=must_not or None)
