"""`python -m embedder_service` / `imgsearch-embedder`: serve CLIP over gRPC.

Every flag has an IMGSEARCH_EMBEDDER_* environment variable; flags win.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from embedder_service.settings import EmbedderSettings
from imgsearch.serving.logs import configure_logging
from imgsearch.serving.settings_cli import add_settings_arguments, settings_from_args


def parse_args(argv: list[str] | None = None) -> EmbedderSettings:
    parser = argparse.ArgumentParser(
        prog="imgsearch-embedder", description="CLIP embedder gRPC service (imgsearch.v1.Embedder)"
    )
    add_settings_arguments(parser, EmbedderSettings, "IMGSEARCH_EMBEDDER_")
    return settings_from_args(parser.parse_args(argv), EmbedderSettings)


async def serve(settings: EmbedderSettings) -> None:
    from embedder_service.server import start_embedder_server
    from imgsearch.serving.server import run_until_signal

    server = await start_embedder_server(settings)
    await run_until_signal(server.running, settings.grace_s, server.runtime.close)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    settings = parse_args(argv)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
