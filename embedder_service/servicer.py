"""The Embedder gRPC servicer: protobuf in, EmbedderRuntime call, protobuf out."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from grpc import aio

from embedder_service.runtime import EmbedderRuntime
from imgsearch import vectors
from imgsearch.serving.info import serving_info
from imgsearch.v1 import common_pb2, embedder_pb2, embedder_pb2_grpc


class EmbedderServicer(embedder_pb2_grpc.EmbedderServicer):
    def __init__(self, runtime: EmbedderRuntime, max_image_pixels: int) -> None:
        self.runtime = runtime
        self.max_image_pixels = max_image_pixels

    async def EmbedImages(
        self, request: embedder_pb2.EmbedImagesRequest, context: aio.ServicerContext
    ) -> embedder_pb2.EmbedImagesResponse:
        result = await self.runtime.embed_images(list(request.images), request.partial_results)
        return embedder_pb2.EmbedImagesResponse(
            dimension=self.runtime.model.info.dimension,
            vectors=[b"" if v is None else vectors.encode(v) for v in result.vectors],
            errors=[common_pb2.ImageError(index=i, reason=r) for i, r in result.error_items()],
        )

    async def EmbedTexts(
        self, request: embedder_pb2.EmbedTextsRequest, context: aio.ServicerContext
    ) -> embedder_pb2.EmbedTextsResponse:
        vecs, truncated = await self.runtime.embed_texts(list(request.texts))
        return embedder_pb2.EmbedTextsResponse(
            dimension=self.runtime.model.info.dimension,
            vectors=[vectors.encode(v) for v in vecs],
            truncated=truncated,
        )

    async def Info(
        self, request: embedder_pb2.InfoRequest, context: aio.ServicerContext
    ) -> embedder_pb2.EmbedderInfo:
        serving = serving_info(self.runtime, self.runtime.limits, self.max_image_pixels)
        # EmbedderInfo = the model's EmbedderModelInfo + the serving fields, by name.
        fields: dict[str, Any] = {
            **asdict(self.runtime.model.info),
            **serving,
            "image_decode": self.runtime.image_decode,
            "images_device_decoded": self.runtime.decodes.on_device,
            "images_cpu_decoded": self.runtime.decodes.on_cpu,
        }
        return embedder_pb2.EmbedderInfo(**fields)
