"""`imgsearch serve`: the search gateway as a gRPC server."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from search_gateway.cli.connect import settings_from


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
    from imgsearch.serving.server import run_until_signal
    from search_gateway.server import start_gateway_server

    settings = settings_from(
        args,
        port=args.port,
        host=args.host,
        metrics_port=args.metrics_port,
        http_port=args.http_port,
    )
    server = await start_gateway_server(settings)
    print(f"imgsearch gateway listening on {settings.host}:{server.port}", file=sys.stderr)
    if server.web is not None:
        print(f"search page and JSON API on {server.web.url}", file=sys.stderr)

    async def shutdown() -> None:
        if server.web is not None:
            await server.web.stop()
        await server.core.close()

    await run_until_signal(server.running, settings.grace_s, shutdown)
    return 0
