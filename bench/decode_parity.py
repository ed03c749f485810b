"""How close the device-decode path's vectors are to the CPU path's.

The embedder's `image_decode=device` decodes JPEGs with nvJPEG (libjpeg on a
CPU device) at full size and resizes with torch's antialiased bicubic; the
CPU path decodes with PIL, at a reduced DCT scale for big JPEGs (draft), and
resizes with PIL's bicubic. Same transform, two resamplers and two decoders:
this prints, per JPEG, the pixel difference of the model inputs (in 8-bit
levels) and the cosine of the two vectors, for each model given.

    python bench/decode_parity.py [JPEG files or folders ...] [--models ViT-B-32,offline-tiny]

Without files it uses the two photos scikit-learn ships (china.jpg,
flower.jpg) where it finds them (else a camera-like 640x480 JPEG made here),
plus camera-like JPEGs at 1920x1080 and 4032x3024; every
photo is also tried re-encoded, scaled to camera sizes (where the CPU path
decodes in draft), in grey, progressive and EXIF-rotated. Runs on the CPU in
a minute or two; on a CUDA machine `--device cuda` compares nvJPEG itself.
"""

from __future__ import annotations

import argparse
import glob
import io
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from embedder_service.model import ClipEmbedder
from embedder_service.runtime_gpu import DeviceJpegPipeline, triage

PHOTO_GLOBS = (
    "/root/.cache/**/sklearn/datasets/images/*.jpg",
    f"{sys.prefix}/lib/python3*/site-packages/sklearn/datasets/images/*.jpg",
)


def _jpeg(img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def variants(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """The file itself and the shapes a photo library has."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    out = [(name, data), (f"{name} q75", _jpeg(img, quality=75))]
    for tw in (1920, 4032):
        big = img.resize((tw, round(tw * h / w)), Image.LANCZOS)
        out.append((f"{name} {big.width}x{big.height}", _jpeg(big, quality=92)))
    out.append((f"{name} grey", _jpeg(img.convert("L"), quality=90)))
    out.append((f"{name} progressive", _jpeg(img, quality=90, progressive=True)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: the viewer (and both paths) rotate it
    out.append((f"{name} exif-rot", _jpeg(img.transpose(Image.Transpose.ROTATE_90), exif=exif)))
    out.append((f"{name} crop 300x500", _jpeg(img.crop((0, 0, min(w, 300), min(h, 500))))))
    return out


def inputs(paths: list[str]) -> list[tuple[str, bytes]]:
    files: list[Path] = []
    for p in paths:
        q = Path(p)
        files.extend(sorted(q.glob("*.jp*g")) if q.is_dir() else [q])
    if not paths:
        for pattern in PHOTO_GLOBS:
            files.extend(Path(f) for f in glob.glob(pattern, recursive=True))
        files = sorted({f.name: f for f in files}.values())
    out: list[tuple[str, bytes]] = []
    for f in files:
        out.extend(variants(f.name, f.read_bytes()))
    from bench.gpu_bench import camera_jpeg

    cams = [(f"camera-like {w}x{h}", camera_jpeg(7, w, h)) for w, h in ((1920, 1080), (4032, 3024))]
    if not files:  # no photos on this machine: the variants of a camera-like one
        out.extend(variants("camera-like", camera_jpeg(8, 640, 480)))
    return out + cams


def compare(model: ClipEmbedder, images: list[tuple[str, bytes]]) -> None:
    pipe = DeviceJpegPipeline(model)
    info = model.info
    print(f"\n== {info.model} ({info.pretrained or 'random weights'}), {info.runtime} "
          f"({info.precision}) on {info.device}, input {pipe.size}")  # fmt: skip
    print(f"{'image':<34}{'dev?':>5}{'max lvl':>9}{'mean lvl':>9}{'cos draft':>11}{'cos full':>10}")
    coses: list[float] = []
    refs: list[np.ndarray] = []
    for name, data in images:
        jpeg = triage(data, model.max_image_pixels)
        assert jpeg is not None, name
        with torch.inference_mode():
            dev_px, errors, on_device, _ = pipe.pixels([jpeg])
        assert not errors, errors
        cpu_px = model.preprocess_image(data)
        std = torch.tensor(pipe.transform.std).view(3, 1, 1)
        levels = ((dev_px[0].float().cpu() - cpu_px) * std * 255).abs()
        dev = pipe.run([jpeg]).results[0]
        ref = model.embed_images([data]).vectors[0]
        model.draft_decode = False  # the same weights, PIL at full size
        ref_full = model.embed_images([data]).vectors[0]
        model.draft_decode = True
        assert isinstance(dev, np.ndarray) and ref is not None and ref_full is not None
        cos, cos_full = float(dev @ ref), float(dev @ ref_full)
        coses.append(cos)
        refs.append(ref)
        print(f"{name[:33]:<34}{'yes' if on_device else 'no':>5}{levels.max():>9.1f}"
              f"{levels.mean():>9.2f}{cos:>11.5f}{cos_full:>10.5f}")  # fmt: skip
    between = np.stack(refs) @ np.stack(refs).T
    spread = float(np.median(between[np.triu_indices(len(refs), 1)]))
    print(f"min cosine vs the CPU path (draft decode, the served default): {min(coses):.5f}; "
          f"median {float(np.median(coses)):.5f}; yardstick: median cosine between two "
          f"different images on the CPU path {spread:.5f} (near 1 = the model cannot tell "
          "photos apart, e.g. random weights, and the cosine says little)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="JPEG files or folders")
    ap.add_argument("--models", default="ViT-B-32,offline-tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--runtime", default="eager", help="the same runtime on both paths")
    args = ap.parse_args()
    images = inputs(args.files)
    print(f"torch {torch.__version__}; {len(images)} JPEGs; levels = |difference| of the "
          "model inputs in 8-bit steps; cos draft = vs the served CPU path, cos full = vs PIL "
          "without draft")  # fmt: skip
    for name in args.models.split(","):
        model = ClipEmbedder(name, "", device=args.device, runtime=args.runtime)
        model.load()
        compare(model, images)


if __name__ == "__main__":
    main()
