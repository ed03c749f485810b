"""The interfaces the gateway composes. Both implementations return the same
plain types, so the gateway code is identical in embedded and service mode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from imgsearch.results import ImageCaptions, ImageVectors
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


class Captioner(Protocol):
    async def caption_images(
        self, images: Sequence[bytes], timeout: float | None = None
    ) -> ImageCaptions: ...

    async def close(self) -> None: ...
