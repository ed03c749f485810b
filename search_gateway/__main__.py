"""`python -m search_gateway`: the gateway as a gRPC server (same as
`imgsearch serve`)."""

from __future__ import annotations

import sys

from search_gateway.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
