"""`python -m embedder_service` / `imgsearch-embedder`: serve CLIP over gRPC.

Every flag has an IMGSEARCH_EMBEDDER_* environment variable; flags win.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from embedder_service.server import EMBEDDER

    return EMBEDDER.main(argv)


if __name__ == "__main__":
    sys.exit(main())
