"""The interfaces the gateway composes. Both implementations return the same
plain types, so the gateway code is identical in embedded and service mode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class EmbedderIdentity:
    """Which model makes the vectors; stored with the collection."""

    model: str
    pretrained: str
    dimension: int


@dataclass
class ImageVectors:
    """One vector per image (None where it failed) and why each failure."""

    vectors: list[np.ndarray | None]
    errors: dict[int, str] = field(default_factory=dict)


@dataclass
class CaptionBatch:
    """One caption per image (None where it failed), and the captioning model."""

    captions: list[str | None]
    model: str
    errors: dict[int, str] = field(default_factory=dict)


class Embedder(Protocol):
    async def identity(self) -> EmbedderIdentity: ...

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
class ScoreBatch:
    """Image-text matching probability per image (None where it failed), and the model."""

    scores: list[float | None]
    model: str
    errors: dict[int, str] = field(default_factory=dict)


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
    ) -> CaptionBatch: ...

    async def close(self) -> None: ...
