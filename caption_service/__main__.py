"""`python -m caption_service` / `imgsearch-captioner`: serve BLIP over gRPC.

Every flag has an IMGSEARCH_CAPTIONER_* environment variable; flags win.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from caption_service.server import CAPTIONER

    return CAPTIONER.main(argv)


if __name__ == "__main__":
    sys.exit(main())
