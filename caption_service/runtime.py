"""CaptionRuntime: the served BLIP model, its decode pool and dynamic batcher.

Plain Python in, plain Python out: the gRPC servicer converts protobuf at the
edge and calls this. Images are decoded in a thread pool (never on the event
loop), concurrently with generation; bad images are dropped before batching,
so they never spoil another request's batch. The batch key is the request's
CaptionOptions: generate() takes one prompt, length and beam width per call.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from caption_service.model import (
    DEFAULT_MAX_NEW_TOKENS,
    MAX_BEAMS,
    MAX_NEW_TOKENS_LIMIT,
    BlipCaptioner,
    CaptionOptions,
)
from imgsearch.errors import InvalidInput, NotReady, TooLarge
from imgsearch.serving.batching import DynamicBatcher
from imgsearch.serving.decoding import decode_all
from imgsearch.serving.metrics import ServiceMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    max_batch_size: int = 8
    max_wait_s: float = 0.010
    max_queue: int = 1024
    max_items_per_request: int = 64
    max_request_bytes: int = 64 * 1024 * 1024
    default_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_new_tokens_limit: int = MAX_NEW_TOKENS_LIMIT
    max_beams: int = MAX_BEAMS


@dataclass
class CaptionResult:
    captions: list[str]  # "" for failed images
    errors: list[tuple[int, str]]  # (index, reason), sorted by index


class CaptionRuntime:
    """Serves one BlipCaptioner with dynamic batching keyed by options."""

    def __init__(
        self,
        model: BlipCaptioner,
        limits: Limits,
        metrics: ServiceMetrics | None = None,
        decode_workers: int = 0,
    ) -> None:
        self.model = model
        self.limits = limits
        self.metrics = metrics or ServiceMetrics.create("captioner")
        workers = decode_workers or (os.cpu_count() or 2)
        self._decode_pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
        self.ready = False
        self._images = DynamicBatcher[torch.Tensor, str](
            self._run_batch,
            max_batch_size=limits.max_batch_size,
            max_wait_s=limits.max_wait_s,
            max_queue=limits.max_queue,
            name="caption",
            on_batch=self.metrics.batch_observer("image"),
            on_queue_depth=self.metrics.depth_observer("image"),
        )

    def _run_batch(self, items: list[torch.Tensor], key: Hashable) -> list[str]:
        assert isinstance(key, CaptionOptions)
        return self.model.caption_batch(items, key)

    async def start(self) -> None:
        """Loads and warms the model off the event loop, then accepts work."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.model.load)
        await loop.run_in_executor(None, self.model.warmup)
        self._images.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        await self._images.close()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def items_served(self) -> int:
        return self._images.stats.items

    @property
    def model_batches(self) -> int:
        return self._images.stats.batches

    def options(self, max_new_tokens: int, num_beams: int, prefix: str) -> CaptionOptions:
        """Wire values (0 = server default) to checked options; InvalidInput if out of range."""
        limits = self.limits
        return CaptionOptions.resolve(
            max_new_tokens,
            num_beams,
            prefix,
            default_max_new_tokens=limits.default_max_new_tokens,
            max_new_tokens_limit=limits.max_new_tokens_limit,
            max_beams=limits.max_beams,
        )

    def _check(self, n: int) -> None:
        if not self.ready:
            raise NotReady("model is loading; retry shortly")
        if n == 0:
            raise InvalidInput("empty batch: no images given")
        if n > self.limits.max_items_per_request:
            raise TooLarge(
                f"{n} images in one request; the limit is {self.limits.max_items_per_request}"
            )

    async def caption_images(
        self, images: Sequence[bytes], options: CaptionOptions, partial: bool
    ) -> CaptionResult:
        """Captions per image; with `partial`, bad images are reported instead of raised."""
        self._check(len(images))
        self.model.check_options(options)
        decoded = await decode_all(self._decode_pool, self.model.preprocess_image, images)
        if not partial:
            decoded.raise_first_error()
        good, errors = decoded.good, decoded.errors
        captions = [""] * len(images)
        if good:
            results = await self._images.submit([t for _, t in good], key=options)
            for (i, _), caption in zip(good, results, strict=True):
                captions[i] = caption
        return CaptionResult(captions=captions, errors=errors)
