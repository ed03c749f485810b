"""EmbedderRuntime: the served CLIP model behind an image and a text batcher.

Plain Python in, plain Python out: the gRPC servicer converts protobuf at the
edge and calls this. Decode pool, readiness and request checks come from
BatchedModelRuntime; bad images are dropped before batching, so they never
spoil another request's batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from embedder_service.model import ClipEmbedder
from imgsearch.results import ImageVectors
from imgsearch.serving.batching import DynamicBatcher
from imgsearch.serving.decoding import decode_all
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
    ) -> None:
        super().__init__(
            model, limits, metrics or ServiceMetrics.create("embedder"), decode_workers
        )
        self._images: DynamicBatcher[torch.Tensor, np.ndarray] = self._batcher(
            lambda items, _key: list(model.encode_image_batch(items)), "image", "image"
        )
        self._texts: DynamicBatcher[torch.Tensor, np.ndarray] = self._batcher(
            lambda items, _key: list(model.encode_text_batch(items)), "text", "text"
        )

    @property
    def image_batcher(self) -> DynamicBatcher[torch.Tensor, np.ndarray]:
        """The image tower's batcher (benches read its stats and knobs)."""
        return self._images

    async def embed_images(self, images: Sequence[bytes], partial: bool) -> ImageVectors:
        """Vectors per image; with `partial`, bad images are reported instead of raised."""
        self._check_request(len(images), "images")
        # Announced before decoding, so a batch forming now waits for these
        # images instead of leaving with the few already decoded.
        incoming = self._images.expect(len(images))
        try:
            decoded = await decode_all(self._decode_pool, self.model.preprocess_image, images)
            if not partial:
                decoded.raise_first_error()
            out = ImageVectors([None] * len(images), decoded.errors)
            if decoded.good:
                results = await self._images.submit([t for _, t in decoded.good], incoming=incoming)
                for (i, _), v in zip(decoded.good, results, strict=True):
                    out.values[i] = v
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
