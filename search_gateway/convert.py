"""Protobuf <-> domain conversion, used only at the gRPC edge (handlers, CLI client).

Payload values are stored in Qdrant as JSON: timestamps as RFC 3339 strings
(Qdrant's datetime index ranges over them), geo points as {"lat", "lon"},
string lists as lists. Reading back, a string in strict RFC 3339 form becomes
a timestamp again, so metadata round-trips.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from imgsearch.v1 import common_pb2, gateway_pb2
from search_gateway import domain as d

# Default field of a TextMatch without a key (documented in gateway.proto).
DEFAULT_TEXT_KEY = d.CAPTION

_RFC3339_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)


# --- filters ----------------------------------------------------------------


def filter_from_proto(message: gateway_pb2.Filter) -> d.Filter | None:
    """Domain filter of a request, None when empty; InvalidFilter names the bad condition."""
    result = _filter_from_proto(message, "")
    if result.is_empty:
        return None
    return result.validate()


def _filter_from_proto(message: gateway_pb2.Filter, prefix: str) -> d.Filter:
    clauses: dict[str, tuple[d.Condition, ...]] = {}
    for clause in ("must", "should", "must_not"):
        clauses[clause] = tuple(
            _condition_from_proto(c, f"{prefix}{clause}[{i}]")
            for i, c in enumerate(getattr(message, clause))
        )
    return d.Filter(**clauses)


def _condition_from_proto(message: gateway_pb2.Condition, where: str) -> d.Condition:
    kind = message.WhichOneof("kind")
    if kind == "match":
        m = message.match
        value_kind = m.WhichOneof("value")
        if value_kind is None:
            raise d.InvalidFilter(f"{where} (match on {m.key!r}): no value given")
        return d.Match(m.key, getattr(m, value_kind))
    if kind == "match_any":
        m = message.match_any
        if m.keywords and m.integers:
            raise d.InvalidFilter(
                f"{where} (match-any on {m.key!r}): give keywords or integers, not both"
            )
        values = tuple(m.keywords) if m.keywords else tuple(m.integers)
        return d.MatchAny(m.key, values)
    if kind == "range":
        r = message.range
        bounds = {b: getattr(r, b) for b in ("gt", "gte", "lt", "lte") if r.HasField(b)}
        return d.Range(r.key, **bounds)
    if kind == "datetime_range":
        r = message.datetime_range
        bounds = {
            b: getattr(r, b).ToDatetime(tzinfo=timezone.utc)
            for b in ("gt", "gte", "lt", "lte")
            if r.HasField(b)
        }
        return d.DatetimeRange(r.key, **bounds)
    if kind == "geo_radius":
        g = message.geo_radius
        if not g.HasField("center"):
            raise d.InvalidFilter(f"{where} (geo radius on {g.key!r}): no center given")
        return d.GeoRadius(g.key, lat=g.center.lat, lon=g.center.lon, radius_m=g.radius_m)
    if kind == "text":
        return d.TextMatch(message.text.key or DEFAULT_TEXT_KEY, message.text.text)
    if kind == "nested":
        return _filter_from_proto(message.nested, where + ".")
    raise d.InvalidFilter(f"{where}: condition has no kind set")


def filter_to_proto(f: d.Filter) -> gateway_pb2.Filter:
    """Request filter for a domain filter (the CLI builds filters with filter_syntax)."""
    return gateway_pb2.Filter(
        must=[_condition_to_proto(c) for c in f.must],
        should=[_condition_to_proto(c) for c in f.should],
        must_not=[_condition_to_proto(c) for c in f.must_not],
    )


def _condition_to_proto(c: d.Condition) -> gateway_pb2.Condition:
    if isinstance(c, d.Filter):
        return gateway_pb2.Condition(nested=filter_to_proto(c))
    if isinstance(c, d.Match):
        if isinstance(c.value, bool):
            match = gateway_pb2.Match(key=c.key, boolean=c.value)
        elif isinstance(c.value, int):
            match = gateway_pb2.Match(key=c.key, integer=c.value)
        else:
            match = gateway_pb2.Match(key=c.key, keyword=c.value)
        return gateway_pb2.Condition(match=match)
    if isinstance(c, d.MatchAny):
        strings = [v for v in c.values if isinstance(v, str)]
        ints = [v for v in c.values if not isinstance(v, str)]
        return gateway_pb2.Condition(
            match_any=gateway_pb2.MatchAny(key=c.key, keywords=strings, integers=ints)
        )
    if isinstance(c, d.Range):
        bounds = {b: v for b in ("gt", "gte", "lt", "lte") if (v := getattr(c, b)) is not None}
        return gateway_pb2.Condition(range=gateway_pb2.Range(key=c.key, **bounds))
    if isinstance(c, d.DatetimeRange):
        stamps = {
            b: _timestamp(v) for b in ("gt", "gte", "lt", "lte") if (v := getattr(c, b)) is not None
        }
        return gateway_pb2.Condition(datetime_range=gateway_pb2.DatetimeRange(key=c.key, **stamps))
    if isinstance(c, d.GeoRadius):
        return gateway_pb2.Condition(
            geo_radius=gateway_pb2.GeoRadius(
                key=c.key, center=common_pb2.GeoPoint(lat=c.lat, lon=c.lon), radius_m=c.radius_m
            )
        )
    if isinstance(c, d.TextMatch):
        return gateway_pb2.Condition(text=gateway_pb2.TextMatch(key=c.key, text=c.text))
    raise TypeError(f"not a filter condition: {type(c).__name__}")


# --- payload values -------------------------------------------------------------


def value_to_python(value: common_pb2.Value) -> Any:
    """Payload form of one metadata value (ValueError when no kind is set)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        if not math.isfinite(value.double_value):
            raise ValueError(f"non-finite number {value.double_value!r}")
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "timestamp_value":
        return d.rfc3339(value.timestamp_value.ToDatetime(tzinfo=timezone.utc))
    if kind == "geo_value":
        geo = value.geo_value
        if not (-90 <= geo.lat <= 90 and -180 <= geo.lon <= 180):
            raise ValueError(f"geo point ({geo.lat}, {geo.lon}) outside lat ±90, lon ±180")
        return {"lat": geo.lat, "lon": geo.lon}
    if kind == "string_list_value":
        return list(value.string_list_value.values)
    raise ValueError("value has no kind set")


def python_to_value(value: Any) -> common_pb2.Value:
    """Proto form of one payload value (TypeError for shapes metadata cannot hold)."""
    if isinstance(value, bool):
        return common_pb2.Value(bool_value=value)
    if isinstance(value, int):
        return common_pb2.Value(int_value=value)
    if isinstance(value, float):
        return common_pb2.Value(double_value=value)
    if isinstance(value, datetime):
        return common_pb2.Value(timestamp_value=_timestamp(value))
    if isinstance(value, str):
        if _RFC3339_RE.fullmatch(value):
            return common_pb2.Value(timestamp_value=_timestamp_from_text(value))
        return common_pb2.Value(string_value=value)
    if isinstance(value, Mapping) and set(value) == {"lat", "lon"}:
        return common_pb2.Value(
            geo_value=common_pb2.GeoPoint(lat=float(value["lat"]), lon=float(value["lon"]))
        )
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return common_pb2.Value(string_list_value=common_pb2.StringList(values=list(value)))
    raise TypeError(f"cannot express {type(value).__name__} as a metadata Value")


def metadata_from_proto(metadata: Mapping[str, common_pb2.Value]) -> dict[str, Any]:
    """Payload entries of request metadata; ValueError names the bad key."""
    result: dict[str, Any] = {}
    for key, value in metadata.items():
        try:
            result[key] = value_to_python(value)
        except ValueError as exc:
            raise ValueError(f"metadata {key!r}: {exc}") from None
    return result


def payload_to_proto(payload: Mapping[str, Any]) -> dict[str, common_pb2.Value]:
    """Proto map of a stored payload; None and shapes Value cannot hold are left out."""
    result: dict[str, common_pb2.Value] = {}
    for key, value in payload.items():
        if value is None:
            continue
        try:
            result[key] = python_to_value(value)
        except TypeError:
            continue
    return result


def _timestamp(value: datetime) -> Timestamp:
    if value.tzinfo is None:
        raise ValueError(f"datetime {value.isoformat()} has no timezone")
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(timezone.utc))
    return stamp


def _timestamp_from_text(text: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromJsonString(text.upper())
    return stamp
