"""Domain filters to qdrant-client filters (server and local mode): no client.

The walk and the request shape live in store/filter_translation.py; this is
only the qdrant-client dialect of it.
"""

from __future__ import annotations

from collections.abc import Sequence

from qdrant_client import models

from search_gateway import domain as d
from search_gateway.store.filter_translation import FilterTranslation

QdrantCondition = models.FieldCondition | models.HasIdCondition


class QdrantDialect:
    """qdrant-client's filter classes, one constructor per domain clause."""

    def filter(
        self,
        must: list[models.Filter | QdrantCondition] | None,
        should: list[models.Filter | QdrantCondition] | None,
        must_not: list[models.Filter | QdrantCondition] | None,
    ) -> models.Filter:
        return models.Filter(must=must, should=should, must_not=must_not)  # type: ignore[arg-type]

    def match(self, key: str, value: str | int | bool) -> QdrantCondition:
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))

    def match_any(self, key: str, values: list[str] | list[int]) -> QdrantCondition:
        return models.FieldCondition(key=key, match=models.MatchAny(any=values))

    def range(self, key: str, bounds: dict[str, float | None]) -> QdrantCondition:
        return models.FieldCondition(key=key, range=models.Range(**bounds))

    def datetime_range(self, key: str, bounds: dict[str, str]) -> QdrantCondition:
        return models.FieldCondition(key=key, range=models.DatetimeRange(**bounds))  # type: ignore[arg-type]

    def geo_radius(self, key: str, lat: float, lon: float, radius_m: float) -> QdrantCondition:
        return models.FieldCondition(
            key=key,
            geo_radius=models.GeoRadius(center=models.GeoPoint(lat=lat, lon=lon), radius=radius_m),
        )

    def text(self, key: str, text: str) -> QdrantCondition:
        return models.FieldCondition(key=key, match=models.MatchText(text=text))

    def has_id(self, ids: Sequence[str]) -> QdrantCondition:
        return models.HasIdCondition(has_id=list(ids))


QDRANT_FILTERS: FilterTranslation[models.Filter, QdrantCondition] = FilterTranslation(
    QdrantDialect()
)


def to_qdrant_filter(f: d.Filter) -> models.Filter:
    """Validates f (InvalidFilter) and converts it, nested filters included."""
    return QDRANT_FILTERS.filter(f)


def to_qdrant_condition(c: d.Condition) -> models.Filter | QdrantCondition:
    """One domain condition as a Qdrant field condition (or nested filter)."""
    return QDRANT_FILTERS.condition(c)


def combine(f: d.Filter | None, exclude_ids: Sequence[str] = ()) -> models.Filter | None:
    """The Qdrant filter of a request: the user's filter, minus excluded ids."""
    return QDRANT_FILTERS.combine(f, exclude_ids)
