"""Thumbnails and original files of points, for the caller's tenant only.

A point's pictures are found through Get first (api.fetch_point), so another
tenant's id, or an id that does not exist, answers 404 alike: a guessed URL
learns nothing. Thumbnails come from the thumbnail store (DESIGN "Round 2");
for points stored before it existed, one is rendered from the original file,
but only when that file lies under the gateway's read roots, the same folders
the gateway may ingest from, checked by the same PathPolicy. Nothing else on
disk is ever read.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Sequence
from pathlib import Path

from imgsearch.errors import ImgsearchError, NotFound
from imgsearch.images import DEFAULT_MAX_PIXELS, decode_rgb
from search_gateway.ingest import PathPolicy
from search_gateway.thumbnails import THUMBNAIL_SIDE, make_thumbnail, media_type

MAX_ORIGINAL_BYTES = 1 << 40  # originals are streamed, not read: videos may be large


class MediaFiles:
    """Original files under `roots`, read by the ingest's own PathPolicy
    (same roots, same rules: resolved first, regular files only, no FIFO, no
    symlink swapped in)."""

    def __init__(self, roots: Sequence[Path], max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.paths = PathPolicy(list(roots))
        self.max_pixels = max_pixels

    def original(self, uri: str) -> Path:
        """The file of a point when the policy may read it; NotFound otherwise
        (one answer, so it does not tell which files exist outside the roots)."""
        try:
            resolved, f = self.paths.open(uri, max_bytes=MAX_ORIGINAL_BYTES)
        except ImgsearchError:
            raise NotFound("the original file is not available from this server") from None
        f.close()  # checked; FileResponse streams it (with range requests)
        return Path(resolved)

    async def rendered_thumbnail(self, uri: str) -> tuple[bytes, str]:
        """(bytes, media type) of a thumbnail made from the original, for a
        point the thumbnail store has none of (stored before it existed)."""
        data = await asyncio.to_thread(self._render, uri)
        return data, media_type(data)

    def _render(self, uri: str) -> bytes:
        try:
            data = self.paths.read(uri)
            image = decode_rgb(data, self.max_pixels, min_side=THUMBNAIL_SIDE)
        except ImgsearchError:
            raise NotFound("no thumbnail: the original is not readable here") from None
        return make_thumbnail(image, fmt="JPEG")


def media_type_of(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"
