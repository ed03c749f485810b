"""EXIF reading: photos made here with PIL, good and broken metadata."""

from __future__ import annotations

import io
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from search_gateway.media.exif import FileMetadata, parse_exif_datetime, read_exif
from search_gateway.media.provenance import merge_metadata


def _r(num: int, den: int = 1) -> IFDRational:
    return IFDRational(num, den)


def make_photo(
    fmt: str = "JPEG",
    when: str | None = "2024:05:01 14:30:00",
    offset: str | None = "+02:00",
    gps: dict[int, object] | None = None,
    make: str | None = "Canon",
    model: str | None = "Canon EOS 5D",
    maker_note: bytes | None = None,
) -> bytes:
    """A small photo with the given EXIF, encoded by PIL."""
    img = Image.new("RGB", (64, 48), (120, 30, 30))
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    sub = exif.get_ifd(0x8769)
    if when:
        sub[0x9003] = when
    if offset:
        sub[0x9011] = offset
    if maker_note is not None:
        sub[0x927C] = maker_note
    if gps is not None:
        exif.get_ifd(0x8825).update(gps)
    out = io.BytesIO()
    img.save(out, format=fmt, exif=exif.tobytes())
    return out.getvalue()


PARIS = {
    1: "N",
    2: (_r(48), _r(51), _r(2952, 100)),
    3: "E",
    4: (_r(2), _r(21), _r(72, 10)),
    5: b"\x00",
    6: _r(355, 10),
}


def test_full_exif_gives_utc_time_place_and_camera() -> None:
    md = read_exif(make_photo(gps=PARIS))
    assert md is not None and md.source == "exif" and md.problems == ()
    assert md.timestamp == datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    assert md.timestamp_is_local is False
    assert md.lat == pytest.approx(48 + 51 / 60 + 29.52 / 3600)
    assert md.lon == pytest.approx(2 + 21 / 60 + 7.2 / 3600)
    assert md.altitude_m == pytest.approx(35.5)
    assert md.camera == "Canon EOS 5D"


def test_southern_western_and_no_offset_is_local_time() -> None:
    gps = {1: "S", 2: (_r(33), _r(52), _r(0)), 3: "W", 4: (_r(70), _r(30), _r(0))}
    md = read_exif(make_photo(gps=gps, offset=None, make="NIKON", model="D750"))
    assert md is not None
    assert md.lat == pytest.approx(-(33 + 52 / 60)) and md.lon == pytest.approx(-70.5)
    assert md.timestamp == datetime(2024, 5, 1, 14, 30, tzinfo=timezone.utc)
    assert md.timestamp_is_local is True
    assert md.camera == "NIKON D750"


@pytest.mark.parametrize(
    ("kwargs", "missing", "problem"),
    [
        ({"gps": {1: "N", 2: (_r(48), _r(1, 0), _r(0)), 3: "E", 4: (_r(2), _r(0), _r(0))}}, "lat", "GPS position"),
        ({"gps": {1: "N", 2: (_r(95), _r(0), _r(0)), 3: "E", 4: (_r(2), _r(0), _r(0))}}, "lat", "globe"),
        ({"gps": {1: "N", 2: (_r(0),), 3: "E", 4: (_r(0),)}}, "lat", "no fix"),
        ({"gps": {**PARIS, 6: _r(5, 0)}}, "altitude_m", "GPS altitude"),
        ({"when": "0000:00:00 00:00:00"}, "timestamp", "date"),
        ({"when": "2024:13:45 99:00:00"}, "timestamp", "date"),
        ({"when": "    :  :     :  :  "}, "timestamp", "date"),
        ({"offset": "+99:00"}, "timestamp", "offset"),
    ],
)
def test_broken_values_are_dropped_with_a_debug_line(
    kwargs: dict[str, object], missing: str, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="search_gateway.media.exif"):
        md = read_exif(make_photo(**kwargs))  # type: ignore[arg-type]
    assert md is not None
    assert getattr(md, missing) is None
    assert md.camera == "Canon EOS 5D"  # the rest of the metadata survives
    assert any(problem in p for p in md.problems), md.problems
    assert any("ignored" in r.message for r in caplog.records)


def test_huge_garbage_maker_note_does_not_matter() -> None:
    md = read_exif(make_photo(maker_note=os.urandom(60_000)))
    assert md is not None and md.timestamp is not None and md.camera == "Canon EOS 5D"


def test_garbage_camera_name_and_no_exif() -> None:
    md = read_exif(make_photo(make="\x01\x02garbage", model="x" * 500, when=None, offset=None))
    assert md is None  # nothing usable left
    plain = io.BytesIO()
    Image.new("RGB", (8, 8)).save(plain, format="JPEG")
    assert read_exif(plain.getvalue()) is None
    assert read_exif(b"not an image at all") is None
    truncated = read_exif(make_photo()[:200])  # cut inside the EXIF block: never raises
    assert truncated is None or isinstance(truncated, FileMetadata)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_in_png_and_webp(fmt: str) -> None:
    md = read_exif(make_photo(fmt=fmt, gps=PARIS))
    assert md is not None
    assert md.timestamp == datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc)
    assert md.lat == pytest.approx(48.858, abs=1e-3)


def test_corrupt_exif_block_never_raises() -> None:
    good = make_photo(gps=PARIS)
    i = good.find(b"Exif\x00\x00")
    assert i > 0
    for pos in range(i + 6, min(len(good), i + 400), 7):
        broken = good[:pos] + b"\xff\xff\xff\xff" + good[pos + 4 :]
        md = read_exif(broken)
        assert md is None or isinstance(md, FileMetadata)


def test_parse_exif_datetime_offsets() -> None:
    assert parse_exif_datetime("2024:01:01 00:30:00", "-05:30") == (
        datetime(2024, 1, 1, 6, 0, tzinfo=timezone.utc),
        False,
    )
    with pytest.raises(ValueError):
        parse_exif_datetime("0000:00:00 00:00:00")


def test_precedence_user_over_file_over_mtime(tmp_path: Path) -> None:
    md = read_exif(make_photo(gps=PARIS))
    merged = merge_metadata({"camera": "my-cam", "tags": ["x"]}, md, mtime=0.0)
    assert merged["camera"] == "my-cam"
    assert merged["timestamp"] == "2024-05-01T12:30:00Z"
    assert merged["location"]["lat"] == pytest.approx(48.858, abs=1e-3)
    sources = {k: v for k, v in merged.items() if k.endswith("_source")}
    assert sources == {
        "camera_source": "user",
        "timestamp_source": "exif",
        "location_source": "exif",
        "altitude_m_source": "exif",
    }
    local = read_exif(make_photo(offset=None))
    assert merge_metadata({}, local)["timestamp_is_local"] is True
    assert "timestamp_is_local" not in merge_metadata({"timestamp": "2020-01-01T00:00:00Z"}, local)
    only_mtime = merge_metadata({}, None, mtime=86400.0)
    assert only_mtime == {"timestamp": "1970-01-02T00:00:00Z", "timestamp_source": "file_mtime"}
    assert merge_metadata({}, None, None) == {}
