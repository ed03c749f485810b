"""`python -m caption_service` / `imgsearch-captioner`: serve BLIP over gRPC.

Every flag has an IMGSEARCH_CAPTIONER_* environment variable; flags win.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from caption_service.settings import CaptionerSettings
from imgsearch.serving.logs import configure_logging
from imgsearch.serving.settings_cli import add_settings_arguments, settings_from_args


def parse_args(argv: list[str] | None = None) -> CaptionerSettings:
    parser = argparse.ArgumentParser(
        prog="imgsearch-captioner",
        description="BLIP captioner gRPC service (imgsearch.v1.Captioner)",
    )
    add_settings_arguments(parser, CaptionerSettings, "IMGSEARCH_CAPTIONER_")
    return settings_from_args(parser.parse_args(argv), CaptionerSettings)


async def serve(settings: CaptionerSettings) -> None:
    from caption_service.server import start_caption_server
    from imgsearch.serving.server import run_until_signal

    server = await start_caption_server(settings)
    await run_until_signal(server.running, settings.grace_s, server.runtime.close)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    settings = parse_args(argv)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
