"""The SearchGateway gRPC servicer: protobuf ↔ domain at the edge, GatewayCore
in the middle. Handlers stay a few lines; errors map in the interceptor."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict

from grpc import aio

from imgsearch.errors import InvalidInput, TooLarge
from imgsearch.serving.auth import current_tenant
from imgsearch.v1 import gateway_pb2, gateway_pb2_grpc
from search_gateway import convert
from search_gateway.core import GatewayCore, SearchQuery
from search_gateway.events import ResultShape
from search_gateway.ingest import FrameRef, IngestItem, IngestOutcome, IngestStatus
from search_gateway.rerank import RerankOptions
from search_gateway.shape_proto import hit_to_proto, page_to_proto, shape_from_proto
from search_gateway.thumbnails import media_type

_MODES = {
    gateway_pb2.SEARCH_MODE_UNSPECIFIED: "vector",
    gateway_pb2.SEARCH_MODE_VECTOR: "vector",
    gateway_pb2.SEARCH_MODE_CAPTION: "caption",
    gateway_pb2.SEARCH_MODE_HYBRID: "hybrid",
}
_STATUS = {
    IngestStatus.ADDED: gateway_pb2.INGEST_STATUS_ADDED,
    IngestStatus.ALREADY_PRESENT: gateway_pb2.INGEST_STATUS_ALREADY_PRESENT,
    IngestStatus.DUPLICATE: gateway_pb2.INGEST_STATUS_DUPLICATE,
    IngestStatus.FAILED: gateway_pb2.INGEST_STATUS_FAILED,
    IngestStatus.SIMILAR_FRAME: gateway_pb2.INGEST_STATUS_SIMILAR_FRAME,
}


def outcome_to_proto(o: IngestOutcome) -> gateway_pb2.IngestResult:
    return gateway_pb2.IngestResult(
        index=o.index,
        id=o.id,
        status=_STATUS[o.status],
        duplicate_of=o.duplicate_of,
        reason=o.reason,
        error_code=o.error_code,
        uri=o.uri,
        caption_pending=o.caption_pending,
    )


def item_from_proto(req: gateway_pb2.IngestRequest) -> IngestItem:
    source = req.WhichOneof("source")
    try:
        metadata, problem = convert.metadata_from_proto(req.metadata), ""
    except ValueError as exc:  # reported as this image's failure, like a bad image
        metadata, problem = {}, str(exc)
    return IngestItem(
        data=req.data if source == "data" else None,
        path=req.path if source == "path" else None,
        uri=req.uri,
        metadata=metadata,
        with_captions=req.options.with_captions,
        near_duplicate_threshold=req.options.near_duplicate_threshold,
        problem=problem,
        frame=(
            FrameRef(req.frame.video_sha256, req.frame.offset_s) if req.HasField("frame") else None
        ),
        frame_change_threshold=(
            req.options.frame_change_threshold
            if req.options.HasField("frame_change_threshold")
            else None
        ),
        file_mtime=(
            req.file_mtime.seconds + req.file_mtime.nanos / 1e9
            if req.HasField("file_mtime")
            else None
        ),
    )


def _field_size(size: int) -> int:
    """Bytes a length-delimited field of `size` bytes takes (tag < 16)."""
    return 1 + (max(size, 1).bit_length() + 6) // 7 + size


def fit_hits(
    hits: Sequence[gateway_pb2.Hit], model: str, limit: int
) -> tuple[list[gateway_pb2.Hit], bool]:
    """The leading hits whose response stays within `limit` bytes, and whether
    any were left out (the response's `truncated`). When not even the best hit
    fits, RESOURCE_EXHAUSTED: an empty page would make paging loop forever."""
    size = gateway_pb2.SearchResponse(model=model, truncated=True).ByteSize()
    for i, hit in enumerate(hits):
        size += _field_size(hit.ByteSize())
        if size > limit:
            if i == 0:
                raise TooLarge(
                    f"the best hit alone is {hit.ByteSize()} bytes, over the server's "
                    f"response limit of {limit} bytes (max_response_bytes)"
                )
            return list(hits[:i]), True
    return list(hits), False


def query_from_proto(req: gateway_pb2.SearchRequest) -> SearchQuery:
    kind = req.WhichOneof("query")
    if kind is None:
        raise InvalidInput("no query: give text, image or point_id")
    if req.mode not in _MODES:
        raise InvalidInput(f"unknown search mode {req.mode}; known: VECTOR, CAPTION, HYBRID")
    if req.HasField("score_threshold") and math.isnan(req.score_threshold):
        raise InvalidInput("score_threshold is NaN; give a number")
    try:
        flt = convert.filter_from_proto(req.filter) if req.HasField("filter") else None
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    return SearchQuery(
        text=req.text if kind == "text" else None,
        image=req.image if kind == "image" else None,
        point_id=req.point_id if kind == "point_id" else None,
        k=req.k,
        offset=req.offset,
        score_threshold=req.score_threshold if req.HasField("score_threshold") else None,
        filter=flt,
        mode=_MODES[req.mode],
    )


class GatewayServicer(gateway_pb2_grpc.SearchGatewayServicer):
    def __init__(self, core: GatewayCore) -> None:
        self.core = core

    async def Ingest(
        self,
        request_iterator: AsyncIterator[gateway_pb2.IngestRequest],
        context: aio.ServicerContext,
    ) -> AsyncIterator[gateway_pb2.IngestResult]:
        async def items() -> AsyncIterator[IngestItem]:
            async for req in request_iterator:
                yield item_from_proto(req)

        async for outcome in self.core.ingest(items(), context.time_remaining, current_tenant()):
            yield outcome_to_proto(outcome)

    async def Search(
        self, request: gateway_pb2.SearchRequest, context: aio.ServicerContext
    ) -> gateway_pb2.SearchResponse:
        query, shape = query_from_proto(request), shape_from_proto(request)
        model = self.core.model_name
        if request.rerank.enabled:
            if shape != ResultShape():
                raise InvalidInput(
                    "rerank cannot be combined with group, order, relative_cutoff or page_token"
                )
            result = await self.core.search_reranked(
                query,
                RerankOptions(request.rerank.candidates, request.rerank.strict),
                context.time_remaining(),
                current_tenant(),
            )
            fitting, truncated = fit_hits(
                [hit_to_proto(h) for h in result.hits], model, self.core.limits.max_response_bytes
            )
            return gateway_pb2.SearchResponse(
                hits=fitting,
                model=model,
                truncated=truncated,
                reranked=result.reranked,
                rerank_model=result.model,
                rerank_note=result.note,
            )
        if shape != ResultShape():  # grouped, time-ordered, cut or paged by token
            page = await self.core.search_page(
                query, shape, context.time_remaining(), current_tenant()
            )
            reply = page_to_proto(page, model)
            fitting, truncated = fit_hits(reply.hits, model, self.core.limits.max_response_bytes)
            if truncated:  # a token would skip what was left out: page on by offset
                del reply.hits[len(fitting) :]
                del reply.groups[len(fitting) :]
                reply.truncated, reply.next_page_token = True, ""
            return reply
        hits = await self.core.search(query, context.time_remaining(), current_tenant())
        fitting, truncated = fit_hits(
            [hit_to_proto(h) for h in hits], model, self.core.limits.max_response_bytes
        )
        return gateway_pb2.SearchResponse(hits=fitting, model=model, truncated=truncated)

    async def GetThumbnail(
        self, request: gateway_pb2.GetThumbnailRequest, context: aio.ServicerContext
    ) -> gateway_pb2.GetThumbnailResponse:
        data = await self.core.thumbnail(request.id, current_tenant())
        return gateway_pb2.GetThumbnailResponse(data=data, media_type=media_type(data))

    async def Get(
        self, request: gateway_pb2.GetRequest, context: aio.ServicerContext
    ) -> gateway_pb2.GetResponse:
        hits, missing = await self.core.get(list(request.ids), current_tenant())
        response = gateway_pb2.GetResponse(points=[hit_to_proto(h) for h in hits], missing=missing)
        limit = self.core.limits.max_response_bytes
        if response.ByteSize() > limit:
            raise TooLarge(
                f"the {len(hits)} points make a {response.ByteSize()}-byte response; the "
                f"server's limit is {limit} bytes (max_response_bytes): ask for fewer ids"
            )
        return response

    async def Delete(
        self, request: gateway_pb2.DeleteRequest, context: aio.ServicerContext
    ) -> gateway_pb2.DeleteResponse:
        try:
            flt = convert.filter_from_proto(request.filter) if request.HasField("filter") else None
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        deleted = await self.core.delete(list(request.ids), flt, current_tenant())
        return gateway_pb2.DeleteResponse(deleted=deleted)

    async def Stats(
        self, request: gateway_pb2.StatsRequest, context: aio.ServicerContext
    ) -> gateway_pb2.StatsResponse:
        # StatsResponse carries core.Stats under the same names.
        return gateway_pb2.StatsResponse(**asdict(await self.core.stats(current_tenant())))
