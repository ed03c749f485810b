"""Builds the embedder gRPC server from settings (a factory, so tests start it
on port 0 and the container entry point starts it on its configured port)."""

from __future__ import annotations

import logging

from embedder_service.model import ClipEmbedder
from embedder_service.runtime import EmbedderRuntime, Limits
from embedder_service.servicer import EmbedderServicer
from embedder_service.settings import EmbedderSettings
from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.serving.model_server import ModelServer, start_model_server
from imgsearch.serving.server import ServiceBinding
from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name


EmbedderServer = ModelServer[EmbedderRuntime]


def build_model(settings: EmbedderSettings) -> ClipEmbedder:
    return ClipEmbedder(
        settings.model,
        settings.pretrained,
        device=settings.device,
        precision=settings.precision,
        runtime=settings.runtime,
        cache_dir=settings.cache_dir,
        max_image_pixels=settings.max_image_pixels,
    )


async def start_embedder_server(
    settings: EmbedderSettings, model: ClipEmbedder | None = None
) -> EmbedderServer:
    """Starts listening at once (health NOT_SERVING) and loads the model in the
    background; health turns SERVING when it is loaded and warmed up."""
    metrics = ServiceMetrics.create("embedder")
    runtime = EmbedderRuntime(
        model or build_model(settings),
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
    )
    servicer = EmbedderServicer(runtime, settings.max_image_pixels)
    binding = ServiceBinding(
        servicer, embedder_pb2_grpc.add_EmbedderServicer_to_server, SERVICE_NAME
    )
    return await start_model_server(settings, runtime, binding, metrics, "embedder")
