"""JPEG bytes to CLIP vectors on a GPU: nvJPEG decode, on-device pre-processing.

On a GPU box the model does thousands of images per second and the CPU
becomes the limit: a 12 MP camera JPEG takes 25-150 ms to decode with PIL on
one core. `DeviceJpegPipeline` moves decoding to the GPU with torchvision's
batched nvJPEG (`torchvision.io.decode_jpeg(list, device="cuda")`), does
open_clip's pre-processing there (read from the model's own transform:
shorter side to the model size with antialiased bicubic, centre crop,
normalise, cast to the model dtype), and runs the model on whole batches.
Host-side bytes are staged in pinned memory so the uploads are asynchronous
DMA; vectors come back through a pinned buffer. Decoding goes in chunks of
at most `max_chunk_pixels` (from the headers), so a batch of 256 camera
photos never holds 256 full-size frames in float32 at once.

`triage` is the cheap part that runs before batching (in the embedder's
decode threads): it reads the header (size limit, format, colour mode) and
says whether the image goes to the device decoder, or to the CPU path
(PNG, WebP, CMYK JPEG, a JPEG without its end marker: a truncated upload
must fail the way PIL fails it), or is refused outright. Anything the
device decoder still refuses inside a batch (a corrupt stream, arithmetic
coding) is decoded by the CPU path (the model's own `preprocess_image`) for
that image only; an image neither can decode comes back as that image's
error, never as the batch's. EXIF orientation is applied on both paths.

On a CPU device the same code runs with libjpeg (`decode_jpeg(device="cpu")`),
which is how the tests and `bench/gpu.sh --dry-run` keep it from rotting on
machines without a GPU.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedder_service.model import ClipEmbedder
from imgsearch.images import ImageDecodeError, read_header

log = logging.getLogger(__name__)

# torchvision 0.29 marks its decoders deprecated in favour of TorchCodec; they
# work, and this is the one place that would change.
warnings.filterwarnings("ignore", message=".*decoding and encoding capabilities of TorchVision")

# Colour modes the device decoder turns into the same RGB as PIL does.
DEVICE_MODES = frozenset({"RGB", "L"})
JPEG_SOI = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"
# Steps of open_clip's transform that the device path does implicitly (RGB,
# 0-1 float): by class name (MaybeConvertMode, ...) or function name.
_NEUTRAL_STEPS = ("MaybeConvertMode", "MaybeToTensor", "ToTensor", "_convert_to_rgb")


@dataclass(frozen=True)
class EncodedJpeg:
    """A JPEG that passed the header checks, for the device decoder."""

    data: bytes
    width: int
    height: int
    # Whether the CPU path would decode it in draft (plain JPEG: yes; the
    # primary image of an MPO, e.g. a phone photo with a gain map: no).
    draft: bool = True


# A batch item: an encoded JPEG, or pixels the CPU path already made (3, s, s).
BatchItem = EncodedJpeg | torch.Tensor
# A batch result: the image's vector, or why that image failed.
ItemResult = np.ndarray | ImageDecodeError


def triage(data: bytes, max_pixels: int) -> EncodedJpeg | None:
    """The header checks made before batching: ImageDecodeError for what the
    header already refuses (not an image, over `max_pixels`), an EncodedJpeg
    for the device decoder, None for the CPU path."""
    header = read_header(data, max_pixels)
    if header.format not in ("JPEG", "MPO") or header.mode not in DEVICE_MODES:
        return None
    if not data.startswith(JPEG_SOI) or not data.rstrip(b"\x00").endswith(JPEG_EOI):
        # Truncated (PIL's verdict and message), or data after the end marker
        # (a motion photo's video): the CPU path decides.
        return None
    return EncodedJpeg(data, header.width, header.height, draft=header.format == "JPEG")


@dataclass(frozen=True)
class ClipTransform:
    """open_clip's image transform as numbers the device code can apply."""

    resize: int  # shorter side after the resize
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, preprocess: Any) -> ClipTransform:
        """Reads Resize(int, bicubic) / CenterCrop / Normalize off a torchvision
        Compose; ValueError for anything else (the CPU path then stays)."""
        from torchvision import transforms as T

        resize = crop = None
        mean: tuple[float, ...] = ()
        std: tuple[float, ...] = ()
        for t in getattr(preprocess, "transforms", ()):
            if isinstance(t, T.Resize):
                size = t.size if isinstance(t.size, int) else list(t.size)
                if isinstance(size, list) and len(size) == 1:
                    size = size[0]
                if (
                    not isinstance(size, int)
                    or t.interpolation != T.InterpolationMode.BICUBIC
                    or t.max_size is not None
                    or t.antialias is False
                ):
                    raise ValueError(f"unsupported resize {t!r}")
                resize = size
            elif isinstance(t, T.CenterCrop):
                h, w = t.size
                if h != w:
                    raise ValueError(f"unsupported crop {t!r}")
                crop = int(h)
            elif isinstance(t, T.Normalize):
                mean, std = tuple(t.mean), tuple(t.std)
            elif type(t).__name__ not in _NEUTRAL_STEPS and getattr(t, "__name__", "") not in (
                _NEUTRAL_STEPS
            ):
                # Anything else changes pixels in a way this code does not copy.
                raise ValueError(f"unsupported transform step {t!r}")
        if resize is None or crop is None or len(mean) != 3 or len(std) != 3:
            raise ValueError(f"not a resize/crop/normalise transform: {preprocess!r}")
        return cls(resize, crop, (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]))


@dataclass
class DeviceBatch:
    """Vectors for a batch of encoded images; failures by index."""

    vectors: np.ndarray  # (n_good, dim) float32, rows in `good` order
    good: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    gpu_decoded: int = 0
    cpu_fallback: int = 0


@dataclass
class ItemsRun:
    """One served batch: a result per item, and where its JPEGs were decoded."""

    results: list[ItemResult]
    device_decoded: int = 0
    cpu_fallback: int = 0  # JPEGs the device decoder refused, decoded by PIL


class DeviceJpegPipeline:
    """Decode + pre-process + encode on the model's device (see module doc)."""

    def __init__(
        self,
        model: ClipEmbedder,
        pin_memory: bool | None = None,
        max_chunk_pixels: int = 128_000_000,
    ) -> None:
        from torchvision.io import ImageReadMode, decode_jpeg

        model.load()
        self.model = model
        self.device = model._device
        self.dtype = model._dtype
        self.transform = ClipTransform.of(model._preprocess)
        self.size = self.transform.crop
        self.max_chunk_pixels = max_chunk_pixels
        # The CPU path's JPEG draft decode (ClipEmbedder.draft_decode), mirrored.
        self.draft_side = model.info.image_size if model.draft_decode else 0
        self._decode_jpeg = decode_jpeg
        self._rgb = ImageReadMode.RGB
        on_gpu = self.device.type == "cuda"
        self.pin = on_gpu if pin_memory is None else pin_memory
        self._mean = torch.tensor(self.transform.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.transform.std, device=self.device).view(1, 3, 1, 1)

    # -- decode -----------------------------------------------------------
    def _host(self, data: bytes) -> torch.Tensor:
        """The encoded bytes as a host tensor (pinned on CUDA, so nvJPEG's
        uploads are DMA). torchvision's CUDA decode synchronises its stream
        before it returns, so these buffers may be freed (and reused by the
        caching host allocator) right after the call."""
        with warnings.catch_warnings():  # read-only bytes: only ever read from
            warnings.simplefilter("ignore", UserWarning)
            src = torch.frombuffer(data, dtype=torch.uint8)
        if not self.pin:
            return src
        return torch.empty(len(data), dtype=torch.uint8, pin_memory=True).copy_(src)

    def _decode_on_device(self, datas: Sequence[bytes]) -> list[torch.Tensor | None]:
        """uint8 CHW tensors on the device; None where the device decoder refused."""
        host = [self._host(d) for d in datas]
        try:
            return list(
                self._decode_jpeg(
                    host, mode=self._rgb, device=self.device, apply_exif_orientation=True
                )
            )
        except RuntimeError:
            # One bad stream fails the whole batched call: retry one by one
            # so only the bad ones go to the CPU path.
            out: list[torch.Tensor | None] = []
            for h in host:
                try:
                    out.append(
                        self._decode_jpeg(
                            h, mode=self._rgb, device=self.device, apply_exif_orientation=True
                        )
                    )
                except RuntimeError:
                    out.append(None)
            return out

    def _chunks(self, jpegs: list[tuple[int, EncodedJpeg]]) -> list[list[tuple[int, EncodedJpeg]]]:
        """Consecutive runs of at most max_chunk_pixels (at least one image each)."""
        chunks: list[list[tuple[int, EncodedJpeg]]] = []
        current: list[tuple[int, EncodedJpeg]] = []
        pixels = 0
        for item in jpegs:
            n = item[1].width * item[1].height
            if current and pixels + n > self.max_chunk_pixels:
                chunks.append(current)
                current, pixels = [], 0
            current.append(item)
            pixels += n
        if current:
            chunks.append(current)
        return chunks

    # -- pre-process --------------------------------------------------------
    def preprocess(
        self, images: list[torch.Tensor], drafts: Sequence[bool] | None = None
    ) -> torch.Tensor:
        """The model's transform on the device, as the CPU path applies it to a
        PIL image: for big JPEGs the draft decode's 1/k scale (as a k x k block
        mean), shorter side to `resize` (long side truncated), antialiased
        bicubic (the PIL kernel), rounded to 8 bits like PIL's output, centre
        crop (rounded like CenterCrop), normalise, cast. Same-sized images (a
        camera's photos) are resized as one batch. `drafts[i]`: whether the
        CPU path would have decoded image i in draft (default: all)."""
        t = self.transform
        s = t.crop
        out = torch.empty(len(images), 3, s, s, device=self.device, dtype=self.dtype)
        groups: dict[tuple[int, int, bool], list[int]] = {}
        for i, img in enumerate(images):
            draft = True if drafts is None else drafts[i]
            groups.setdefault((int(img.shape[1]), int(img.shape[2]), draft), []).append(i)
        for (h, w, draft), idx in groups.items():
            x = torch.stack([images[i] for i in idx]).float()
            k = _draft_scale(h, w, self.draft_side) if self.draft_side and draft else 1
            if k > 1:
                # The CPU path decodes big JPEGs at 1/k scale (PIL's draft:
                # libjpeg's scaled IDCT, close to a k x k block mean); the same
                # mean here keeps the two paths' vectors together (measured:
                # without it, cosine to the CPU path fell to 0.998).
                x = F.avg_pool2d(x, k, ceil_mode=True)
                h, w = int(x.shape[2]), int(x.shape[3])
            nh, nw = _resized(h, w, t.resize)
            if (nh, nw) != (h, w):
                x = F.interpolate(
                    x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False
                )
                x = x.clamp_(0, 255).round_()
            top, left = round((nh - s) / 2.0), round((nw - s) / 2.0)
            x = x[:, :, top : top + s, left : left + s] / 255.0
            out[idx] = ((x - self._mean) / self._std).to(self.dtype)
        return out

    def pixels(self, items: Sequence[BatchItem]) -> tuple[torch.Tensor, dict[int, str], int, int]:
        """Model input rows for every item (garbage rows where it failed),
        errors by index, device-decoded and CPU-fallback counts."""
        out = torch.empty(len(items), 3, self.size, self.size, device=self.device, dtype=self.dtype)
        errors: dict[int, str] = {}
        on_device = fallback = 0
        jpegs: list[tuple[int, EncodedJpeg]] = []
        for i, item in enumerate(items):
            if isinstance(item, EncodedJpeg):
                jpegs.append((i, item))
            else:
                out[i] = item.to(self.device, dtype=self.dtype, non_blocking=True)
        for chunk in self._chunks(jpegs):
            decoded = self._decode_on_device([j.data for _, j in chunk])
            ok = [(i, j, t) for (i, j), t in zip(chunk, decoded, strict=True) if t is not None]
            if ok:
                rows = [i for i, _, _ in ok]
                out[rows] = self.preprocess([t for _, _, t in ok], [j.draft for _, j, _ in ok])
                on_device += len(ok)
            refused = [(i, j) for (i, j), t in zip(chunk, decoded, strict=True) if t is None]
            del decoded, ok
            for i, jpeg in refused:
                try:
                    # The CPU path for this image only: the model's own transform.
                    row = self.model.preprocess_image(jpeg.data)
                except ImageDecodeError as exc:
                    errors[i] = str(exc)
                    continue
                except Exception as exc:  # a decoder fault fails this image, not the batch
                    log.exception("CPU fallback decode failed")
                    errors[i] = f"cannot decode: {type(exc).__name__}"
                    continue
                out[i] = row.to(self.device, dtype=self.dtype, non_blocking=True)
                fallback += 1
        return out, errors, on_device, fallback

    # -- all of it ----------------------------------------------------------
    @torch.inference_mode()
    def run(self, items: Sequence[BatchItem]) -> ItemsRun:
        """A vector (L2-normalised float32) or an ImageDecodeError per item."""
        pixels, errors, on_device, fallback = self.pixels(items)
        good = [i for i in range(len(items)) if i not in errors]
        results: list[ItemResult] = [
            ImageDecodeError(errors[i]) if i in errors else _EMPTY for i in range(len(items))
        ]
        if good:
            vectors = self._encode(pixels[good] if errors else pixels)
            for i, v in zip(good, vectors, strict=True):
                results[i] = v
        return ItemsRun(results, on_device, fallback)

    def _encode(self, pixels: torch.Tensor) -> np.ndarray:
        features = self.model._backend.encode_image(pixels).float()
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        if self.pin:
            host = torch.empty(features.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(features, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            return host.numpy()
        return features.cpu().numpy()

    def embed(self, images: Sequence[bytes]) -> DeviceBatch:
        """Encoded images to vectors the way the service does it (header
        triage, CPU path for what the device decoder does not take), in one
        call: the ingest bench's entry point."""
        items: list[BatchItem] = []
        index: list[int] = []
        errors: dict[int, str] = {}
        for i, data in enumerate(images):
            try:
                jpeg = triage(data, self.model.max_image_pixels)
                items.append(jpeg if jpeg is not None else self.model.preprocess_image(data))
                index.append(i)
            except ImageDecodeError as exc:
                errors[i] = str(exc)
        ran = self.run(items) if items else ItemsRun([])
        good: list[int] = []
        rows: list[np.ndarray] = []
        for i, r in zip(index, ran.results, strict=True):
            if isinstance(r, ImageDecodeError):
                errors[i] = str(r)
            else:
                good.append(i)
                rows.append(r)
        dim = self.model.info.dimension
        vectors = np.stack(rows) if rows else np.zeros((0, dim), np.float32)
        return DeviceBatch(
            vectors, good, errors, ran.device_decoded, len(good) - ran.device_decoded
        )


_EMPTY = np.zeros(0, np.float32)


def _draft_scale(h: int, w: int, side: int) -> int:
    """The DCT scale PIL's JPEG draft((side, side)) picks: the largest of
    8, 4, 2, 1 that keeps both sides >= side."""
    scale = min(w // side, h // side)
    for k in (8, 4, 2):
        if scale >= k:
            return k
    return 1


def _resized(h: int, w: int, size: int) -> tuple[int, int]:
    """torchvision's Resize(int) output size: shorter side `size`, the longer
    one scaled and truncated (not rounded)."""
    if w <= h:
        return int(size * h / w), size
    return size, int(size * w / h)
