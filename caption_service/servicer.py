"""The Captioner gRPC servicer: protobuf in, CaptionRuntime call, protobuf out."""

from __future__ import annotations

from grpc import aio

from caption_service.runtime import CaptionRuntime
from imgsearch.errors import NotReady
from imgsearch.serving.info import serving_info
from imgsearch.v1 import captioner_pb2, captioner_pb2_grpc, common_pb2


class CaptionerServicer(captioner_pb2_grpc.CaptionerServicer):
    def __init__(self, runtime: CaptionRuntime, max_image_pixels: int) -> None:
        self.runtime = runtime
        self.max_image_pixels = max_image_pixels

    async def Caption(
        self, request: captioner_pb2.CaptionRequest, context: aio.ServicerContext
    ) -> captioner_pb2.CaptionResponse:
        o = request.options
        # Readiness first: a loading server answers UNAVAILABLE whatever the request.
        if not self.runtime.ready:
            raise NotReady("model is loading; retry shortly")
        options = self.runtime.options(o.max_new_tokens, o.num_beams, o.prefix)
        result = await self.runtime.caption_images(
            list(request.images), options, request.partial_results
        )
        return captioner_pb2.CaptionResponse(
            captions=["" if c is None else c for c in result.captions],
            errors=[common_pb2.ImageError(index=i, reason=r) for i, r in result.error_items()],
            model=self.runtime.model.info.model,
        )

    async def Info(
        self, request: captioner_pb2.CaptionerInfoRequest, context: aio.ServicerContext
    ) -> captioner_pb2.CaptionerInfo:
        serving = serving_info(self.runtime, self.runtime.limits, self.max_image_pixels)
        info = self.runtime.model.info
        limits = self.runtime.limits
        return captioner_pb2.CaptionerInfo(
            model=info.model,
            device=info.device,
            precision=info.precision,
            max_new_tokens_limit=limits.max_new_tokens_limit,
            max_beams=limits.max_beams,
            **serving,
        )
