"""Video identities without the decoder: content hashes, frame keys, file kinds.

Kept apart from media/video.py so the CLI and the ingest stages can name
videos and frames without importing PyAV (~0.3 s) on every start.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"})
DEFAULT_INTERVAL_S = 1.0


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash of a file, read in chunks (memory stays flat)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def frame_key(video_sha256: str, offset_s: float) -> str:
    """A content-derived key of one frame (hex): same video and offset, same key.

    Millisecond resolution: offsets come from the container's timestamps, so
    they repeat exactly when the same file is sampled again.
    """
    return hashlib.sha256(f"{video_sha256}@{round(offset_s * 1000)}".encode()).hexdigest()
