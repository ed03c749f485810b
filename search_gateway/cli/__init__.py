"""`imgsearch`: index folders of images and search them by what you remember.

Embedded by default (models in-process, Qdrant on disk, no servers);
`--gateway host:port` sends every command through the service suite instead,
with identical output.

Layout: `app` (parser built from the settings, `main`), `connect` (flags ->
settings -> API), one module per command (`index_cmd`, `search_cmd`,
`admin_cmd`, `serve_cmd`, `demo`), `files` (walking folders, sidecars) and
`output` (everything printed).
"""

from __future__ import annotations

from search_gateway.cli.app import build_parser, main
from search_gateway.cli.files import IMAGE_EXTENSIONS, find_images, load_sidecar

__all__ = ["IMAGE_EXTENSIONS", "build_parser", "find_images", "load_sidecar", "main"]
