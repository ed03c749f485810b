"""`python -m embedder_service` / `imgsearch-embedder`: serve CLIP over gRPC.

Every flag has an IMGSEARCH_EMBEDDER_* environment variable; flags win.
"""

from __future__ import annotations

import sys

from embedder_service.settings import EmbedderSettings
from imgsearch.serving.model_server import serve_main


def main(argv: list[str] | None = None) -> int:
    from embedder_service.server import start_embedder_server

    return serve_main(
        argv,
        EmbedderSettings,
        "imgsearch-embedder",
        "CLIP embedder gRPC service (imgsearch.v1.Embedder)",
        start_embedder_server,
    )


if __name__ == "__main__":
    sys.exit(main())
