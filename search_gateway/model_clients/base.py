"""The interfaces the gateway composes. Both implementations return the same
plain types, so the gateway code is identical in embedded and service mode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from imgsearch.results import ImageCaptions, ImageVectors, PerImage
from search_gateway.domain import CollectionSpec


class Embedder(Protocol):
    async def identity(self) -> CollectionSpec:
        """Which model makes the vectors (model, pretrained tag, dimension): the
        same record the store keeps with the collection."""
        ...

    async def embed_images(
        self, images: Sequence[bytes], timeout: float | None = None
    ) -> ImageVectors:
        """Bad images are reported in `errors`; unreachable service raises Unavailable."""
        ...

    async def embed_texts(self, texts: Sequence[str], timeout: float | None = None) -> np.ndarray:
        """(n, dim) L2-normalised float32."""
        ...

    async def close(self) -> None: ...


@dataclass
class ScoreBatch(PerImage[float]):
    """Image-text matching probability per image (None where it failed), and the model."""

    model: str = ""

    @property
    def scores(self) -> list[float | None]:
        return self.values


class Scorer(Protocol):
    """Image-text matching (a cross-encoder): re-ranks the first search hits."""

    async def score(
        self, text: str, images: Sequence[bytes], timeout: float | None = None
    ) -> ScoreBatch:
        """Bad images are reported in `errors`; FailedPrecondition when the service
        serves no matching model; Unavailable / DeadlineExceeded when it is down or slow."""
        ...

    async def close(self) -> None: ...


class Captioner(Protocol):
    async def caption_images(
        self, images: Sequence[bytes], timeout: float | None = None
    ) -> ImageCaptions: ...

    async def close(self) -> None: ...
