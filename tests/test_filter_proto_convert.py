"""Protobuf <-> domain at the edge: filters and payload values round-trip."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from imgsearch.v1 import common_pb2, gateway_pb2
from search_gateway import domain as d
from search_gateway.convert import (
    filter_from_proto,
    filter_to_proto,
    metadata_from_proto,
    payload_to_proto,
    python_to_value,
    value_to_python,
)

UTC = timezone.utc

FULL = d.Filter(
    must=(
        d.Match("camera_id", 7),
        d.Match("camera_id", "cam-front"),
        d.Match("caption_pending", True),
        d.MatchAny("tags", ("a", "b")),
        d.MatchAny("camera_id", (1, 2)),
        d.Range("width", gte=1000, lt=2000.5),
        d.DatetimeRange(
            "timestamp",
            gte=datetime(2024, 5, 1, tzinfo=UTC),
            lt=datetime(2024, 6, 1, 12, 0, 0, 250000, tzinfo=UTC),
        ),
        d.GeoRadius("location", lat=48.85, lon=2.35, radius_m=5000),
        d.TextMatch("caption", "red jacket"),
    ),
    should=(d.Filter(must=(d.Match("format", "png"),), must_not=(d.Range("height", gt=5),)),),
    must_not=(d.MatchAny("tags", ("private",)),),
)


def test_filter_round_trip() -> None:
    message = filter_to_proto(FULL)
    # Through the wire format too, as a server would receive it.
    parsed = gateway_pb2.Filter.FromString(message.SerializeToString())
    assert filter_from_proto(parsed) == FULL


def test_false_and_zero_survive_the_oneof() -> None:
    f = d.Filter(must=(d.Match("flag", False), d.Match("n", 0), d.Range("w", gte=0)))
    assert filter_from_proto(filter_to_proto(f)) == f


def test_empty_filter_is_none() -> None:
    assert filter_from_proto(gateway_pb2.Filter()) is None


def test_text_match_defaults_to_caption() -> None:
    message = gateway_pb2.Filter(
        must=[gateway_pb2.Condition(text=gateway_pb2.TextMatch(text="dog"))]
    )
    assert filter_from_proto(message) == d.Filter(must=(d.TextMatch("caption", "dog"),))


def test_datetime_bounds_come_back_as_utc() -> None:
    stamp = Timestamp()
    stamp.FromDatetime(datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    message = gateway_pb2.Filter(
        must=[
            gateway_pb2.Condition(
                datetime_range=gateway_pb2.DatetimeRange(key="timestamp", gte=stamp)
            )
        ]
    )
    (cond,) = filter_from_proto(message).must
    assert cond.gte == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert cond.gte.tzinfo is not None


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (gateway_pb2.Condition(), r"must\[0\]: condition has no kind set"),
        (
            gateway_pb2.Condition(match=gateway_pb2.Match(key="a")),
            r"must\[0\] \(match on 'a'\): no value given",
        ),
        (
            gateway_pb2.Condition(
                match_any=gateway_pb2.MatchAny(key="t", keywords=["a"], integers=[1])
            ),
            "not both",
        ),
        (
            gateway_pb2.Condition(match_any=gateway_pb2.MatchAny(key="t")),
            r"must\[0\] \(match-any on 't'\): no values given",
        ),
        (gateway_pb2.Condition(range=gateway_pb2.Range(key="width")), "no bound given"),
        (
            gateway_pb2.Condition(geo_radius=gateway_pb2.GeoRadius(key="location", radius_m=5)),
            "no center given",
        ),
        (
            gateway_pb2.Condition(
                geo_radius=gateway_pb2.GeoRadius(
                    key="location", center=common_pb2.GeoPoint(lat=100), radius_m=5
                )
            ),
            "latitude 100.0 outside",
        ),
    ],
)
def test_malformed_proto_filters_name_the_condition(
    condition: gateway_pb2.Condition, message: str
) -> None:
    with pytest.raises(d.InvalidFilter, match=message):
        filter_from_proto(gateway_pb2.Filter(must=[condition]))


def test_nested_errors_carry_the_path() -> None:
    inner = gateway_pb2.Filter(should=[gateway_pb2.Condition()])
    outer = gateway_pb2.Filter(must_not=[gateway_pb2.Condition(nested=inner)])
    with pytest.raises(d.InvalidFilter, match=r"must_not\[0\]\.should\[0\]"):
        filter_from_proto(outer)


@pytest.mark.parametrize(
    "value",
    [
        "cam-front",
        "",
        7,
        -(2**63),
        1.25,
        True,
        False,
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00.123456Z",
        {"lat": 48.85, "lon": 2.35},
        ["a", "b"],
        [],
    ],
)
def test_payload_value_round_trip(value: object) -> None:
    message = python_to_value(value)
    assert value_to_python(common_pb2.Value.FromString(message.SerializeToString())) == value


def test_timestamps_are_stored_as_rfc3339_utc() -> None:
    stamp = Timestamp()
    stamp.FromDatetime(datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))))
    assert value_to_python(common_pb2.Value(timestamp_value=stamp)) == "2024-05-01T12:00:00Z"
    back = python_to_value("2024-05-01T14:00:00+02:00")
    assert back.WhichOneof("kind") == "timestamp_value"
    assert back.timestamp_value == stamp
    aware = python_to_value(datetime(2024, 5, 1, 12, tzinfo=UTC))
    assert aware.timestamp_value == stamp


def test_plain_strings_that_look_like_dates_stay_strings() -> None:
    assert python_to_value("2024-05-01").WhichOneof("kind") == "string_value"


def test_unsupported_values() -> None:
    with pytest.raises(ValueError, match="no kind"):
        value_to_python(common_pb2.Value())
    with pytest.raises(ValueError, match="outside"):
        value_to_python(common_pb2.Value(geo_value=common_pb2.GeoPoint(lat=91, lon=0)))
    with pytest.raises(ValueError, match="non-finite"):
        value_to_python(common_pb2.Value(double_value=float("nan")))
    with pytest.raises(TypeError):
        python_to_value({"nested": 1})
    with pytest.raises(TypeError):
        python_to_value([1, 2])


def test_metadata_and_payload_maps() -> None:
    request = gateway_pb2.IngestRequest(
        metadata={
            "camera_id": common_pb2.Value(string_value="cam-1"),
            "tags": common_pb2.Value(string_list_value=common_pb2.StringList(values=["x"])),
            "location": common_pb2.Value(geo_value=common_pb2.GeoPoint(lat=1, lon=2)),
        }
    )
    payload = metadata_from_proto(request.metadata)
    assert payload == {"camera_id": "cam-1", "tags": ["x"], "location": {"lat": 1, "lon": 2}}
    with pytest.raises(ValueError, match="metadata 'bad': value has no kind"):
        metadata_from_proto({"bad": common_pb2.Value()})
    hit = gateway_pb2.Hit(payload=payload_to_proto({**payload, "none": None, "obj": {"a": 1}}))
    assert metadata_from_proto(hit.payload) == payload
