"""Starting and stopping the HTTP side: beside the gRPC gateway
(`IMGSEARCH_HTTP_PORT`), or alone over an embedded core (`imgsearch ui`)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from imgsearch.serving.auth import ApiKeys
from imgsearch.serving.metrics import ServiceMetrics
from search_gateway.core import GatewayCore
from search_gateway.servicer import GatewayServicer
from search_gateway.settings import GatewaySettings
from search_gateway.web.app import LOOPBACK_NAMES, create_app
from search_gateway.web.media import MediaFiles

log = logging.getLogger(__name__)


@dataclass
class WebServer:
    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_web_server(
    core: GatewayCore,
    settings: GatewaySettings,
    *,
    port: int,
    host: str | None = None,
    read_roots: Sequence[Path] | None = None,
    api_keys: ApiKeys | None = None,
    metrics: ServiceMetrics | None = None,
) -> WebServer:
    """Serves the JSON API and the page over `core` on host:port (0: any free
    port). `read_roots` default to the settings' roots."""
    roots = list(read_roots) if read_roots is not None else settings.roots()
    bind = host if host is not None else settings.host
    media = MediaFiles(roots, settings.max_image_pixels)
    app = create_app(
        GatewayServicer(core),
        media,
        api_keys=api_keys,
        rerank=getattr(core, "reranker", None) is not None,
        max_k=settings.max_k,
        max_body_bytes=settings.http_max_body_bytes,
        loopback_only=api_keys is None and bind in LOOPBACK_NAMES,
        metrics=metrics,
        thumbnail_store=core.thumbnails is not None,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, bind, port)
    await site.start()
    bound = int(runner.addresses[0][1])  # the real port when `port` was 0
    log.info("HTTP (JSON + page) on %s:%d", bind, bound)
    return WebServer(runner, bind, bound)


async def serve_ui(
    settings: GatewaySettings,
    *,
    port: int = 8080,
    host: str = "127.0.0.1",
    read_roots: Sequence[Path] = (),
    stop: asyncio.Event | None = None,
) -> None:
    """`imgsearch ui`: the page over the embedded index until `stop` is set
    (without one: until SIGINT/SIGTERM).

    Loopback by default: with no API keys configured, anyone who can reach the
    port can search and delete.
    """
    from search_gateway.assemble import build_core

    core = await build_core(settings, read_roots=list(read_roots))
    try:
        web_server = await start_web_server(
            core, settings, port=port, host=host, read_roots=read_roots,
            api_keys=settings.api_keys(),
        )  # fmt: skip
    except BaseException:
        await core.close()
        raise
    print(f"imgsearch page: {web_server.url}  (Ctrl-C stops)", flush=True)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await web_server.stop()
        await core.close()
