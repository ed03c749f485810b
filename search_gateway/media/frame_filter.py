"""Keeps a sampled frame only when it differs from the last kept one.

A static CCTV scene must not fill the index with 3 600 copies an hour, so a
frame is kept when the cosine between its CLIP vector and the last kept
frame's (same video or stream) falls below `threshold`.

Default 0.95, measured with the offline model on synthetic CCTV (sensor noise
std 3, H.264): consecutive frames of an unchanged scene score 0.985-0.9999,
an object entering or leaving 0.58-0.77. 0.95 sits between the two with room
on both sides; for ViT-B-32 near-duplicate frames are also above ~0.95 while a
person or car entering the view drops the cosine well below. Lower it to keep
fewer frames, raise it (0.98) for busy scenes where small changes matter.

Each kept frame stands for the frames that follow until the next kept one, so
it is emitted one step late, carrying `end_s` (the offset of the last sampled
frame it represents): a group's time span then covers the whole event, not
only its first frame. A frame is also kept after `max_gap_s` of no change, so
"what did cam-03 see at 14:05" has an answer at least once a minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

DEFAULT_THRESHOLD = 0.95
DEFAULT_MAX_GAP_S = 60.0

T = TypeVar("T")


@dataclass
class KeptFrame(Generic[T]):
    """A kept frame (`item`: whatever the caller carries) and the span it stands for."""

    item: T
    vector: np.ndarray
    start_s: float
    end_s: float


class FrameChangeFilter(Generic[T]):
    """Per-video state: push sampled frames in time order, take the kept ones."""

    def __init__(
        self, threshold: float = DEFAULT_THRESHOLD, max_gap_s: float = DEFAULT_MAX_GAP_S
    ) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"cosine threshold must be in [-1, 1], got {threshold}")
        self.threshold = threshold
        self.max_gap_s = max_gap_s
        self._pending: KeptFrame[T] | None = None
        self.seen = 0
        self.dropped = 0

    def push(self, item: T, vector: np.ndarray, offset_s: float) -> KeptFrame[T] | None:
        """Feeds one sampled frame; returns the previous kept frame once its span is known."""
        self.seen += 1
        cur = self._pending
        if cur is not None:
            same = float(np.dot(cur.vector, vector)) >= self.threshold
            if same and offset_s - cur.start_s < self.max_gap_s:
                cur.end_s = offset_s
                self.dropped += 1
                return None
        self._pending = KeptFrame(item, vector, offset_s, offset_s)
        return cur

    def finish(self) -> KeptFrame[T] | None:
        """The last kept frame (its span ends with the video or the stream)."""
        cur, self._pending = self._pending, None
        return cur
