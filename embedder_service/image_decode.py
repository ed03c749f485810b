"""Where the embedder decodes images: on CPU threads, or in the batch on the device.

`image_decode` (env IMGSEARCH_EMBEDDER_IMAGE_DECODE):

* `cpu`: every image is decoded with PIL and pre-processed in the decode
  threads, one at a time; the batcher gets model-ready tensors. The right
  thing on a CPU host, where decoding and the model share the cores anyway.
* `device`: the decode threads only read headers (`runtime_gpu.triage`:
  size limit, format, colour mode, end marker), and the image batcher gets
  the encoded JPEG bytes; each dynamic batch is decoded, pre-processed and
  encoded on the model's device in one go (`DeviceJpegPipeline`: batched
  nvJPEG on CUDA). On a GPU pod this takes the decode, 25-150 ms of a core
  per camera photo, off the CPUs that otherwise cap ingest far below what
  the GPU can do. Images the device decoder does not take (PNG, WebP, CMYK
  or truncated JPEGs) still go through the CPU path in the decode threads
  and join the same batch as tensors.
* `auto` (default): `device` when the model runs on CUDA, `cpu` otherwise.
  If the device path cannot start (no nvJPEG in this torchvision build, a
  transform it does not know), `auto` logs why and stays on `cpu`, while an
  explicit `device` fails the start (the server stays NOT_SERVING).

Every rule of the CPU path holds on both: a header that is refused fails
that image before batching; an image that fails inside a batch comes back
as that image's error (partial_results) or the request's INVALID_ARGUMENT
naming it, never as the batch's. How many images each path decoded is a
Prometheus counter and part of Info.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from concurrent.futures import Executor

from prometheus_client import Counter

from embedder_service.model import ClipEmbedder
from embedder_service.runtime_gpu import (
    BatchItem,
    DeviceJpegPipeline,
    EncodedJpeg,
    ItemResult,
    triage,
)
from imgsearch.images import ImageDecodeError
from imgsearch.serving.decoding import Decoded, decode_all
from imgsearch.serving.metrics import ServiceMetrics

log = logging.getLogger(__name__)


class DecodeCounts:
    """Images decoded by each path: `device` (the device decoder, in the
    batch), `device_fallback` (JPEGs it refused, decoded by PIL in the batch),
    `cpu` (PIL in the decode threads). A Prometheus counter and plain totals."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._counter = Counter(
            "imgsearch_embedder_image_decodes",
            "Images decoded, by where: device (in the model batch), device_fallback "
            "(refused by the device decoder, decoded by PIL in the batch), cpu (PIL in "
            "the decode threads).",
            ["path"],
            registry=metrics.registry,
        )
        self.totals = {"device": 0, "device_fallback": 0, "cpu": 0}

    def add(self, path: str, n: int) -> None:
        if n:
            self.totals[path] += n
            self._counter.labels(path).inc(n)

    @property
    def on_device(self) -> int:
        return self.totals["device"]

    @property
    def on_cpu(self) -> int:
        return self.totals["cpu"] + self.totals["device_fallback"]


def wants_device(setting: str, model: ClipEmbedder) -> bool:
    """Whether `setting` asks for the device path with this (loaded) model."""
    if setting not in ("auto", "cpu", "device"):
        raise ValueError(f"image_decode must be auto, cpu or device, not {setting!r}")
    if setting == "auto":
        return model.info.device.startswith("cuda")
    return setting == "device"


class DeviceDecoding:
    """The device side of the embedder's image batcher (see the module doc)."""

    def __init__(self, model: ClipEmbedder, counts: DecodeCounts) -> None:
        self.model = model
        self.counts = counts
        self.pipeline = DeviceJpegPipeline(model)

    def warm(self) -> None:
        """One JPEG through the whole path (initialises nvJPEG before SERVING);
        RuntimeError when the device decoder did not take it."""
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 120, 40)).save(buf, "JPEG")
        jpeg = triage(buf.getvalue(), self.model.max_image_pixels)
        assert jpeg is not None
        ran = self.pipeline.run([jpeg])
        if ran.device_decoded != 1 or isinstance(ran.results[0], ImageDecodeError):
            raise RuntimeError(f"the device JPEG decoder failed on {self.pipeline.device}")

    async def prepare(self, pool: Executor, images: Sequence[bytes]) -> Decoded[BatchItem]:
        """Batch items by request index: encoded JPEGs for the device, tensors
        from the CPU path for the rest; header refusals as errors."""
        loop = asyncio.get_running_loop()
        triaged = await loop.run_in_executor(pool, _triage_all, images, self.model.max_image_pixels)
        out: Decoded[BatchItem] = Decoded()
        to_cpu: list[int] = []
        for i, t in enumerate(triaged):
            if isinstance(t, EncodedJpeg):
                out.good.append((i, t))
            elif isinstance(t, ImageDecodeError):
                out.errors[i] = str(t)
            else:
                to_cpu.append(i)
        if to_cpu:
            cpu = await decode_all(pool, self.model.preprocess_image, [images[i] for i in to_cpu])
            out.good.extend((to_cpu[j], t) for j, t in cpu.good)
            out.errors.update((to_cpu[j], r) for j, r in cpu.errors.items())
            out.good.sort(key=lambda it: it[0])
            self.counts.add("cpu", len(cpu.good))
        return out

    def run(self, items: list[BatchItem]) -> list[ItemResult]:
        """The batcher's model call (inference thread): a result per item."""
        ran = self.pipeline.run(items)
        self.counts.add("device", ran.device_decoded)
        self.counts.add("device_fallback", ran.cpu_fallback)
        return ran.results


def _triage_all(
    images: Sequence[bytes], max_pixels: int
) -> list[EncodedJpeg | ImageDecodeError | None]:
    """`triage` over a request's images in one decode-thread call (header reads
    are tens of microseconds: one hop to the pool per request, not per image)."""
    out: list[EncodedJpeg | ImageDecodeError | None] = []
    for data in images:
        try:
            out.append(triage(data, max_pixels))
        except ImageDecodeError as exc:
            out.append(exc)
    return out
