"""One shape for "a value per image, plus why some images failed".

Every layer that handles a batch of untrusted images (the model classes, the
servicers' runtimes, the gateway's model clients, local or remote) answers
with the same type: `values[i]` is None exactly when image i failed, and
`errors[i]` says why. The servicers turn None into the proto's empty
placeholder ("" or b"") and the errors into ImageError messages, so the wire
format does not change; inside the code there is one failure marker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass
class PerImage(Generic[T]):
    """One value per request image (None where it failed) and why each failure."""

    values: list[T | None]
    errors: dict[int, str] = field(default_factory=dict)

    def error_items(self) -> list[tuple[int, str]]:
        """(index, reason) by index: the order of the proto's ImageError list."""
        return sorted(self.errors.items())


@dataclass
class ImageVectors(PerImage[np.ndarray]):
    """L2-normalised float32 vectors per image (None where the image failed)."""

    @property
    def vectors(self) -> list[np.ndarray | None]:
        return self.values


@dataclass
class ImageCaptions(PerImage[str]):
    """A caption per image (None where the image failed) and the model that wrote them."""

    model: str = ""

    @property
    def captions(self) -> list[str | None]:
        return self.values
