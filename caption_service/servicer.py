"""The Captioner gRPC servicer: protobuf in, CaptionRuntime call, protobuf out."""

from __future__ import annotations

from grpc import aio

from caption_service.runtime import CaptionRuntime
from imgsearch.errors import FailedPrecondition, NotReady
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

    async def Score(
        self, request: captioner_pb2.ScoreRequest, context: aio.ServicerContext
    ) -> captioner_pb2.ScoreResponse:
        scorer = self.runtime.scorer
        if scorer is None:
            raise FailedPrecondition(
                "this captioner serves no image-text matching model "
                "(start it with --score-model, e.g. Salesforce/blip-itm-base-coco or offline-tiny)"
            )
        if not self.runtime.ready or not scorer.ready:
            raise NotReady("model is loading; retry shortly")
        result = await scorer.score_images(
            request.text, list(request.images), request.partial_results
        )
        return captioner_pb2.ScoreResponse(
            scores=[0.0 if v is None else v for v in result.values],
            errors=[common_pb2.ImageError(index=i, reason=r) for i, r in result.error_items()],
            model=scorer.model.info.model,
        )

    async def Info(
        self, request: captioner_pb2.CaptionerInfoRequest, context: aio.ServicerContext
    ) -> captioner_pb2.CaptionerInfo:
        serving = serving_info(self.runtime, self.runtime.limits, self.max_image_pixels)
        info = self.runtime.model.info
        limits = self.runtime.limits
        scorer = self.runtime.scorer
        return captioner_pb2.CaptionerInfo(
            score_model=scorer.model.info.model if scorer is not None else "",
            max_score_text_chars=scorer.limits.max_text_chars if scorer is not None else 0,
            pairs_scored=scorer.items_served if scorer is not None else 0,
            model=info.model,
            device=info.device,
            precision=info.precision,
            max_new_tokens_limit=limits.max_new_tokens_limit,
            max_beams=limits.max_beams,
            **serving,
        )
