"""Which metadata a point gets, and where each value came from.

Precedence (DESIGN "Round 2"): what the user gives > what the file says (EXIF,
container tags) > the file's modification time. The payload records the source
of each value beside it (`timestamp_source`: "exif", "video", "file_mtime",
"user"; likewise `location_source`, `altitude_m_source`, `camera_source`),
flat keyword fields so a filter can tell a camera clock from an mtime guess
(`timestamp_source=exif`) and every transport carries them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from search_gateway.media.exif import FileMetadata

TIMESTAMP = "timestamp"
LOCATION = "location"
ALTITUDE = "altitude_m"
CAMERA = "camera"
TIMESTAMP_IS_LOCAL = "timestamp_is_local"

SOURCE_USER = "user"
SOURCE_MTIME = "file_mtime"


def _rfc3339(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def file_values(md: FileMetadata) -> dict[str, Any]:
    """The payload fields a file's own metadata gives."""
    out: dict[str, Any] = {}
    if md.timestamp is not None:
        out[TIMESTAMP] = _rfc3339(md.timestamp)
        if md.timestamp_is_local:
            out[TIMESTAMP_IS_LOCAL] = True
    if md.lat is not None and md.lon is not None:
        out[LOCATION] = {"lat": md.lat, "lon": md.lon}
    if md.altitude_m is not None:
        out[ALTITUDE] = md.altitude_m
    if md.camera:
        out[CAMERA] = md.camera
    return out


def merge_metadata(
    user: dict[str, Any],
    file_md: FileMetadata | None = None,
    mtime: float | None = None,
) -> dict[str, Any]:
    """User metadata completed by the file's own and, for the time, the mtime.

    Args:
        user: what the user gave (never overwritten).
        file_md: what the file says (EXIF, container tags), if anything.
        mtime: the file's modification time (epoch seconds), the last resort
            for `timestamp`.
    Returns the merged metadata with `<key>_source` naming each value's origin.
    """
    out = dict(user)
    known = (TIMESTAMP, LOCATION, ALTITUDE, CAMERA)
    sources: dict[str, str] = {k: SOURCE_USER for k in known if k in user}
    if file_md is not None:
        for key, value in file_values(file_md).items():
            if key == TIMESTAMP_IS_LOCAL:
                if TIMESTAMP not in user:
                    out[key] = value
                continue
            if key not in user:
                out[key] = value
                sources[key] = file_md.source
    if TIMESTAMP not in out and mtime is not None:
        out[TIMESTAMP] = _rfc3339(datetime.fromtimestamp(mtime, tz=timezone.utc))
        sources[TIMESTAMP] = SOURCE_MTIME
    for key, source in sources.items():
        out.setdefault(source_key(key), source)
    return out


def source_key(key: str) -> str:
    """Where the source of a metadata value is recorded: `timestamp` -> `timestamp_source`."""
    return f"{key}_source"
