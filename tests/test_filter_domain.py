"""Domain filter validation, ids and the model-mismatch message."""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone

import pytest

from search_gateway import domain as d

UTC = timezone.utc


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (d.Range("width"), r"must\[0\] \(range on 'width'\): no bound given"),
        (d.Range("width", gt=5, lt=1), "lower bound is above upper bound"),
        (d.Range("width", gte=math.nan), "finite"),
        (d.Match("", 1), r"must\[0\] \(match on ''\): empty key"),
        (d.Match("bad key", 1), "invalid key 'bad key'"),
        (d.Match("k", 1.5), "string, integer or boolean"),  # type: ignore[arg-type]
        (d.MatchAny("tags", ()), "no values given"),
        (d.MatchAny("tags", ("a", 1)), "all strings or all integers"),  # type: ignore[arg-type]
        (d.MatchAny("tags", (True,)), "all strings or all integers"),  # type: ignore[arg-type]
        (d.DatetimeRange("ts"), "no bound given"),
        (d.DatetimeRange("ts", gte=datetime(2024, 1, 1)), "gte has no timezone"),
        (
            d.DatetimeRange(
                "ts", gt=datetime(2024, 2, 1, tzinfo=UTC), lt=datetime(2024, 1, 1, tzinfo=UTC)
            ),
            "lower bound is above upper bound",
        ),
        (d.GeoRadius("location", 91, 0, 10), r"latitude 91 outside \[-90, 90\]"),
        (d.GeoRadius("location", 0, -181, 10), "longitude -181 outside"),
        (d.GeoRadius("location", 0, 0, -1), "radius must be > 0 metres"),
        (d.TextMatch("caption", " ?! "), "text has no words"),
    ],
)
def test_invalid_conditions_name_themselves(condition: d.Condition, message: str) -> None:
    with pytest.raises(d.InvalidFilter, match=message):
        d.Filter(must=[condition]).validate()


def test_error_path_counts_positions_per_clause() -> None:
    f = d.Filter(
        must=[d.Match("a", 1)], should=[d.Match("b", 2), d.GeoRadius("location", 0, 0, -5)]
    )
    with pytest.raises(d.InvalidFilter, match=r"^should\[1\] \(geo radius on 'location'\)"):
        f.validate()


def test_nesting_depth_is_bounded() -> None:
    f = d.Filter(must=[d.Match("a", 1)])
    for _ in range(d.MAX_FILTER_DEPTH):
        f = d.Filter(must=[f])
    with pytest.raises(d.InvalidFilter, match="nested deeper"):
        f.validate()


def test_valid_filter_passes_and_accepts_lists() -> None:
    f = d.Filter(
        must=[d.Match("camera_id", "cam-1"), d.Range("width", gte=1, lte=1)],
        must_not=[d.Filter(should=[d.TextMatch("caption", "dog")])],
    )
    assert f.validate() is f
    assert isinstance(f.must, tuple)
    assert hash(f)  # frozen and hashable
    assert d.Filter().is_empty and not f.is_empty


def test_point_id_is_uuid5_of_the_digest() -> None:
    digest = "AB" * 32
    pid = d.point_id_for(digest)
    assert pid == str(uuid.uuid5(d.POINT_ID_NAMESPACE, digest.lower()))
    assert uuid.UUID(pid).version == 5
    assert d.point_id_for(digest.lower()) == pid
    with pytest.raises(ValueError, match="sha256"):
        d.point_id_for("abc")


def test_normalize_point_id() -> None:
    pid = d.point_id_for("0" * 64)
    assert d.normalize_point_id(pid.upper()) == pid
    with pytest.raises(d.InvalidPointId, match="'nope'"):
        d.normalize_point_id("nope")


def test_model_mismatch_message_names_both_models() -> None:
    err = d.ModelMismatch(
        "images",
        d.CollectionSpec("ViT-B-32", "laion2b_s34b_b79k", 512),
        d.CollectionSpec("ViT-L-14", "openai", 768),
    )
    assert str(err) == (
        "collection 'images' was built with model ViT-B-32/laion2b_s34b_b79k (dim 512); "
        "this gateway embeds with ViT-L-14/openai (dim 768); use another collection or re-index"
    )


def test_every_indexed_field_has_a_kind_and_reserved_fields_are_indexed() -> None:
    assert set(d.PAYLOAD_INDEXES) >= d.RESERVED_FIELDS
    assert d.PAYLOAD_INDEXES[d.CAPTION] is d.IndexKind.TEXT
    assert d.PAYLOAD_INDEXES[d.LOCATION] is d.IndexKind.GEO
    assert d.PAYLOAD_INDEXES[d.TIMESTAMP] is d.IndexKind.DATETIME
    assert d.TENANT not in d.RESERVED_FIELDS  # users set it at ingest
