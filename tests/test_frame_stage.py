"""The ingest frame stage's bookkeeping: spans and shared fate with the kept frame.

Small deterministic fakes (a scope that holds nothing); the stage's end-to-end
behaviour is covered through the real pipeline in test_video_gateway.py and
test_video_quality.py.
"""

from __future__ import annotations

import uuid

import numpy as np

from imgsearch.images import ImageHeader
from search_gateway.ingest.frames import FrameFilter
from search_gateway.ingest.items import FrameRef, IngestStatus
from search_gateway.ingest.states import Embedded, Loaded, NewImage, State, failed
from search_gateway.store.base import ScrollPage

VIDEO = "ab" * 32


class EmptyScope:
    """A store that holds no frames yet."""

    async def scroll(self, *args: object) -> ScrollPage:
        return ScrollPage([], None)

    async def set_payload(self, point_id: str, fields: dict[str, object]) -> None:
        raise AssertionError("nothing is stored: no span to extend in the store")


def _frame(i: int, vector: np.ndarray) -> Embedded:
    loaded = Loaded(
        index=i, data=b"", uri="v.mp4", sha256="00" * 32, id=str(uuid.UUID(int=i + 1)),
        header=ImageHeader("WEBP", 8, 8), metadata={"timestamp": f"2024-05-01T12:00:0{i}Z",
        "frame_offset_s": float(i)}, with_captions=False, near_duplicate_threshold=0.0,
        frame=FrameRef(VIDEO, float(i)),
    )  # fmt: skip
    return Embedded(NewImage(loaded), vector)


async def test_similar_frames_extend_the_span_and_share_a_failed_write() -> None:
    a, b = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    batch: list[State] = [_frame(0, a), _frame(1, a), _frame(2, a), _frame(3, b)]
    flt = FrameFilter()
    out = await flt(batch, EmptyScope())  # type: ignore[arg-type]
    kept = [s for s in out if isinstance(s, Embedded)]
    assert [k.loaded.index for k in kept] == [0, 3]
    assert kept[0].loaded.metadata["frame_end_s"] == 2.0
    assert kept[0].loaded.metadata["timestamp_end"] == "2024-05-01T12:00:02Z"
    similar = [s.outcome for s in out if not isinstance(s, Embedded)]  # type: ignore[union-attr]
    assert [(o.status, o.duplicate_of) for o in similar] == [
        (IngestStatus.SIMILAR_FRAME, kept[0].loaded.id)
    ] * 2

    # The write of frame 0 fails: frames 1 and 2 fail with it, frame 3 stands.
    written: list[State] = [
        failed(0, "store down", "UNAVAILABLE", kept[0].loaded.id, "v.mp4"),
        out[1], out[2],
        kept[1].loaded.settle(IngestStatus.ADDED),
    ]  # fmt: skip
    final = flt.after_write(written)
    statuses = [s.outcome.status for s in final]  # type: ignore[union-attr]
    assert statuses == [IngestStatus.FAILED] * 3 + [IngestStatus.ADDED]
    assert final[1].outcome.error_code == "UNAVAILABLE"  # type: ignore[union-attr]


async def test_a_kept_frame_whose_write_failed_is_forgotten() -> None:
    a = np.array([1.0, 0.0], np.float32)
    flt = FrameFilter()
    out = await flt([_frame(0, a), _frame(1, a)], EmptyScope())  # type: ignore[arg-type]
    kept = out[0]
    assert isinstance(kept, Embedded)
    flt.after_write([failed(0, "store down", "UNAVAILABLE", kept.loaded.id, "v.mp4"), out[1]])
    # The next frame like it is compared with what is stored (nothing): kept, not similar.
    again = await flt([_frame(2, a)], EmptyScope())  # type: ignore[arg-type]
    assert isinstance(again[0], Embedded)
