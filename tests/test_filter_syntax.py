"""The CLI filter syntax: every form, and errors that point at the bad part."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from search_gateway import domain as d
from search_gateway.filter_syntax import (
    FilterSyntaxError,
    parse_datetime,
    parse_filter,
    parse_filters,
)

UTC = timezone.utc


def one(text: str) -> d.Condition:
    f = parse_filter(text)
    conditions = f.must + f.must_not
    assert len(conditions) == 1
    return conditions[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("camera_id=7", d.Match("camera_id", 7)),
        ("camera_id=-3", d.Match("camera_id", -3)),
        ("camera_id=cam-front", d.Match("camera_id", "cam-front")),
        ('camera_id="7"', d.Match("camera_id", "7")),
        ("camera_id = 'cam front'", d.Match("camera_id", "cam front")),
        ("caption_pending=true", d.Match("caption_pending", True)),
        ("caption_pending=False", d.Match("caption_pending", False)),
        ("format=1.5", d.Match("format", "1.5")),
        ("width>=1000", d.Range("width", gte=1000)),
        ("width>1000.5", d.Range("width", gt=1000.5)),
        ("height<=-2e3", d.Range("height", lte=-2000)),
        ("height < 10", d.Range("height", lt=10)),
        ("ts>=2024-05-01", d.DatetimeRange("timestamp", gte=datetime(2024, 5, 1, tzinfo=UTC))),
        (
            "timestamp<2024-06-01T12:00",
            d.DatetimeRange("timestamp", lt=datetime(2024, 6, 1, 12, tzinfo=UTC)),
        ),
        (
            "ingested_at>2024-06-01T12:00:00+02:00",
            d.DatetimeRange("ingested_at", gt=datetime(2024, 6, 1, 10, tzinfo=UTC)),
        ),
        (
            "ts<='2024-06-01T12:00:00Z'",
            d.DatetimeRange("timestamp", lte=datetime(2024, 6, 1, 12, tzinfo=UTC)),
        ),
        ("tag in (a,b)", d.MatchAny("tags", ("a", "b"))),
        ("tags in (a, b)", d.MatchAny("tags", ("a", "b"))),
        ("tags IN ( 'a b' , \"c\" )", d.MatchAny("tags", ("a b", "c"))),
        ("camera_id in (1, 2,3)", d.MatchAny("camera_id", (1, 2, 3))),
        ("camera_id in (1, x)", d.MatchAny("camera_id", ("1", "x"))),
        ("near=48.85,2.35,5km", d.GeoRadius("location", 48.85, 2.35, 5000)),
        ("near = -33.9, 151.2, 250m", d.GeoRadius("location", -33.9, 151.2, 250)),
        ("near=0,0,1.5KM", d.GeoRadius("location", 0, 0, 1500)),
        ("near=0,0,300", d.GeoRadius("location", 0, 0, 300)),
        ('caption~"red jacket"', d.TextMatch("caption", "red jacket")),
        ("caption~dog", d.TextMatch("caption", "dog")),
        (r'caption~"say \"hi\""', d.TextMatch("caption", 'say "hi"')),
        ("meta.sub_key=x", d.Match("meta.sub_key", "x")),
    ],
)
def test_must_forms(text: str, expected: d.Condition) -> None:
    f = parse_filter(text)
    assert f.must == (expected,)
    assert f.must_not == () and f.should == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("camera_id!=3", d.Match("camera_id", 3)),
        ("camera_id != cam-back", d.Match("camera_id", "cam-back")),
        ("tag not in (x)", d.MatchAny("tags", ("x",))),
        ("tags NOT  IN (x, y)", d.MatchAny("tags", ("x", "y"))),
    ],
)
def test_must_not_forms(text: str, expected: d.Condition) -> None:
    f = parse_filter(text)
    assert f.must_not == (expected,)
    assert f.must == ()


def test_clauses_joined_by_and_or_semicolon() -> None:
    f = parse_filter("camera_id=7 and ts>=2024-05-01; tag not in (x)  AND  width>=1000")
    assert f.must == (
        d.Match("camera_id", 7),
        d.DatetimeRange("timestamp", gte=datetime(2024, 5, 1, tzinfo=UTC)),
        d.Range("width", gte=1000),
    )
    assert f.must_not == (d.MatchAny("tags", ("x",)),)
    assert parse_filter("a=1;b=2").must == (d.Match("a", 1), d.Match("b", 2))


def test_values_containing_and_are_not_split() -> None:
    assert one("camera_id=band") == d.Match("camera_id", "band")
    assert one('caption~"cat and dog"') == d.TextMatch("caption", "cat and dog")


def test_repeated_flags_are_anded() -> None:
    f = parse_filters(["camera_id=7", "tag not in (x); width>=10"])
    assert f == d.Filter(
        must=(d.Match("camera_id", 7), d.Range("width", gte=10)),
        must_not=(d.MatchAny("tags", ("x",)),),
    )
    assert parse_filters([]) is None


def test_parsed_filters_validate() -> None:
    parse_filter("ts>=2024-05-01 and near=48.85,2.35,5km and tags in (a)").validate()


def test_error_points_after_the_operator() -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter("ts>= and camera_id=7")
    assert str(info.value) == (
        "cannot parse filter: expected a value after '>='\n  ts>= and camera_id=7\n      ^"
    )
    assert info.value.position == 4
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, d.InvalidFilter)


@pytest.mark.parametrize(
    ("text", "reason", "position"),
    [
        ("", "empty filter", 0),
        ("   ", "empty filter", 3),
        ("camera_id=", "expected a value after '='", 10),
        ("camera_id=;a=1", "expected a value after '='", 10),
        ("=3", "expected a field name", 0),
        ("camera_id", "expected an operator", 9),
        ("camera_id 7", "expected an operator", 10),
        ("a=1 b=2", "expected 'and' or ';' between conditions", 4),
        ("a=1 and", "expected a condition after the separator", 7),
        ("a=1;", "expected a condition after the separator", 4),
        ("width>=abc", "expected a number, date or datetime after '>='", 7),
        ("ts<2024-13-01", "expected a number, date or datetime after '<'", 3),
        ("tags in ()", "empty list", 9),
        ("tags in a,b", "expected '(' to open the list", 8),
        ("tags in (a b)", "expected ',' or ')' in the list", 11),
        ("tags in (a,", "expected a value in the list", 11),
        ('caption~"red', "unterminated quoted value", 8),
        ("near=48.85", "expected ',' after the latitude", 10),
        ("near=48.85,x,5km", "expected the longitude as a number", 11),
        ("near=48.85,2.35,5mi", "unknown radius unit 'mi' (use m or km)", 17),
        ("near=48.85,2.35,km", "expected a radius such as 500m or 5km", 16),
        ("near>1,2,3", "'near' takes '='", 4),
        ("near=95,2,5km", "latitude 95.0 outside", 0),
        ("a=1 and near=0,0,0m", "radius must be > 0 metres", 8),
        ("width>=5 and width>10 and x<1 and width>=abc", "expected a number", 41),
        ('caption~"?!"', "text has no words", 0),
    ],
)
def test_errors_have_reason_and_position(text: str, reason: str, position: int) -> None:
    with pytest.raises(FilterSyntaxError) as info:
        parse_filter(text)
    assert reason in info.value.reason
    assert info.value.position == position
    lines = str(info.value).splitlines()
    assert lines[1] == "  " + text
    assert lines[2] == "  " + " " * position + "^"


def test_integers_beyond_int64_stay_keywords() -> None:
    # The API carries int64; a bigger number can only be an identifier.
    assert one("camera_id=99999999999999999999") == d.Match("camera_id", "99999999999999999999")


def test_parse_datetime() -> None:
    assert parse_datetime("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_datetime("2024-05-01T12:30:15.5Z") == datetime(
        2024, 5, 1, 12, 30, 15, 500000, tzinfo=UTC
    )
    plus2 = timezone(timedelta(hours=2))
    assert parse_datetime("2024-05-01T12:00+02:00") == datetime(2024, 5, 1, 12, tzinfo=plus2)
    assert parse_datetime("yesterday") is None
    assert parse_datetime("") is None
