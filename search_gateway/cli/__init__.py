"""`imgsearch`: index folders of images and search them by what you remember.

Embedded by default (models in-process, Qdrant on disk, no servers);
`--gateway host:port` sends every command through the service suite instead,
with identical output.

Layout: `app` (parser built from the settings, `main`), `connect` (flags ->
settings -> API), one module per command (`index_cmd`, `search_cmd`,
`admin_cmd`, `serve_cmd`, `demo`), `files` (walking folders, sidecars),
`output` (everything printed), `shutdown` (Ctrl-C), `daemon` and `warm_path`
(the warm daemon and the client's short path to it).

This module imports nothing heavy: `main` first offers the command to a live
warm daemon (standard library only) and imports the parser only otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from search_gateway.cli.files import IMAGE_EXTENSIONS, find_images, load_sidecar

__all__ = ["IMAGE_EXTENSIONS", "build_parser", "find_images", "load_sidecar", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The `imgsearch` command (see app.main)."""
    from search_gateway.cli import shutdown
    from search_gateway.cli.warm_path import try_warm

    code = try_warm(list(sys.argv[1:] if argv is None else argv))
    if code is not None:
        if argv is None:
            shutdown.finish(code)
        return code
    from search_gateway.cli.app import main as full_main

    return full_main(argv)


def build_parser() -> Any:
    from search_gateway.cli.app import build_parser as build

    return build()
