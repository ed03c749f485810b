"""ScoreRuntime: the served image-text matcher, its decode pool and dynamic batcher.

It sits beside the captioner in the same service (BLIP's ITM head ships with the
BLIP family) but owns its own batcher: a scoring batch is (image, text) pairs, and
pairs of different requests (different query texts) share one model batch, the
texts padded to the longest. Errors, limits, readiness and metrics follow the
other RPCs (BatchedModelRuntime); metrics use the captioner's registry with the
batch kind "pair".
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from caption_service.matching import MAX_TEXT_CHARS, BlipMatcher, Pair
from imgsearch.errors import InvalidInput
from imgsearch.results import PerImage
from imgsearch.serving.decoding import decode_all
from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.serving.model_runtime import BatchedModelRuntime

# A re-rank scores up to 200 candidates in one call.
DEFAULT_MAX_PAIRS_PER_REQUEST = 200


@dataclass(frozen=True)
class ScoreLimits:
    max_batch_size: int = 32
    max_wait_s: float = 0.005
    max_queue: int = 4096
    max_items_per_request: int = DEFAULT_MAX_PAIRS_PER_REQUEST
    max_request_bytes: int = 64 * 1024 * 1024
    max_text_chars: int = MAX_TEXT_CHARS


class ScoreRuntime(BatchedModelRuntime):
    """Serves one BlipMatcher with dynamic batching of (image, text) pairs."""

    model: BlipMatcher
    limits: ScoreLimits

    def __init__(
        self,
        model: BlipMatcher,
        limits: ScoreLimits,
        metrics: ServiceMetrics | None = None,
        decode_workers: int = 0,
    ) -> None:
        super().__init__(model, limits, metrics or ServiceMetrics.create("scorer"), decode_workers)
        self._pairs = self._batcher(self._run_batch, "score", "pair")

    def _run_batch(self, items: list[Pair], key: Hashable) -> list[float]:
        return self.model.score_batch(items)

    async def score_images(
        self, text: str, images: Sequence[bytes], partial: bool
    ) -> PerImage[float]:
        """P(text matches image) per image (None where it failed); with `partial`,
        bad images are reported instead of raised."""
        self._check_request(len(images), "images")
        if len(text.strip()) > self.limits.max_text_chars:
            raise InvalidInput(
                f"score text has {len(text.strip())} characters; "
                f"the limit is {self.limits.max_text_chars}"
            )
        ids = self.model.encode_text(text)
        decoded = await decode_all(self._decode_pool, self.model.preprocess_image, images)
        if not partial:
            decoded.raise_first_error()
        out = PerImage[float](values=[None] * len(images), errors=dict(decoded.errors))
        if decoded.good:
            results = await self._pairs.submit([(t, ids) for _, t in decoded.good])
            for (i, _), value in zip(decoded.good, results, strict=True):
                out.values[i] = value
        return out
