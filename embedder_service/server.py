"""Builds the embedder gRPC server from settings (a factory, so tests start it
on port 0 and the container entry point starts it on its configured port)."""

from __future__ import annotations

from embedder_service.model import ClipEmbedder
from embedder_service.runtime import EmbedderRuntime, Limits
from embedder_service.servicer import EmbedderServicer
from embedder_service.settings import EmbedderSettings
from imgsearch.model_choice import model_options
from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.serving.model_server import ModelServer, ModelService
from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc

SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name

EmbedderServer = ModelServer[EmbedderRuntime]


def build_runtime(
    settings: EmbedderSettings, model: ClipEmbedder | None, metrics: ServiceMetrics
) -> EmbedderRuntime:
    if model is None:
        options = model_options(settings, settings.max_image_pixels, settings.cache_dir)
        model = ClipEmbedder(settings.model, settings.pretrained, **options)
    return EmbedderRuntime(
        model,
        Limits(
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000.0,
            max_fill_wait_s=settings.max_fill_wait_ms / 1000.0,
            max_queue=settings.max_queue,
            max_items_per_request=settings.max_items_per_request,
            max_request_bytes=settings.max_request_bytes,
        ),
        metrics,
        settings.decode_workers,
        settings.image_decode,
    )


EMBEDDER = ModelService(
    "embedder",
    "CLIP embedder gRPC service (imgsearch.v1.Embedder)",
    EmbedderSettings,
    SERVICE_NAME,
    EmbedderServicer,
    embedder_pb2_grpc.add_EmbedderServicer_to_server,
    build_runtime,
)
start_embedder_server = EMBEDDER.start
