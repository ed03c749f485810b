"""In-process model clients: the model wrappers themselves, run off the event
loop. Decoding runs in a pool of threads (one per core) and inference on one
thread, so the gateway's event loop keeps serving while models work."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np

from imgsearch.results import ImageCaptions, ImageVectors
from imgsearch.serving.decoding import decode_all
from search_gateway.domain import CollectionSpec
from search_gateway.model_clients.base import ScoreBatch

if TYPE_CHECKING:
    from caption_service.matching import BlipMatcher
    from caption_service.model import BlipCaptioner, CaptionOptions
    from embedder_service.model import ClipEmbedder


class LocalEmbedder:
    """The Embedder interface over an in-process ClipEmbedder."""

    def __init__(self, model: ClipEmbedder, decode_workers: int = 0, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = batch_size
        self._decode = ThreadPoolExecutor(decode_workers or os.cpu_count() or 2, "decode")
        self._infer = ThreadPoolExecutor(1, "infer")

    async def identity(self) -> CollectionSpec:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._infer, self.model.warmup)
        info = self.model.info
        return CollectionSpec(info.model, info.pretrained, info.dimension)

    async def embed_images(
        self, images: Sequence[bytes], timeout: float | None = None
    ) -> ImageVectors:
        loop = asyncio.get_running_loop()
        decoded = await decode_all(self._decode, self.model.preprocess_image, images)
        out = ImageVectors([None] * len(images), decoded.errors)
        good = decoded.good
        for start in range(0, len(good), self.batch_size):
            chunk = good[start : start + self.batch_size]
            rows = await loop.run_in_executor(
                self._infer, self.model.encode_image_batch, [t for _, t in chunk]
            )
            for (i, _), row in zip(chunk, rows, strict=True):
                out.values[i] = row
        return out

    async def embed_texts(self, texts: Sequence[str], timeout: float | None = None) -> np.ndarray:
        loop = asyncio.get_running_loop()
        vectors, _ = await loop.run_in_executor(self._infer, self.model.embed_texts, list(texts))
        return vectors

    async def close(self) -> None:
        self._decode.shutdown(wait=False, cancel_futures=True)
        self._infer.shutdown(wait=True)


class LocalCaptioner:
    """The Captioner interface over an in-process BlipCaptioner."""

    def __init__(self, model: BlipCaptioner, options: CaptionOptions | None = None) -> None:
        self.model = model
        self.options = options
        self._infer = ThreadPoolExecutor(1, "caption")

    async def caption_images(
        self, images: Sequence[bytes], timeout: float | None = None
    ) -> ImageCaptions:
        from caption_service.model import CaptionOptions

        loop = asyncio.get_running_loop()
        options = self.options or CaptionOptions()
        result = await loop.run_in_executor(
            self._infer, self.model.caption_images, list(images), options
        )
        captions = [None if i in result.errors else c for i, c in enumerate(result.captions)]
        return ImageCaptions(captions, result.errors, model=self.model.model_id)

    async def close(self) -> None:
        self._infer.shutdown(wait=True)


class LocalScorer:
    """The Scorer interface over an in-process BlipMatcher (the embedded mode).

    Decoding runs in a small pool and scoring on one thread; a deadline is
    honoured by the caller (the re-ranker waits with asyncio.wait_for).
    """

    def __init__(self, model: BlipMatcher, decode_workers: int = 0, batch_size: int = 32) -> None:
        self.model = model
        self.batch_size = batch_size
        self._decode = ThreadPoolExecutor(decode_workers or os.cpu_count() or 2, "score-decode")
        self._infer = ThreadPoolExecutor(1, "score")

    async def score(
        self, text: str, images: Sequence[bytes], timeout: float | None = None
    ) -> ScoreBatch:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._infer, self.model.load)
        ids = self.model.encode_text(text)
        decoded = await decode_all(self._decode, self.model.preprocess_image, images)
        out = ScoreBatch(
            values=[None] * len(images), errors=dict(decoded.errors), model=self.model.model_id
        )
        good = decoded.good
        for start in range(0, len(good), self.batch_size):
            chunk = good[start : start + self.batch_size]
            rows = await loop.run_in_executor(
                self._infer, self.model.score_batch, [(t, ids) for _, t in chunk]
            )
            for (i, _), value in zip(chunk, rows, strict=True):
                out.values[i] = value
        return out

    async def close(self) -> None:
        self._decode.shutdown(wait=False, cancel_futures=True)
        self._infer.shutdown(wait=True)
