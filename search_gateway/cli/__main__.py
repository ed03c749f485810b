"""`python -m search_gateway.cli ...`, the same as the `imgsearch` command."""

from __future__ import annotations

import sys

from search_gateway.cli import main

if __name__ == "__main__":
    sys.exit(main())
