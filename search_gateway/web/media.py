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
import io
import mimetypes
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from PIL import Image

from imgsearch.errors import ImgsearchError, NotFound
from imgsearch.images import DEFAULT_MAX_PIXELS, decode_rgb
from search_gateway.ingest import PathPolicy

THUMBNAIL_SIDE = 384  # as the thumbnail store's (search_gateway/thumbnails.py)
MAX_ORIGINAL_BYTES = 1 << 40  # originals are streamed, not read: videos may be large


class ThumbnailReader(Protocol):
    """What the page needs of search_gateway.thumbnails.ThumbnailStore."""

    def get(self, point_id: str) -> bytes | None: ...


def sniff_type(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    return "application/octet-stream"


class MediaFiles:
    """Where a point's pictures come from: the thumbnail store, else files
    under `roots`, read by the ingest's own PathPolicy (same roots, same
    rules: resolved first, regular files only, no FIFO, no symlink swap)."""

    def __init__(
        self,
        thumbnails: ThumbnailReader | None,
        roots: Sequence[Path],
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.thumbnails = thumbnails
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

    async def thumbnail(self, point_id: str, uri: str) -> tuple[bytes, str]:
        """(bytes, media type) of a point's thumbnail."""
        if self.thumbnails is not None:
            data = await asyncio.to_thread(self.thumbnails.get, point_id)
            if data:
                return data, sniff_type(data)
        data = await asyncio.to_thread(self._render, uri)
        return data, "image/jpeg"

    def _render(self, uri: str) -> bytes:
        try:
            data = self.paths.read(uri)
            image = decode_rgb(data, self.max_pixels, min_side=THUMBNAIL_SIDE)
        except ImgsearchError:
            raise NotFound("no thumbnail: the original is not readable here") from None
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BILINEAR)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=80)
        return out.getvalue()


def media_type_of(path: Path) -> str:
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"
