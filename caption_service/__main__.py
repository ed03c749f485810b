"""`python -m caption_service` / `imgsearch-captioner`: serve BLIP over gRPC.

Every flag has an IMGSEARCH_CAPTIONER_* environment variable; flags win.
"""

from __future__ import annotations

import sys

from caption_service.settings import CaptionerSettings
from imgsearch.serving.model_server import serve_main


def main(argv: list[str] | None = None) -> int:
    from caption_service.server import start_caption_server

    return serve_main(
        argv,
        CaptionerSettings,
        "imgsearch-captioner",
        "BLIP captioner gRPC service (imgsearch.v1.Captioner)",
        start_caption_server,
    )


if __name__ == "__main__":
    sys.exit(main())
