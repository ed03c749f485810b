"""EmbedderRuntime: the served model, its decode pool and dynamic batchers.

Plain Python in, plain Python out: the gRPC servicer converts protobuf at the
edge and calls this. Images are decoded in a thread pool (never on the event
loop), concurrently with inference; bad images are dropped before batching, so
they never spoil another request's batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from embedder_service.model import ClipEmbedder
from imgsearch.errors import InvalidInput, NotReady, TooLarge
from imgsearch.serving.batching import DynamicBatcher
from imgsearch.serving.decoding import decode_all
from imgsearch.serving.metrics import ServiceMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_batch_size: int = 32
    max_wait_s: float = 0.005
    max_queue: int = 4096
    max_items_per_request: int = 512
    max_request_bytes: int = 64 * 1024 * 1024


@dataclass
class ImageResult:
    vectors: list[np.ndarray | None]
    errors: list[tuple[int, str]]


class EmbedderRuntime:
    """Serves one ClipEmbedder with dynamic batching."""

    def __init__(
        self,
        model: ClipEmbedder,
        limits: Limits,
        metrics: ServiceMetrics | None = None,
        decode_workers: int = 0,
    ) -> None:
        self.model = model
        self.limits = limits
        self.metrics = metrics or ServiceMetrics.create("embedder")
        workers = decode_workers or (os.cpu_count() or 2)
        self._decode_pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
        self.ready = False
        self._images = DynamicBatcher[torch.Tensor, np.ndarray](
            lambda items, _key: list(model.encode_image_batch(items)),
            max_batch_size=limits.max_batch_size,
            max_wait_s=limits.max_wait_s,
            max_queue=limits.max_queue,
            name="image",
            on_batch=self.metrics.batch_observer("image"),
            on_queue_depth=self.metrics.depth_observer("image"),
        )
        self._texts = DynamicBatcher[torch.Tensor, np.ndarray](
            lambda items, _key: list(model.encode_text_batch(items)),
            max_batch_size=limits.max_batch_size,
            max_wait_s=limits.max_wait_s,
            max_queue=limits.max_queue,
            name="text",
            on_batch=self.metrics.batch_observer("text"),
            on_queue_depth=self.metrics.depth_observer("text"),
        )

    async def start(self) -> None:
        """Loads and warms the model off the event loop, then accepts work."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.model.load)
        await loop.run_in_executor(None, self.model.warmup)
        self._images.start()
        self._texts.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        await self._images.close()
        await self._texts.close()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def items_served(self) -> int:
        return self._images.stats.items + self._texts.stats.items

    @property
    def model_batches(self) -> int:
        return self._images.stats.batches + self._texts.stats.batches

    def _check(self, n: int, what: str) -> None:
        if not self.ready:
            raise NotReady("model is loading; retry shortly")
        if n == 0:
            raise InvalidInput(f"empty batch: no {what} given")
        if n > self.limits.max_items_per_request:
            raise TooLarge(
                f"{n} {what} in one request; the limit is {self.limits.max_items_per_request}"
            )

    async def embed_images(self, images: Sequence[bytes], partial: bool) -> ImageResult:
        """Vectors per image; with `partial`, bad images are reported instead of raised."""
        self._check(len(images), "images")
        decoded = await decode_all(self._decode_pool, self.model.preprocess_image, images)
        if not partial:
            decoded.raise_first_error()
        good, errors = decoded.good, decoded.errors
        vectors: list[np.ndarray | None] = [None] * len(images)
        if good:
            results = await self._images.submit([t for _, t in good])
            for (i, _), v in zip(good, results, strict=True):
                vectors[i] = v
        return ImageResult(vectors=vectors, errors=errors)

    async def embed_texts(self, texts: Sequence[str]) -> tuple[list[np.ndarray], list[bool]]:
        """Vectors and truncation flags per text."""
        self._check(len(texts), "texts")
        loop = asyncio.get_running_loop()
        tokens, truncated = await loop.run_in_executor(
            self._decode_pool, self.model.tokenize, list(texts)
        )
        vectors = await self._texts.submit(tokens)
        return vectors, truncated
