"""Stage 1, read and hash: an IngestItem (bytes or a path) or a ReadyImage
becomes a Loaded image (bytes, sha256, point id, header) or a FAILED result.

This is the one entry point for an image into the pipeline: anything that
has bytes, a uri and metadata (a frame sampled from a video, a file found by
a watcher) enters here as a ReadyImage, and from then on is an image like
any other. Runs on a worker thread (file reads and hashing block).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Any

from imgsearch.errors import ImgsearchError, InvalidInput
from imgsearch.images import read_header
from search_gateway import domain as d
from search_gateway.ingest.items import FrameRef, IngestItem, ReadyImage, validate_metadata
from search_gateway.ingest.paths import PathPolicy, echo
from search_gateway.ingest.states import Loaded, Settled, Source, failed
from search_gateway.media.exif import read_exif
from search_gateway.media.frames import FRAME_OFFSET, VIDEO_SHA256
from search_gateway.media.ids import frame_key
from search_gateway.media.provenance import merge_metadata
from search_gateway.tenancy import TenantScope

MAX_URI_CHARS = 4096
_SHA_RE = re.compile(r"[0-9a-f]{64}")  # a uri is stored in the payload and echoed in every hit


def read_and_hash(
    index: int, source: Source, paths: PathPolicy, scope: TenantScope, max_pixels: int
) -> Loaded | Settled:
    """The image's bytes and identity, or why it cannot be ingested."""
    uri = _shown_uri(source)
    try:
        data, uri, mtime = _bytes_and_uri(source, paths)
        validate_metadata(source.metadata)
        scope.check_metadata(source.metadata)
        if not (0.0 <= source.near_duplicate_threshold <= 1.0):
            raise InvalidInput("near_duplicate_threshold must be within [0, 1]")
        fct = source.frame_change_threshold
        if fct is not None and not (-1.0 <= fct <= 1.0):
            raise InvalidInput("frame_change_threshold must be within [-1, 1]")
        sha256 = hashlib.sha256(data).hexdigest()
        point_id = scope.point_id(sha256)
        if isinstance(source, ReadyImage) and source.point_id:
            point_id = d.normalize_point_id(source.point_id)
        if source.frame is not None:
            point_id = scope.point_id(frame_point_key(source.frame))
    except ImgsearchError as exc:
        return failed(index, exc, uri=uri)
    except d.InvalidPointId as exc:
        return failed(index, exc, uri=uri)
    uri = uri or f"sha256:{sha256}"
    try:
        header = read_header(data, max_pixels)
    except ImgsearchError as exc:
        return failed(index, exc, id=point_id, uri=uri)
    return Loaded(
        index=index,
        data=data,
        uri=uri,
        sha256=sha256,
        id=point_id,
        header=header,
        metadata=own_metadata(source, data, mtime),
        with_captions=source.with_captions,
        near_duplicate_threshold=source.near_duplicate_threshold,
        frame=source.frame,
        frame_change_threshold=source.frame_change_threshold,
    )


def _shown_uri(source: Source) -> str:
    """The uri a FAILED result carries: only what the client sent, bounded."""
    if source.uri:
        return source.uri[:MAX_URI_CHARS]
    if isinstance(source, IngestItem) and source.path:
        return source.path[:MAX_URI_CHARS]
    return ""


def frame_point_key(frame: FrameRef) -> str:
    """The content-derived key of a frame: (video content, offset), never the frame's bytes."""
    if not _SHA_RE.fullmatch(frame.video_sha256):
        raise InvalidInput("frame.video_sha256 must be 64 hex digits")
    if not (0 <= frame.offset_s < 1e7):
        raise InvalidInput(f"frame.offset_s must be within [0, 1e7), got {frame.offset_s}")
    return frame_key(frame.video_sha256, frame.offset_s)


def own_metadata(source: Source, data: bytes, mtime: float | None) -> dict[str, Any]:
    """The user's metadata completed by what the file says (EXIF) and its mtime.

    Frames come with their video's metadata already merged by the client
    (media/frames.py); the gateway adds only the frame's own fields.
    """
    if source.frame is not None:
        return {
            **source.metadata,
            VIDEO_SHA256: source.frame.video_sha256,
            FRAME_OFFSET: source.frame.offset_s,
        }
    return merge_metadata(source.metadata, read_exif(data), mtime)


# Timestamp's range (0001-01-01 .. 9999-12-31 UTC), in epoch seconds.
_MTIME_RANGE = (-62_135_596_800.0, 253_402_300_799.0)


def _client_mtime(mtime: float | None) -> float | None:
    """A file mtime the client sent with the bytes, or InvalidInput."""
    if mtime is None:
        return None
    if not (math.isfinite(mtime) and _MTIME_RANGE[0] <= mtime <= _MTIME_RANGE[1]):
        raise InvalidInput(f"file_mtime {mtime!r} is outside years 1-9999")
    return mtime


def _bytes_and_uri(source: Source, paths: PathPolicy) -> tuple[bytes, str, float | None]:
    if len(source.uri) > MAX_URI_CHARS:
        raise InvalidInput(
            f"uri is {len(source.uri)} characters; the limit is {MAX_URI_CHARS} "
            f"(uri starts {echo(source.uri, 60)!r})"
        )
    if isinstance(source, ReadyImage):
        return source.data, source.uri, None
    if source.problem:
        raise InvalidInput(source.problem)
    if source.data is not None and source.path:
        raise InvalidInput("give either the image bytes or a path, not both")
    if source.data is not None:
        return source.data, source.uri, _client_mtime(source.file_mtime)
    if source.path:
        resolved, data = paths.read_file(source.path)
        try:
            mtime: float | None = os.stat(resolved).st_mtime
        except OSError:
            mtime = None
        return data, source.uri or str(Path(resolved)), mtime
    raise InvalidInput("no image: neither bytes nor a path given")
