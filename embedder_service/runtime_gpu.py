"""JPEG bytes to CLIP vectors on a GPU: nvJPEG decode, on-device pre-processing.

On a GPU box the model does thousands of images per second and the CPU
becomes the limit: a 12 MP camera JPEG takes 25-150 ms to decode with PIL on
one core. `DeviceJpegPipeline` moves decoding to the GPU with torchvision's
batched nvJPEG (`torchvision.io.decode_jpeg(list, device="cuda")`), does
open_clip's pre-processing there (shorter side to the model size with bicubic
antialiasing, centre crop, normalise, cast to the model dtype), and runs the
model on whole batches. Host-side bytes are staged in pinned memory so the
uploads are asynchronous DMA; vectors come back through a pinned buffer.

Anything nvJPEG refuses (not a JPEG, CMYK, a corrupt stream, arithmetic
coding) falls back to the CPU path (`decode_rgb` + the model's own
transform) for that image only; an image neither can decode is reported by
index, never lost silently. EXIF orientation is applied on both paths.

On a CPU device the same code runs with libjpeg (`decode_jpeg(device="cpu")`),
which is how the tests and `bench/gpu.sh --dry-run` keep it from rotting on
machines without a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from embedder_service.model import ClipEmbedder
from imgsearch.images import ImageDecodeError

log = logging.getLogger(__name__)

# open_clip's OPENAI_DATASET_MEAN / STD (the transform every ViT-B-32 uses).
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class DeviceBatch:
    """Vectors for a batch of encoded images; failures by index."""

    vectors: np.ndarray  # (n_good, dim) float32, rows in `good` order
    good: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    gpu_decoded: int = 0
    cpu_fallback: int = 0


class DeviceJpegPipeline:
    """Decode + pre-process + encode on the model's device (see module doc)."""

    def __init__(self, model: ClipEmbedder, pin_memory: bool | None = None) -> None:
        from torchvision.io import ImageReadMode, decode_jpeg

        model.load()
        self.model = model
        self.device = model._device
        self.dtype = model._dtype
        self.size = model.info.image_size
        self._decode_jpeg = decode_jpeg
        self._rgb = ImageReadMode.RGB
        on_gpu = self.device.type == "cuda"
        self.pin = on_gpu if pin_memory is None else pin_memory
        self._mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(STD, device=self.device).view(1, 3, 1, 1)

    # -- decode -----------------------------------------------------------
    def _host(self, data: bytes) -> torch.Tensor:
        t = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return t.pin_memory() if self.pin else t

    def decode(
        self, images: Sequence[bytes]
    ) -> tuple[list[torch.Tensor | None], dict[int, str], int]:
        """uint8 CHW tensors on the device (None where both paths failed),
        errors by index, and how many came from the device decoder."""
        out: list[torch.Tensor | None] = [None] * len(images)
        errors: dict[int, str] = {}
        jpeg_idx = [i for i, b in enumerate(images) if b[:3] == b"\xff\xd8\xff"]
        decoded_on_device = 0
        if jpeg_idx:
            host = [self._host(images[i]) for i in jpeg_idx]
            try:
                decoded = self._decode_jpeg(
                    host, mode=self._rgb, device=self.device, apply_exif_orientation=True
                )
                for i, t in zip(jpeg_idx, decoded, strict=True):
                    out[i] = t
                decoded_on_device = len(jpeg_idx)
            except RuntimeError:
                # One bad stream fails the whole batched call: retry one by one
                # so only the bad ones go to the CPU path.
                for i, h in zip(jpeg_idx, host, strict=True):
                    try:
                        out[i] = self._decode_jpeg(
                            h, mode=self._rgb, device=self.device, apply_exif_orientation=True
                        )
                        decoded_on_device += 1
                    except RuntimeError:
                        pass
        for i, data in enumerate(images):
            if out[i] is None:
                try:
                    out[i] = self._cpu_decode(data)
                except ImageDecodeError as exc:
                    errors[i] = str(exc)
        return out, errors, decoded_on_device

    def _cpu_decode(self, data: bytes) -> torch.Tensor:
        """The CPU fallback: PIL (every format the service accepts), uint8 CHW."""
        from imgsearch.images import decode_rgb

        image = decode_rgb(data, self.model.max_image_pixels, min_side=self.size)
        arr = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
        return arr.to(self.device, non_blocking=True)

    # -- pre-process --------------------------------------------------------
    def preprocess(self, images: list[torch.Tensor]) -> torch.Tensor:
        """open_clip's transform on the device: resize the shorter side to the
        model size (bicubic, antialiased), centre-crop, normalise, cast.
        Same-sized images (a camera's photos) are resized as one batch."""
        s = self.size
        out = torch.empty(len(images), 3, s, s, device=self.device, dtype=self.dtype)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            groups.setdefault((int(img.shape[1]), int(img.shape[2])), []).append(i)
        for (h, w), idx in groups.items():
            scale = s / min(h, w)
            nh, nw = max(s, round(h * scale)), max(s, round(w * scale))
            x = torch.stack([images[i] for i in idx]).float()
            x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
            top, left = (nh - s) // 2, (nw - s) // 2
            x = x[:, :, top : top + s, left : left + s].clamp_(0, 255) / 255.0
            out[idx] = ((x - self._mean) / self._std).to(self.dtype)
        return out

    # -- all of it ----------------------------------------------------------
    @torch.inference_mode()
    def embed(self, images: Sequence[bytes]) -> DeviceBatch:
        """Vectors (L2-normalised float32) for every decodable image."""
        decoded, errors, on_device = self.decode(images)
        good = [i for i, t in enumerate(decoded) if t is not None]
        if not good:
            return DeviceBatch(np.zeros((0, self.model.info.dimension), np.float32), [], errors)
        pixels = self.preprocess([decoded[i] for i in good])  # type: ignore[misc]
        features = self.model._backend.encode_image(pixels).float()
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        if self.pin:
            host = torch.empty(features.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(features, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            vectors = host.numpy()
        else:
            vectors = features.cpu().numpy()
        return DeviceBatch(
            vectors, good, errors, gpu_decoded=on_device, cpu_fallback=len(good) - on_device
        )
