"""Domain filters to qdrant-client filters, without any client."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from qdrant_client import models

from search_gateway import domain as d
from search_gateway.store.qdrant_filters import combine, to_qdrant_filter

UTC = timezone.utc


def _only_must(f: d.Filter) -> models.FieldCondition:
    q = to_qdrant_filter(f)
    assert q.should is None and q.must_not is None
    assert q.must is not None and len(q.must) == 1
    cond = q.must[0]
    assert isinstance(cond, models.FieldCondition)
    return cond


@pytest.mark.parametrize("value", ["cam-front", 7, True, False])
def test_match_keeps_value_type(value: str | int | bool) -> None:
    cond = _only_must(d.Filter(must=[d.Match("camera_id", value)]))
    assert cond.key == "camera_id"
    assert isinstance(cond.match, models.MatchValue)
    assert cond.match.value == value
    assert type(cond.match.value) is type(value)  # True must not become 1


def test_match_any_keywords_and_integers() -> None:
    cond = _only_must(d.Filter(must=[d.MatchAny("tags", ("a", "b"))]))
    assert cond.match == models.MatchAny(any=["a", "b"])
    cond = _only_must(d.Filter(must=[d.MatchAny("camera_id", (1, 2))]))
    assert cond.match == models.MatchAny(any=[1, 2])


def test_numeric_range_keeps_open_bounds_open() -> None:
    cond = _only_must(d.Filter(must=[d.Range("width", gte=1000, lt=2000.5)]))
    assert cond.range == models.Range(gte=1000, lt=2000.5)
    assert cond.range.gt is None and cond.range.lte is None


def test_datetime_range_is_rfc3339_utc() -> None:
    paris = timezone(timedelta(hours=2))
    start = datetime(2024, 5, 1, 12, 0, tzinfo=paris)
    cond = _only_must(d.Filter(must=[d.DatetimeRange("timestamp", gte=start)]))
    assert isinstance(cond.range, models.DatetimeRange)
    assert cond.range.gte == start  # same instant
    assert cond.range.gte.utcoffset() == timedelta(0)  # sent as UTC
    assert d.rfc3339(start) == "2024-05-01T10:00:00Z"
    assert cond.range.lt is None


def test_geo_radius() -> None:
    cond = _only_must(d.Filter(must=[d.GeoRadius("location", lat=48.85, lon=2.35, radius_m=5000)]))
    assert cond.geo_radius == models.GeoRadius(
        center=models.GeoPoint(lat=48.85, lon=2.35), radius=5000
    )


def test_text_match_is_full_text() -> None:
    cond = _only_must(d.Filter(must=[d.TextMatch("caption", "red jacket")]))
    assert cond.match == models.MatchText(text="red jacket")


def test_clauses_and_nesting() -> None:
    inner = d.Filter(should=[d.Match("camera_id", 1), d.Match("camera_id", 2)])
    f = d.Filter(
        must=[d.Range("width", gte=10), inner],
        should=[d.Match("format", "jpeg")],
        must_not=[d.MatchAny("tags", ("private",))],
    )
    q = to_qdrant_filter(f)
    assert len(q.must) == 2 and len(q.should) == 1 and len(q.must_not) == 1
    nested = q.must[1]
    assert isinstance(nested, models.Filter)
    assert [c.match.value for c in nested.should] == [1, 2]
    assert nested.must is None and nested.must_not is None


def test_invalid_filter_is_rejected_with_its_path() -> None:
    f = d.Filter(must=[d.Match("a", 1), d.Filter(must_not=[d.Range("width")])])
    with pytest.raises(d.InvalidFilter, match=r"must\[1\]\.must_not\[0\] \(range on 'width'\)"):
        to_qdrant_filter(f)


def test_combine_nests_the_user_filter_and_excludes_ids() -> None:
    assert combine(None) is None
    assert combine(d.Filter()) is None
    user = d.Filter(should=[d.Match("a", 1), d.Match("a", 2)])
    alone = combine(user)
    assert alone == to_qdrant_filter(user)
    ids = ["6b1f3c8e-2a4d-5e7f-9a0b-1c2d3e4f5a6b"]
    both = combine(user, ids)
    assert both.must == [to_qdrant_filter(user)]  # should keeps its meaning inside
    assert both.must_not == [models.HasIdCondition(has_id=ids)]
    only_ids = combine(None, ids)
    assert only_ids.must is None and only_ids.must_not == [models.HasIdCondition(has_id=ids)]
