"""The part of a model service's Info reply that is about serving, not the
model: its limits and counters. EmbedderInfo and CaptionerInfo carry the same
fields under the same names, so both servicers fill them from here."""

from __future__ import annotations

from typing import Protocol

from imgsearch.errors import NotReady
from imgsearch.serving.model_runtime import BatchedModelRuntime


class ServedLimits(Protocol):
    @property
    def max_batch_size(self) -> int: ...

    @property
    def max_items_per_request(self) -> int: ...

    @property
    def max_request_bytes(self) -> int: ...


def serving_info(
    runtime: BatchedModelRuntime, limits: ServedLimits, max_image_pixels: int
) -> dict[str, int]:
    """Info's serving fields by proto field name; NotReady while the model loads
    (a loading server answers UNAVAILABLE, whatever it is asked)."""
    if not runtime.ready:
        raise NotReady("model is loading; retry shortly")
    return {
        "max_batch_size": limits.max_batch_size,
        "max_items_per_request": limits.max_items_per_request,
        "max_image_pixels": max_image_pixels,
        "max_request_bytes": limits.max_request_bytes,
        "items_served": runtime.items_served,
        "model_batches": runtime.model_batches,
    }
