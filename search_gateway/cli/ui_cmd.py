"""`imgsearch ui`: the search page over the embedded index, in the browser.

The same page and JSON API a gateway serves with `serve --http-port`, here
over the embedded core (models in-process, Qdrant on disk), for a laptop.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from imgsearch.errors import InvalidInput
from search_gateway.cli import shutdown
from search_gateway.cli.connect import settings_from


def add_commands(sub: argparse._SubParsersAction, command: Any) -> None:  # type: ignore[type-arg]
    p = command("ui", "search in the browser: serve the search page over the embedded index")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8080, help="default 8080; 0 picks a free port")
    p.add_argument(
        "--root",
        action="append",
        default=[],
        metavar="DIR",
        help="folder whose images the page may show in full and ingest by path "
        "(repeatable; default: the settings' read roots) [IMGSEARCH_READ_ROOTS]",
    )
    p.set_defaults(func=run_ui)


async def run_ui(args: argparse.Namespace) -> int:
    from search_gateway.web.server import serve_ui

    if getattr(args, "gateway", None):
        raise InvalidInput(
            "ui serves the embedded index; for a gateway, start it with "
            "`imgsearch serve --http-port 8080` and open that port"
        )
    settings = settings_from(args)
    roots = [Path(r).expanduser().resolve() for r in args.root] or settings.roots()
    for root in roots:
        if not root.is_dir():
            raise InvalidInput(f"--root {root}: not a folder")
    with shutdown.graceful("stopping the page (Ctrl-C again to quit at once)") as stop:
        await serve_ui(settings, port=args.port, host=args.host, read_roots=roots, stop=stop)
    return 0
