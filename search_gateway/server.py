"""Builds the search gateway gRPC server (factory: port 0 in tests)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.serving.server import RunningServer, ServiceBinding, create_server, drain
from imgsearch.v1 import gateway_pb2, gateway_pb2_grpc
from search_gateway.core import GatewayCore
from search_gateway.servicer import GatewayServicer
from search_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["SearchGateway"].full_name


@dataclass
class GatewayServer:
    running: RunningServer
    core: GatewayCore
    metrics: ServiceMetrics
    metrics_port: int | None

    @property
    def port(self) -> int:
        return self.running.port

    async def stop(self, grace_s: float = 5.0) -> None:
        await drain(self.running, grace_s)
        await self.core.close()


async def start_gateway_server(
    settings: GatewaySettings, core: GatewayCore | None = None
) -> GatewayServer:
    """Opens the collection (via the embedder's Info), then serves; health
    turns SERVING once the collection is usable."""
    if core is None:
        from search_gateway.assemble import build_core

        core = await build_core(settings)
    metrics = ServiceMetrics.create("gateway")
    running = await create_server(
        f"{settings.host}:{settings.port}",
        [
            ServiceBinding(
                GatewayServicer(core),
                gateway_pb2_grpc.add_SearchGatewayServicer_to_server,
                SERVICE_NAME,
            )
        ],
        max_message_bytes=settings.max_request_bytes,
        metrics=metrics,
        credentials=settings.server_credentials(),
        api_keys=settings.api_keys(),
    )
    metrics_port = metrics.serve_http(settings.metrics_port, settings.host)
    await running.set_serving(True)
    return GatewayServer(running, core, metrics, metrics_port)
