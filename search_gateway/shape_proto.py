"""Result shaping (events.py) <-> protobuf, at the edge: servicer and RemoteGateway."""

from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from imgsearch.v1 import gateway_pb2
from search_gateway import convert
from search_gateway import domain as d
from search_gateway.core import Hit
from search_gateway.events import (
    DEFAULT_CANDIDATES,
    DEFAULT_WINDOW_S,
    EventGroup,
    ResultShape,
    SearchPage,
)

_ORDERS = {
    gateway_pb2.SEARCH_ORDER_UNSPECIFIED: "relevance",
    gateway_pb2.SEARCH_ORDER_RELEVANCE: "relevance",
    gateway_pb2.SEARCH_ORDER_TIME_ASC: "time",
    gateway_pb2.SEARCH_ORDER_TIME_DESC: "time_desc",
}
_ORDER_PROTO = {"relevance": 0, "time": 2, "time_desc": 3}


def shape_from_proto(req: gateway_pb2.SearchRequest) -> ResultShape:
    group = req.group if req.HasField("group") and req.group.by else None
    return ResultShape(
        group_by=group.by if group else None,
        window_s=(group.window_s or DEFAULT_WINDOW_S) if group else DEFAULT_WINDOW_S,
        order=_ORDERS.get(req.order, f"unknown order {req.order}"),
        relative_cutoff=req.relative_cutoff if req.HasField("relative_cutoff") else None,
        candidates=req.time_candidates or DEFAULT_CANDIDATES,
        page_token=req.page_token or None,
        paged=req.order == gateway_pb2.SEARCH_ORDER_RELEVANCE,
    )


def shape_to_proto(shape: ResultShape, req: gateway_pb2.SearchRequest) -> None:
    if shape.group_by:
        req.group.by = shape.group_by
        req.group.window_s = shape.window_s
    req.order = _ORDER_PROTO.get(shape.order, 0)  # type: ignore[assignment]
    if shape.paged and shape.order == "relevance":
        req.order = gateway_pb2.SEARCH_ORDER_RELEVANCE
    if shape.relative_cutoff is not None:
        req.relative_cutoff = shape.relative_cutoff
    if shape.candidates != DEFAULT_CANDIDATES:
        req.time_candidates = shape.candidates
    if shape.page_token:
        req.page_token = shape.page_token


def _ts(text: str | None) -> Timestamp | None:
    if not text:
        return None
    ts = Timestamp()
    ts.FromDatetime(datetime.fromisoformat(text.replace("Z", "+00:00")))
    return ts


def hit_to_proto(hit: Hit) -> gateway_pb2.Hit:
    return gateway_pb2.Hit(
        id=hit.id,
        score=hit.score,
        uri=hit.uri,
        caption=hit.caption,
        payload=convert.payload_to_proto(hit.payload),
        rerank_score=hit.rerank_score,
    )


def hit_from_proto(h: gateway_pb2.Hit) -> Hit:
    payload = {k: convert.value_to_python(v) for k, v in h.payload.items()}
    rerank_score = h.rerank_score if h.HasField("rerank_score") else None
    return Hit(
        id=h.id,
        score=h.score,
        uri=h.uri,
        caption=h.caption,
        payload=payload,
        rerank_score=rerank_score,
    )


def page_to_proto(page: SearchPage, model: str) -> gateway_pb2.SearchResponse:
    groups = []
    for g in page.groups:
        msg = gateway_pb2.HitGroup(key=g.key, size=g.size, hit_ids=[h.id for h in g.hits])
        if (start := _ts(g.start)) is not None:
            msg.start.CopyFrom(start)
        if (end := _ts(g.end)) is not None:
            msg.end.CopyFrom(end)
        groups.append(msg)
    return gateway_pb2.SearchResponse(
        hits=[hit_to_proto(h) for h in page.hits],
        model=model,
        groups=groups,
        next_page_token=page.next_page_token,
    )


def page_from_proto(reply: gateway_pb2.SearchResponse) -> SearchPage:
    hits = [hit_from_proto(h) for h in reply.hits]
    groups = []
    for best, g in zip(hits, reply.groups, strict=False):
        start = d.rfc3339(g.start.ToDatetime(tzinfo=timezone.utc)) if g.HasField("start") else None
        end = d.rfc3339(g.end.ToDatetime(tzinfo=timezone.utc)) if g.HasField("end") else None
        groups.append(EventGroup(g.key, best, g.size, start, end, [best]))
    return SearchPage(hits, groups, reply.next_page_token)
