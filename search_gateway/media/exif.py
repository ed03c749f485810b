"""Photo metadata from EXIF: when, where, and with which camera.

Cameras write EXIF carelessly: GPS rationals with zero denominators, dates of
`0000:00:00 00:00:00`, coordinates outside the globe, megabytes of maker
notes, EXIF inside PNG and WebP. None of that may cost the image: each broken
value is left out with a debug log line and a short note in `problems`, and
the image is indexed without it. Only the header and the EXIF block are
parsed (PIL opens lazily), never the pixels, so reading costs well under 5 %
of ingest (bench/video_ingest.py measures it).
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from PIL import Image

log = logging.getLogger(__name__)

# EXIF tag numbers (EXIF 2.32 / TIFF 6.0).
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_MAKE, _MODEL, _DATETIME = 0x010F, 0x0110, 0x0132
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED = 0x9003, 0x9004
_OFFSET_TIME_ORIGINAL, _OFFSET_TIME = 0x9011, 0x9010
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4
_GPS_ALT_REF, _GPS_ALT = 5, 6

# PIL warns (UserWarning) for each damaged EXIF tag it skips; here damage is
# expected and reported through `problems`, so those warnings are noise. A
# narrow module filter, because catch_warnings() is not thread-safe.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.TiffImagePlugin")

# A camera name longer than this is garbage, not a model name.
_MAX_NAME = 64


@dataclass(frozen=True)
class FileMetadata:
    """What one file says about itself; None where it says nothing usable.

    `timestamp` is timezone-aware. When the file gave no UTC offset it holds
    the camera's wall-clock time read as UTC and `timestamp_is_local` is True:
    the true instant is unknown by up to ±14 h, and the payload says so.
    """

    source: str  # "exif" or "video": where these values came from
    timestamp: datetime | None = None
    timestamp_is_local: bool = False
    lat: float | None = None
    lon: float | None = None
    altitude_m: float | None = None
    camera: str | None = None
    problems: tuple[str, ...] = field(default=())


def _num(value: Any) -> float:
    """An EXIF rational (IFDRational or (num, den)) as a finite float, else ValueError."""
    if isinstance(value, tuple) and len(value) == 2:
        num, den = value
        if not den:
            raise ValueError("zero denominator")
        out = float(num) / float(den)
    else:
        if getattr(value, "denominator", 1) == 0:
            raise ValueError("zero denominator")
        out = float(value)
    if not math.isfinite(out):
        raise ValueError("not a finite number")
    return out


def _dms(value: Any, ref: Any, negative: str) -> float:
    parts = list(value) if isinstance(value, (tuple, list)) else [value]
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"{len(parts)} parts")
    deg = sum(_num(p) / 60**i for i, p in enumerate(parts))
    ref_s = ref.decode("ascii", "replace") if isinstance(ref, bytes) else str(ref or "")
    return -deg if ref_s.strip().upper().startswith(negative) else deg


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text if text and len(text) <= _MAX_NAME and text.isprintable() else None


def parse_exif_datetime(text: Any, offset: Any = None) -> tuple[datetime, bool]:
    """'2024:05:01 14:30:00' (+ '+02:00') -> (aware datetime, is_local).

    Raises ValueError for blank or impossible dates ('0000:00:00 00:00:00').
    """
    raw = _text(text)
    if raw is None:
        raise ValueError("no date")
    raw = raw[:19]
    if raw.startswith("0000") or raw.strip(" :0") == "":
        raise ValueError(f"blank date {raw!r}")
    local = datetime.strptime(raw, "%Y:%m:%d %H:%M:%S")
    off = _text(offset)
    if off:
        sign = -1 if off.startswith("-") else 1
        hh, _, mm = off.lstrip("+-").partition(":")
        delta = timedelta(hours=int(hh), minutes=int(mm or 0))
        if delta > timedelta(hours=14):
            raise ValueError(f"offset {off!r} out of range")
        return local.replace(tzinfo=timezone(sign * delta)).astimezone(timezone.utc), False
    return local.replace(tzinfo=timezone.utc), True


def read_exif(data: bytes) -> FileMetadata | None:
    """EXIF metadata of an encoded image (JPEG, PNG, WebP, TIFF, HEIF if PIL can).

    Returns None when the file has no EXIF (or PIL cannot open it: the image
    decoder reports that failure, not this reader). Never raises.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            exif = img.getexif()
            if not exif:
                return None
            sub = _ifd(exif, _EXIF_IFD)
            gps = _ifd(exif, _GPS_IFD)
            base = dict(exif)
    except Exception as exc:  # a broken EXIF block never fails an image
        log.debug("EXIF unreadable: %s", exc)
        return None
    return _from_tags(base, sub, gps)


def _ifd(exif: Image.Exif, tag: int) -> dict[int, Any]:
    try:
        return dict(exif.get_ifd(tag))
    except Exception as exc:
        log.debug("EXIF IFD %#x unreadable: %s", tag, exc)
        return {}


def _from_tags(
    base: dict[int, Any], sub: dict[int, Any], gps: dict[int, Any]
) -> FileMetadata | None:
    problems: list[str] = []
    values: dict[str, Any] = {}

    def note(what: str, exc: Exception) -> None:
        log.debug("EXIF %s ignored: %s", what, exc)
        problems.append(f"{what}: {exc}")

    when = sub.get(_DATETIME_ORIGINAL) or sub.get(_DATETIME_DIGITIZED) or base.get(_DATETIME)
    if when is not None:
        offset = sub.get(_OFFSET_TIME_ORIGINAL) or sub.get(_OFFSET_TIME)
        try:
            values["timestamp"], values["timestamp_is_local"] = parse_exif_datetime(when, offset)
        except (ValueError, TypeError, OverflowError) as exc:
            note("date", exc)
    if _GPS_LAT in gps and _GPS_LON in gps:
        try:
            lat = _dms(gps[_GPS_LAT], gps.get(_GPS_LAT_REF), "S")
            lon = _dms(gps[_GPS_LON], gps.get(_GPS_LON_REF), "W")
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"({lat:.4f}, {lon:.4f}) outside the globe")
            if lat == 0 and lon == 0:
                raise ValueError("(0, 0): no fix")  # what cameras write when GPS had no fix
            values["lat"], values["lon"] = lat, lon
        except (ValueError, TypeError, ZeroDivisionError) as exc:
            note("GPS position", exc)
    if _GPS_ALT in gps:
        try:
            alt = _num(gps[_GPS_ALT])
            ref = gps.get(_GPS_ALT_REF)
            if ref in (1, b"\x01"):
                alt = -alt
            if not -500 <= alt <= 100_000:
                raise ValueError(f"{alt:.0f} m out of range")
            values["altitude_m"] = alt
        except (ValueError, TypeError, ZeroDivisionError) as exc:
            note("GPS altitude", exc)
    make, model = _text(base.get(_MAKE)), _text(base.get(_MODEL))
    if model and make and model.lower().startswith(make.lower()):
        make = None  # "Canon Canon EOS 5D" -> "Canon EOS 5D"
    camera = " ".join(p for p in (make, model) if p)
    if camera:
        values["camera"] = camera
    if not values and not problems:
        return None
    return FileMetadata(source="exif", problems=tuple(problems), **values)
