"""CaptionRuntime: the served BLIP model, its decode pool and dynamic batcher.

Plain Python in, plain Python out: the gRPC servicer converts protobuf at the
edge and calls this. Decode pool, readiness and request checks come from
BatchedModelRuntime; bad images are dropped before batching, so they never
spoil another request's batch. The batch key is the request's
CaptionOptions: generate() takes one prompt, length and beam width per call.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

from caption_service.model import (
    DEFAULT_MAX_NEW_TOKENS,
    MAX_BEAMS,
    MAX_NEW_TOKENS_LIMIT,
    BlipCaptioner,
    CaptionOptions,
)
from caption_service.score_runtime import ScoreRuntime
from imgsearch.results import ImageCaptions
from imgsearch.serving.decoding import decode_all
from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.serving.model_runtime import BatchedModelRuntime

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


class CaptionRuntime(BatchedModelRuntime):
    """Serves one BlipCaptioner with dynamic batching keyed by options."""

    model: BlipCaptioner
    limits: Limits

    def __init__(
        self,
        model: BlipCaptioner,
        limits: Limits,
        metrics: ServiceMetrics | None = None,
        decode_workers: int = 0,
        scorer: ScoreRuntime | None = None,
    ) -> None:
        super().__init__(
            model, limits, metrics or ServiceMetrics.create("captioner"), decode_workers
        )
        self._images = self._batcher(self._run_batch, "caption", "image")
        # The optional image-text matcher behind Score (None: Score is not served).
        self.scorer = scorer

    async def start(self) -> None:
        """Loads the captioner, then the matcher (health turns SERVING after both)."""
        await super().start()
        if self.scorer is not None:
            await self.scorer.start()

    async def close(self) -> None:
        await super().close()
        if self.scorer is not None:
            await self.scorer.close()

    def _run_batch(self, items: list[torch.Tensor], key: Hashable) -> list[str]:
        assert isinstance(key, CaptionOptions)
        return self.model.caption_batch(items, key)

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

    async def caption_images(
        self, images: Sequence[bytes], options: CaptionOptions, partial: bool
    ) -> ImageCaptions:
        """Captions per image; with `partial`, bad images are reported instead of raised."""
        self._check_request(len(images), "images")
        self.model.check_options(options)
        decoded = await decode_all(self._decode_pool, self.model.preprocess_image, images)
        if not partial:
            decoded.raise_first_error()
        out = ImageCaptions([None] * len(images), decoded.errors, model=self.model.model_id)
        if decoded.good:
            results = await self._images.submit([t for _, t in decoded.good], key=options)
            for (i, _), caption in zip(decoded.good, results, strict=True):
                out.values[i] = caption
        return out
