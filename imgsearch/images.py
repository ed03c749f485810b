"""Safe decoding of untrusted image bytes.

Every service decodes images from cameras and users, so decoding is written
once here with the guards that matter:

* the pixel count is read from the header and checked *before* the full
  decode, so a 20 KB PNG claiming 100 000 x 100 000 pixels (a decompression
  bomb) costs nothing;
* truncated files are errors (PIL's LOAD_TRUNCATED_IMAGES stays off);
* EXIF orientation is applied, animated images give their first frame;
* 16-bit, palette, CMYK and alpha images are turned into 8-bit RGB correctly
  (alpha composited on white, 16-bit scaled rather than clipped);
* JPEGs can be decoded at reduced scale (`draft`) when the caller only needs a
  small image, which is 3-4x faster for camera-sized photos.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from imgsearch.errors import InvalidInput

# Never accept partial data silently: a truncated upload must fail loudly.
ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_PIXELS = 64_000_000  # 64 MP: larger than any consumer camera frame.


class ImageDecodeError(InvalidInput):
    """The bytes are not a usable image (INVALID_ARGUMENT)."""


@dataclass(frozen=True)
class ImageHeader:
    """What the header says, read without decoding pixels."""

    format: str
    width: int
    height: int
    mode: str = ""  # PIL's mode from the header ("RGB", "L", "CMYK", ...)


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """Identifies the image and checks its size; does not decode pixels."""
    with _open(data, max_pixels) as img:
        return ImageHeader(
            format=(img.format or "").upper(), width=img.width, height=img.height, mode=img.mode
        )


def decode_rgb(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None
) -> Image.Image:
    """Decodes untrusted bytes to an 8-bit RGB image.

    Args:
        data: the encoded file.
        max_pixels: largest width*height accepted, checked from the header.
        min_side: when set, JPEGs may be decoded at a reduced scale as long as
            both sides stay >= min_side (the model resizes to that anyway).
    """
    source = _open(data, max_pixels)
    try:
        if min_side and source.format == "JPEG":
            # draft() picks the largest DCT scale-down keeping both sides >= the
            # requested size, before any pixel is decoded.
            source.draft("RGB", (min_side, min_side))
        try:
            source.seek(0)  # first frame of animated GIF/WebP/APNG
            source.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageDecodeError(f"cannot decode: {_reason(exc)}") from exc
        try:
            # Returns a new image (rotated, or a plain copy), detached from the file.
            upright = ImageOps.exif_transpose(source)
        except Exception:  # a corrupt EXIF block should not lose the image
            upright = source.copy()
        return _to_rgb(upright)
    finally:
        source.close()


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        # Pillow's own limit fires before ours for the largest claims; the
        # message names the limit the operator configured, not Pillow's.
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{claimed.group(1)} pixels" if claimed else "the image"
        raise ImageDecodeError(f"too large: {size} > limit {max_pixels}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not a recognised image format") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"cannot read header: {_reason(exc)}") from exc
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise ImageDecodeError(f"invalid dimensions {width}x{height}")
    if width * height > max_pixels:
        img.close()
        raise ImageDecodeError(
            f"too large: {width}x{height} = {width * height} pixels > limit {max_pixels}"
        )
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
