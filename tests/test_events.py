"""The pure parts of result shaping: event splitting, shape checks, page tokens."""

from __future__ import annotations

import pytest

from imgsearch.errors import InvalidInput
from search_gateway.core import Hit, SearchQuery
from search_gateway.events import (
    ResultShape,
    decode_token,
    encode_token,
    query_fingerprint,
    split_events,
)


def _hit(i: int, score: float, ts: str | None, end: str | None = None) -> Hit:
    payload = {} if ts is None else {"timestamp": ts}
    if end:
        payload["timestamp_end"] = end
    return Hit(id=f"id{i}", score=score, uri="v.mp4", caption="", payload=payload)


def test_events_split_at_gaps_longer_than_the_window() -> None:
    hits = [
        _hit(1, 0.30, "2024-05-01T12:00:00Z"),
        _hit(2, 0.35, "2024-05-01T12:00:40Z", end="2024-05-01T12:01:30Z"),
        _hit(3, 0.20, "2024-05-01T12:02:00Z"),  # 30 s after hit 2's span ends: same event
        _hit(4, 0.50, "2024-05-01T12:10:00Z"),
        _hit(5, 0.10, None),
    ]
    events = split_events("v1", hits, window_s=60)
    assert [(e.start, e.end, e.size, e.best.id) for e in events] == [
        ("2024-05-01T12:00:00Z", "2024-05-01T12:02:00Z", 3, "id2"),
        ("2024-05-01T12:10:00Z", "2024-05-01T12:10:00Z", 1, "id4"),
        (None, None, 1, "id5"),
    ]
    assert [h.id for h in events[0].hits] == ["id2", "id1", "id3"]  # best first
    assert len(split_events("v1", hits[:4], window_s=1000)) == 1


def test_shape_checks_give_clear_messages() -> None:
    ResultShape(group_by="video").check(1000)
    for shape, words in [
        (ResultShape(group_by="place"), "group_by must be"),
        (ResultShape(order="random"), "order must be"),
        (ResultShape(group_by="video", order="time"), "ranked by relevance"),
        (ResultShape(window_s=0), "window"),
        (ResultShape(relative_cutoff=-1), "relative_cutoff"),
        (ResultShape(candidates=5000), "candidates"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            shape.check(1000)


def test_tokens_are_bound_to_their_query() -> None:
    q = SearchQuery(text="a red circle", k=5)
    shape = ResultShape(order="time")
    fp = query_fingerprint(q, shape, None)
    token = encode_token({"q": fp, "snap": "2024-05-01T12:00:00Z", "from": "x", "seen": ["a"]})
    assert decode_token(token, fp)["seen"] == ["a"]
    other = query_fingerprint(SearchQuery(text="a blue square", k=5), shape, None)
    with pytest.raises(InvalidInput, match="another query"):
        decode_token(token, other)
    assert query_fingerprint(q, shape, "tenant-a") != fp
    for bad in ("", "!!!", "bm90IGpzb24", encode_token({"q": fp})):
        with pytest.raises(InvalidInput, match="page_token"):
            decode_token(bad, fp)
