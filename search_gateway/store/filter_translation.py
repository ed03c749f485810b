"""Domain filters to an engine's filter classes, walked in one place.

Qdrant Edge and qdrant-client share Qdrant's filter model (must / should /
must_not, field conditions, has-id) but each has its own Python classes. The
walk over a domain Filter, and the shape of a request's filter (the user's
filter nested as one `must` clause, excluded ids as `must_not`), are written
here once; each engine supplies only a `FilterDialect` that builds its own
objects (store/qdrant_filters.py, store/edge_filters.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Generic, Protocol, TypeVar, cast

from search_gateway import domain as d

F = TypeVar("F")  # the engine's filter class
C = TypeVar("C")  # the engine's condition class (field condition, has-id, ...)

_BOUNDS = ("gt", "gte", "lt", "lte")


class FilterDialect(Protocol[F, C]):
    """Constructors of one engine's filter objects, one per domain clause."""

    def filter(
        self, must: list[F | C] | None, should: list[F | C] | None, must_not: list[F | C] | None
    ) -> F: ...

    def match(self, key: str, value: str | int | bool) -> C: ...

    def match_any(self, key: str, values: list[str] | list[int]) -> C: ...

    def range(self, key: str, bounds: dict[str, float | None]) -> C:
        """Numeric range; bounds has gt, gte, lt, lte (None: open)."""
        ...

    def datetime_range(self, key: str, bounds: dict[str, str]) -> C:
        """Datetime range; bounds has only the closed ends, as RFC 3339 UTC text."""
        ...

    def geo_radius(self, key: str, lat: float, lon: float, radius_m: float) -> C: ...

    def text(self, key: str, text: str) -> C: ...

    def has_id(self, ids: Sequence[str]) -> C: ...


class FilterTranslation(Generic[F, C]):
    """Domain filters to one engine's filters, through its dialect."""

    def __init__(self, dialect: FilterDialect[F, C]) -> None:
        self._dialect = dialect

    def filter(self, f: d.Filter) -> F:
        """Validates f (InvalidFilter) and converts it, nested filters included."""
        f.validate()
        return self._filter(f)

    def _filter(self, f: d.Filter) -> F:
        return self._dialect.filter(
            must=[self.condition(c) for c in f.must] or None,
            should=[self.condition(c) for c in f.should] or None,
            must_not=[self.condition(c) for c in f.must_not] or None,
        )

    def condition(self, c: d.Condition) -> F | C:
        """One domain condition as the engine's field condition (or nested filter)."""
        x = self._dialect
        if isinstance(c, d.Filter):
            return self._filter(c)
        if isinstance(c, d.Match):
            return x.match(c.key, c.value)
        if isinstance(c, d.MatchAny):
            return x.match_any(c.key, cast("list[str] | list[int]", list(c.values)))
        if isinstance(c, d.Range):
            return x.range(c.key, {name: getattr(c, name) for name in _BOUNDS})
        if isinstance(c, d.DatetimeRange):
            bounds: dict[str, str] = {}
            for name in _BOUNDS:
                bound: datetime | None = getattr(c, name)
                if bound is not None:
                    bounds[name] = d.rfc3339(bound)
            return x.datetime_range(c.key, bounds)
        if isinstance(c, d.GeoRadius):
            return x.geo_radius(c.key, c.lat, c.lon, c.radius_m)
        if isinstance(c, d.TextMatch):
            return x.text(c.key, c.text)
        raise d.InvalidFilter(f"not a condition: {type(c).__name__}")

    def combine(self, f: d.Filter | None, exclude_ids: Sequence[str] = ()) -> F | None:
        """The filter of a request: the user's filter, minus excluded ids.

        The user's filter is nested as one `must` clause so its own should /
        must_not keep their meaning next to the excluded ids.
        """
        user = self.filter(f) if f is not None and not f.is_empty else None
        if not exclude_ids:
            return user
        return self._dialect.filter(
            must=[user] if user is not None else None,
            should=None,
            must_not=[self._dialect.has_id(exclude_ids)],
        )
