"""`imgsearch serve`: the search gateway as a gRPC server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from search_gateway.cli import shutdown
from search_gateway.cli.connect import settings_from
from search_gateway.core import GatewayCore

log = logging.getLogger("imgsearch.serve")


# How long closing the core may wait for busy model threads after the drain.
CLOSE_WAIT_S = 1.0


async def close_within(core: GatewayCore, seconds: float) -> bool:
    """Closes the core; if its models are still busy after `seconds`, closes
    only the store (so every acknowledged write is on disk) and returns False."""
    closing = asyncio.ensure_future(core.close())
    finished, _ = await asyncio.wait({closing}, timeout=seconds)
    if finished:
        closing.result()
        return True
    await core.store.close()
    return False


def add_commands(sub: argparse._SubParsersAction, command: Any) -> None:  # type: ignore[type-arg]
    p = command("serve", "run the search gateway as a gRPC server")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None, help="default 50050 [IMGSEARCH_PORT]")
    p.add_argument("--metrics-port", type=int, default=None, help="default 9466; -1 disables")
    p.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="also serve the JSON API and the search page here; -1 disables "
        "(default) [IMGSEARCH_HTTP_PORT]",
    )
    p.set_defaults(func=run_serve)


async def run_serve(args: argparse.Namespace) -> int:
    """Serves until SIGINT/SIGTERM, then drains for up to grace_s (a second
    signal ends it at once; see cli/shutdown.py)."""
    from imgsearch.serving.server import drain
    from search_gateway.server import start_gateway_server

    settings = settings_from(
        args,
        port=args.port,
        host=args.host,
        metrics_port=args.metrics_port,
        http_port=args.http_port,
    )
    with shutdown.graceful(
        f"stopping: draining requests for up to {settings.grace_s:.0f} s"
        " (Ctrl-C again to quit at once)"
    ) as stop:
        server = await start_gateway_server(settings)
        print(f"imgsearch gateway listening on {settings.host}:{server.port}", file=sys.stderr)
        if server.web is not None:
            print(f"search page and JSON API on {server.web.url}", file=sys.stderr)
        done = asyncio.ensure_future(server.running.server.wait_for_termination())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({done, stopped}, return_when=asyncio.FIRST_COMPLETED)
        log.info("shutting down: draining for up to %.0f s", settings.grace_s)
        if server.backfill is not None:
            server.backfill.cancel()
        if server.web is not None:
            await server.web.stop()
        await drain(server.running, settings.grace_s)
        stopped.cancel()
        done.cancel()
        if not await close_within(server.core, CLOSE_WAIT_S):
            # A model thread is still busy (e.g. loading BLIP for the backfill):
            # the store is closed, so nothing acknowledged is lost; do not wait.
            log.info("stopped (models abandoned)")
            shutdown.finish(0)
        log.info("stopped")
    return 0
