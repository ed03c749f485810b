"""Safe decoding of untrusted image bytes (imgsearch.images)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imgsearch.images import ImageDecodeError, decode_rgb, read_header
from tests.conftest import decompression_bomb_png, encode_image, solid


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_common_formats_decode_to_rgb(fmt: str) -> None:
    img = decode_rgb(encode_image(solid("red"), fmt))
    assert img.mode == "RGB" and img.size == (64, 48)
    r, g, b = img.getpixel((10, 10))
    assert r > 200 and g < 60 and b < 60


def test_animated_gif_gives_first_frame() -> None:
    frames = [solid("red"), solid("blue"), solid("green")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    r, _, b = decode_rgb(buf.getvalue()).getpixel((5, 5))
    assert r > 200 and b < 60


def test_exif_orientation_is_honoured() -> None:
    img = Image.new("RGB", (64, 32), "white")
    img.paste((255, 0, 0), (0, 0, 16, 32))  # red strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode_image(img, "JPEG", exif=exif.tobytes(), quality=95)
    out = decode_rgb(data)
    assert out.size == (32, 64)
    r, g, _ = out.getpixel((16, 4))  # the red strip is now on top
    assert r > 200 and g < 80


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    arr = np.full((8, 8), 32768, dtype=np.uint16)
    data = encode_image(Image.fromarray(arr), "PNG")
    value = decode_rgb(data).getpixel((0, 0))[0]
    assert 120 <= value <= 135


@pytest.mark.parametrize("mode", ["CMYK", "P", "RGBA", "LA", "L", "1"])
def test_other_modes_become_rgb(mode: str) -> None:
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    img = solid("blue").convert(mode)
    assert decode_rgb(encode_image(img, fmt)).mode == "RGB"


def test_transparent_pixels_composite_on_white() -> None:
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert decode_rgb(encode_image(img, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_one_pixel_image() -> None:
    assert decode_rgb(encode_image(solid("red", (1, 1)), "PNG")).size == (1, 1)


def test_empty_text_and_truncated_inputs_are_clear_errors() -> None:
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_rgb(b"")
    with pytest.raises(ImageDecodeError, match="not a recognised image"):
        decode_rgb(b"hello, I am a text file named photo.jpg")
    data = encode_image(solid("red", (640, 480)), "JPEG")
    with pytest.raises(ImageDecodeError, match="cannot"):
        decode_rgb(data[: len(data) // 2])


def test_decompression_bomb_rejected_from_header() -> None:
    bomb = decompression_bomb_png()
    assert len(bomb) < 100_000
    header = read_header(bomb, max_pixels=10**12)
    assert (header.width, header.height) == (12_000, 12_000)
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_rgb(bomb, max_pixels=64_000_000)


def test_jpeg_draft_keeps_both_sides_above_min_side() -> None:
    data = encode_image(solid("green", (4000, 3000)), "JPEG")
    out = decode_rgb(data, min_side=224)
    assert min(out.size) >= 224 and out.size[0] < 4000
