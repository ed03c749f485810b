"""RemoteGateway: the GatewayCore API over gRPC, for `imgsearch --gateway`.

Returns the same domain objects as GatewayCore, so every CLI command prints
the same output in embedded and service mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc
from grpc import aio

from imgsearch.errors import ImgsearchError
from imgsearch.v1 import gateway_pb2, gateway_pb2_grpc
from search_gateway import convert
from search_gateway import domain as d
from search_gateway.core import Hit, SearchQuery, Stats
from search_gateway.events import ResultShape, SearchPage
from search_gateway.ingest import IngestItem, IngestOutcome, IngestStatus
from search_gateway.rerank import RerankedSearch, RerankOptions
from search_gateway.shape_proto import hit_from_proto, page_from_proto, shape_to_proto

_STATUS = {
    gateway_pb2.INGEST_STATUS_ADDED: IngestStatus.ADDED,
    gateway_pb2.INGEST_STATUS_ALREADY_PRESENT: IngestStatus.ALREADY_PRESENT,
    gateway_pb2.INGEST_STATUS_DUPLICATE: IngestStatus.DUPLICATE,
    gateway_pb2.INGEST_STATUS_FAILED: IngestStatus.FAILED,
    gateway_pb2.INGEST_STATUS_SIMILAR_FRAME: IngestStatus.SIMILAR_FRAME,
}
_MODES = {
    "vector": gateway_pb2.SEARCH_MODE_VECTOR,
    "caption": gateway_pb2.SEARCH_MODE_CAPTION,
    "hybrid": gateway_pb2.SEARCH_MODE_HYBRID,
}


class RemoteError(ImgsearchError):
    """A gateway error, carrying its gRPC status name."""

    def __init__(self, err: aio.AioRpcError) -> None:
        super().__init__(err.details() or err.code().name)
        self.status_name = err.code().name


class RemoteGateway:
    def __init__(
        self,
        address: str,
        timeout_s: float = 120.0,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        options = [
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ]
        if credentials is None:
            self._channel = aio.insecure_channel(address, options=options)
        else:
            self._channel = aio.secure_channel(address, credentials, options=options)
        self._stub = gateway_pb2_grpc.SearchGatewayStub(self._channel)
        self.timeout_s = timeout_s
        self._metadata = tuple(metadata)
        self.address = address

    async def close(self) -> None:
        await self._channel.close()

    async def ingest(self, items: AsyncIterator[IngestItem]) -> AsyncIterator[IngestOutcome]:
        async def requests() -> AsyncIterator[gateway_pb2.IngestRequest]:
            async for item in items:
                req = gateway_pb2.IngestRequest(
                    uri=item.uri,
                    metadata=convert.payload_to_proto(item.metadata),
                    options=gateway_pb2.IngestOptions(
                        with_captions=item.with_captions,
                        near_duplicate_threshold=item.near_duplicate_threshold,
                    ),
                )
                if item.frame is not None:
                    req.frame.video_sha256 = item.frame.video_sha256
                    req.frame.offset_s = item.frame.offset_s
                if item.frame_change_threshold is not None:
                    req.options.frame_change_threshold = item.frame_change_threshold
                if item.data is not None:
                    req.data = item.data
                    if item.file_mtime is not None:
                        req.file_mtime.FromNanoseconds(round(item.file_mtime * 1e9))
                elif item.path:
                    req.path = item.path
                yield req

        call = self._stub.Ingest(requests(), metadata=self._metadata)
        try:
            async for r in call:
                yield IngestOutcome(
                    index=r.index,
                    status=_STATUS.get(r.status, IngestStatus.FAILED),
                    id=r.id,
                    uri=r.uri,
                    duplicate_of=r.duplicate_of,
                    reason=r.reason,
                    error_code=r.error_code,
                    caption_pending=r.caption_pending,
                )
        except aio.AioRpcError as err:
            raise RemoteError(err) from err

    async def search(self, q: SearchQuery, timeout: float | None = None) -> list[Hit]:
        reply = await self._call(self._stub.Search, self._search_request(q))
        return [hit_from_proto(h) for h in reply.hits]

    async def search_reranked(
        self, q: SearchQuery, options: RerankOptions, timeout: float | None = None
    ) -> RerankedSearch:
        """Search with the gateway's re-ranking (see RerankOptions in gateway.proto)."""
        req = self._search_request(q)
        req.rerank.CopyFrom(
            gateway_pb2.RerankOptions(
                enabled=True, candidates=options.candidates, strict=options.strict
            )
        )
        reply = await self._call(self._stub.Search, req)
        return RerankedSearch(
            [hit_from_proto(h) for h in reply.hits],
            reranked=reply.reranked,
            model=reply.rerank_model,
            note=reply.rerank_note,
        )

    async def search_page(
        self, q: SearchQuery, shape: ResultShape, timeout: float | None = None
    ) -> SearchPage:
        req = self._search_request(q)
        shape_to_proto(shape, req)
        return page_from_proto(await self._call(self._stub.Search, req))

    async def thumbnail(self, point_id: str) -> bytes:
        """The point's thumbnail bytes (RemoteError NOT_FOUND when it has none)."""
        req = gateway_pb2.GetThumbnailRequest(id=point_id)
        return bytes((await self._call(self._stub.GetThumbnail, req)).data)

    @staticmethod
    def _search_request(q: SearchQuery) -> gateway_pb2.SearchRequest:
        req = gateway_pb2.SearchRequest(
            k=q.k, offset=q.offset, mode=_MODES.get(q.mode, gateway_pb2.SEARCH_MODE_UNSPECIFIED)
        )
        if q.text is not None:
            req.text = q.text
        elif q.image is not None:
            req.image = q.image
        elif q.point_id is not None:
            req.point_id = q.point_id
        if q.score_threshold is not None:
            req.score_threshold = q.score_threshold
        if q.filter is not None and not q.filter.is_empty:
            req.filter.CopyFrom(convert.filter_to_proto(q.filter))
        return req

    async def get(self, ids: Sequence[str]) -> tuple[list[Hit], list[str]]:
        reply = await self._call(self._stub.Get, gateway_pb2.GetRequest(ids=list(ids)))
        return [hit_from_proto(h) for h in reply.points], list(reply.missing)

    async def delete(self, ids: Sequence[str] = (), filter: d.Filter | None = None) -> int:
        req = gateway_pb2.DeleteRequest(ids=list(ids))
        if filter is not None:
            req.filter.CopyFrom(convert.filter_to_proto(filter))
        return int((await self._call(self._stub.Delete, req)).deleted)

    async def stats(self) -> Stats:
        r = await self._call(self._stub.Stats, gateway_pb2.StatsRequest())
        return Stats(
            count=r.count,
            model=r.model,
            pretrained=r.pretrained,
            dimension=r.dimension,
            captioned_count=r.captioned_count,
            caption_pending_count=r.caption_pending_count,
            collection=r.collection,
            store=r.store,
        )

    async def _call(self, method, request):  # type: ignore[no-untyped-def]
        try:
            return await method(request, timeout=self.timeout_s, metadata=self._metadata)
        except aio.AioRpcError as err:
            raise RemoteError(err) from err
