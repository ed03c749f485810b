"""EmbedderRuntime: the served CLIP model behind an image and a text batcher.

Plain Python in, plain Python out: the gRPC servicer converts protobuf at the
edge and calls this. Decode pool, readiness and request checks come from
BatchedModelRuntime; bad images are dropped before batching, so they never
spoil another request's batch. Where images are decoded (CPU threads, or the
model's device inside each batch) is `image_decode` (embedder_service/image_decode.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from embedder_service.image_decode import DecodeCounts, DeviceDecoding, wants_device
from embedder_service.model import ClipEmbedder
from embedder_service.runtime_gpu import BatchItem, ItemResult
from imgsearch.images import ImageDecodeError
from imgsearch.results import ImageVectors
from imgsearch.serving.batching import DynamicBatcher
from imgsearch.serving.decoding import Decoded, decode_all
from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.serving.model_runtime import BatchedModelRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_batch_size: int = 32
    max_wait_s: float = 0.005
    max_fill_wait_s: float = 0.05
    max_queue: int = 4096
    max_items_per_request: int = 512
    max_request_bytes: int = 64 * 1024 * 1024


class EmbedderRuntime(BatchedModelRuntime):
    """Serves one ClipEmbedder with dynamic batching (one batcher per tower)."""

    model: ClipEmbedder
    limits: Limits

    def __init__(
        self,
        model: ClipEmbedder,
        limits: Limits,
        metrics: ServiceMetrics | None = None,
        decode_workers: int = 0,
        image_decode: str = "cpu",
    ) -> None:
        super().__init__(
            model, limits, metrics or ServiceMetrics.create("embedder"), decode_workers
        )
        self.image_decode_setting = image_decode
        self.decodes = DecodeCounts(self.metrics)
        # Set at start when image_decode resolves to the device path.
        self._device: DeviceDecoding | None = None
        self._images: DynamicBatcher[BatchItem, ItemResult] = self._batcher(
            self._run_image_batch, "image", "image"
        )
        self._texts: DynamicBatcher[torch.Tensor, np.ndarray] = self._batcher(
            lambda items, _key: list(model.encode_text_batch(items)), "text", "text"
        )

    @property
    def image_batcher(self) -> DynamicBatcher[BatchItem, ItemResult]:
        """The image tower's batcher (benches read its stats and knobs)."""
        return self._images

    @property
    def image_decode(self) -> str:
        """Where images are decoded now: "device" or "cpu" (resolved at start)."""
        return "device" if self._device is not None else "cpu"

    async def start(self) -> None:
        """Resolves image_decode (needs the loaded model's device), then loads,
        warms and opens like every model runtime."""
        await asyncio.get_running_loop().run_in_executor(None, self._choose_image_decode)
        await super().start()

    def _choose_image_decode(self) -> None:
        self.model.load()
        if not wants_device(self.image_decode_setting, self.model):
            return
        try:
            device = DeviceDecoding(self.model, self.decodes)
            device.warm()
        except Exception:
            if self.image_decode_setting == "device":
                raise
            log.warning("image_decode=auto: device decoding unavailable, decoding on CPU",
                        exc_info=True)  # fmt: skip
            return
        self._device = device
        log.info("images decoded on %s inside each model batch", self.model.info.device)

    def _run_image_batch(self, items: list[BatchItem], _key: object) -> list[ItemResult]:
        if self._device is not None:
            return self._device.run(items)
        return list(self.model.encode_image_batch(items))  # type: ignore[arg-type]

    async def embed_images(self, images: Sequence[bytes], partial: bool) -> ImageVectors:
        """Vectors per image; with `partial`, bad images are reported instead of raised."""
        self._check_request(len(images), "images")
        # Announced before decoding, so a batch forming now waits for these
        # images instead of leaving with the few already decoded.
        incoming = self._images.expect(len(images))
        try:
            decoded: Decoded[BatchItem]
            if self._device is not None:
                decoded = await self._device.prepare(self._decode_pool, images)
            else:
                decoded = await decode_all(self._decode_pool, self.model.preprocess_image, images)  # type: ignore[assignment]
                self.decodes.add("cpu", len(decoded.good))
            if not partial:
                decoded.raise_first_error()
            out = ImageVectors([None] * len(images), decoded.errors)
            if decoded.good:
                results = await self._images.submit([t for _, t in decoded.good], incoming=incoming)
                # Only the device path fails images inside a batch; each one
                # is that image's error, as if its header had been refused.
                late: Decoded[None] = Decoded()
                for (i, _), r in zip(decoded.good, results, strict=True):
                    if isinstance(r, ImageDecodeError):
                        out.errors[i] = late.errors[i] = str(r)
                    else:
                        out.values[i] = r
                if not partial:
                    late.raise_first_error()
        finally:
            incoming.release()
        return out

    async def embed_texts(self, texts: Sequence[str]) -> tuple[list[np.ndarray], list[bool]]:
        """Vectors and truncation flags per text."""
        self._check_request(len(texts), "texts")
        loop = asyncio.get_running_loop()
        tokens, truncated = await loop.run_in_executor(
            self._decode_pool, self.model.tokenize, list(texts)
        )
        vectors = await self._texts.submit(tokens)
        return vectors, truncated
