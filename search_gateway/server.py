"""Builds the search gateway gRPC server (factory: port 0 in tests)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.serving.server import RunningServer, ServiceBinding, create_server, drain
from imgsearch.v1 import gateway_pb2, gateway_pb2_grpc
from search_gateway.core import GatewayCore
from search_gateway.servicer import GatewayServicer
from search_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from search_gateway.web.server import WebServer

log = logging.getLogger(__name__)

# How often a gateway whose collection is not usable yet retries opening it.
OPEN_RETRY_S = 1.0

SERVICE_NAME = gateway_pb2.DESCRIPTOR.services_by_name["SearchGateway"].full_name


@dataclass
class GatewayServer:
    running: RunningServer
    core: GatewayCore
    metrics: ServiceMetrics
    metrics_port: int | None
    backfill: asyncio.Task[None] | None = None
    health: asyncio.Task[None] | None = None
    web: WebServer | None = None

    @property
    def port(self) -> int:
        return self.running.port

    async def stop(self, grace_s: float = 5.0) -> None:
        for task in (self.backfill, self.health):
            if task is not None:
                task.cancel()
        if self.web is not None:
            await self.web.stop()
        await drain(self.running, grace_s)
        await self.core.close()


async def start_gateway_server(
    settings: GatewaySettings, core: GatewayCore | None = None
) -> GatewayServer:
    """Opens the collection (via the embedder's Info), then serves; health
    turns SERVING once the collection is usable.

    An embedder or Qdrant that is down at start-up leaves health NOT_SERVING
    (calls answer UNAVAILABLE or DEADLINE_EXCEEDED) until the collection opens; a collection of
    another model keeps it NOT_SERVING (calls answer FAILED_PRECONDITION).
    """
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
    server = GatewayServer(running, core, metrics, metrics_port)
    if core.usable:
        await running.set_serving(True)
    else:
        server.health = asyncio.get_running_loop().create_task(
            _serve_once_usable(core, running, OPEN_RETRY_S)
        )
    if settings.http_port >= 0:
        from search_gateway.web.server import start_web_server

        server.web = await start_web_server(
            core, settings, port=settings.http_port, api_keys=settings.api_keys(), metrics=metrics
        )
    if core.captions is not None:
        server.backfill = asyncio.get_running_loop().create_task(
            _caption_backfill_loop(core, settings.caption_backfill_interval_s)
        )
    return server


async def _serve_once_usable(core: GatewayCore, running: RunningServer, retry_s: float) -> None:
    """Sets health SERVING once the collection is usable, retrying its opening."""
    while not core.usable:
        if core.refusal is not None:
            log.error("health stays NOT_SERVING: %s", core.refusal)
            return
        await asyncio.sleep(retry_s)
        await core.open()  # also opened by the first call that needs it
    await running.set_serving(True)
    log.info("gateway SERVING: collection %s is open", core.store.collection)


async def _caption_backfill_loop(core: GatewayCore, interval_s: float) -> None:
    """Fills in deferred captions in the background, at the captioner's pace."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            report = await core.recaption()
        except asyncio.CancelledError:
            raise
        except Exception:  # keep the loop alive: a store hiccup must not end it
            log.exception("caption backfill failed; retrying later")
            continue
        if report.captioned or report.stopped:
            log.info(
                "caption backfill: %d captioned, %d unavailable%s",
                report.captioned,
                len(report.failed),
                f"; stopped: {report.stopped}" if report.stopped else "",
            )
