"""Builds the embedder gRPC server from settings (a factory, so tests start it
on port 0 and the container entry point starts it on its configured port)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from embedder_service.model import ClipEmbedder
from embedder_service.runtime import EmbedderRuntime, Limits
from embedder_service.servicer import EmbedderServicer
from embedder_service.settings import EmbedderSettings
from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.serving.server import RunningServer, ServiceBinding, create_server
from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name


@dataclass
class EmbedderServer:
    running: RunningServer
    runtime: EmbedderRuntime
    metrics: ServiceMetrics
    metrics_port: int | None
    loading: asyncio.Task[None]

    @property
    def port(self) -> int:
        return self.running.port

    async def wait_ready(self) -> None:
        await self.loading

    async def stop(self, grace_s: float = 5.0) -> None:
        from imgsearch.serving.server import drain

        await drain(self.running, grace_s)
        await self.runtime.close()


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
            max_queue=settings.max_queue,
            max_items_per_request=settings.max_items_per_request,
            max_request_bytes=settings.max_request_bytes,
        ),
        metrics,
        settings.decode_workers,
    )
    servicer = EmbedderServicer(runtime, settings.max_image_pixels)
    running = await create_server(
        f"{settings.host}:{settings.port}",
        [ServiceBinding(servicer, embedder_pb2_grpc.add_EmbedderServicer_to_server, SERVICE_NAME)],
        max_message_bytes=settings.max_request_bytes,
        metrics=metrics,
        credentials=settings.server_credentials(),
        api_keys=settings.api_keys(),
    )
    metrics_port = metrics.serve_http(settings.metrics_port, settings.host)

    async def load() -> None:
        try:
            await runtime.start()
        except Exception:
            log.exception("model failed to load; staying NOT_SERVING")
            raise
        await running.set_serving(True)
        log.info("embedder SERVING: %s", runtime.model.info)

    loading = asyncio.get_running_loop().create_task(load())
    return EmbedderServer(running, runtime, metrics, metrics_port, loading)
