"""What enters and leaves the ingest pipeline: items, outcomes, request checks.

Kept free of the stages so the servicer, the CLI and the remote client can
import these without pulling in models or the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from imgsearch.errors import InvalidInput
from search_gateway import domain as d

MAX_METADATA_BYTES = 16 * 1024


class IngestStatus(Enum):
    ADDED = "added"
    ALREADY_PRESENT = "already_present"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    SIMILAR_FRAME = "similar_frame"  # a video frame like the last kept one: not stored


@dataclass(frozen=True)
class FrameRef:
    """Marks an image as a sampled frame: which video (content hash, or a live
    session key) and where in it. The point id derives from both."""

    video_sha256: str
    offset_s: float


@dataclass
class IngestItem:
    """One image to ingest: bytes or a path, where it lives, its metadata."""

    data: bytes | None = None
    path: str | None = None
    uri: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    with_captions: bool = False
    near_duplicate_threshold: float = 0.0
    problem: str = ""  # set when the request itself was malformed (e.g. bad metadata)
    frame: FrameRef | None = None
    frame_change_threshold: float | None = None  # None: media/frame_filter.DEFAULT_THRESHOLD
    # With `data`: the source file's mtime (epoch seconds) as the client read
    # it, the last resort for `timestamp` (a path's own mtime is read instead).
    file_mtime: float | None = None


@dataclass
class ReadyImage:
    """An image produced inside the gateway (e.g. a frame sampled from a video):
    bytes already in hand, a uri, metadata, and optionally its own point id.

    It enters the pipeline at the read-and-hash stage like an IngestItem but
    skips the path policy; `point_id` lets a frame's id derive from the video's
    content and offset rather than from the frame's bytes. Empty `point_id`:
    the id is derived from the bytes as for any image.
    """

    data: bytes
    uri: str
    metadata: dict[str, Any] = field(default_factory=dict)
    point_id: str = ""
    with_captions: bool = False
    near_duplicate_threshold: float = 0.0
    frame: FrameRef | None = None
    frame_change_threshold: float | None = None


@dataclass
class IngestOutcome:
    index: int
    status: IngestStatus
    id: str = ""
    uri: str = ""
    duplicate_of: str = ""
    reason: str = ""
    error_code: str = ""
    caption_pending: bool = False


def validate_metadata(metadata: dict[str, Any]) -> None:
    """User metadata: sane keys, not the gateway's own fields, bounded size."""
    for key in metadata:
        if d.payload_key_problem(key, nested=False) is not None:
            raise InvalidInput(f"metadata key {key!r}: use letters, digits and _ (max 64)")
        if key in d.RESERVED_FIELDS:
            raise InvalidInput(f"metadata key {key!r} is reserved for the gateway")
    size = len(json.dumps(metadata, default=str))
    if size > MAX_METADATA_BYTES:
        raise InvalidInput(f"metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}")
