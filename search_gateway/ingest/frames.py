"""Video frames in the ingest pipeline: id, change filter, time span.

A frame (an item with `frame`: video content hash + offset) is an image like
any other, with three differences:

* its point id derives from (video, offset), so indexing the video again
  adds nothing (read.py);
* before embedding (`settle_covered`), a frame whose moment a stored kept
  frame already covers (`frame_offset_s <= t <= frame_end_s` of the same
  video) is SIMILAR_FRAME at once: re-indexing a video costs no model work
  for the frames the first run dropped;
* after embedding (`FrameFilter`), a frame is kept only when its cosine to the
  last kept frame of its video is below the threshold (default 0.95, see
  media/frame_filter.py for the measurement) or 60 s passed; otherwise it is
  SIMILAR_FRAME and extends the kept frame's span (`frame_end_s`,
  `timestamp_end`), so an event's time span covers the frames it stands for.

State per ingest run: the last kept frame of each video, bounded to the most
recent `max_videos` videos. When a run starts mid-video (a resumed index),
the last kept frame is read back from the store.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgsearch.errors import ImgsearchError
from search_gateway import domain as d
from search_gateway.ingest.items import IngestStatus
from search_gateway.ingest.states import Embedded, NewImage, Settled, State, failed
from search_gateway.media.frame_filter import DEFAULT_MAX_GAP_S, DEFAULT_THRESHOLD
from search_gateway.media.frames import FRAME_END, FRAME_OFFSET, VIDEO_SHA256, with_end
from search_gateway.tenancy import TenantScope

log = logging.getLogger(__name__)


@dataclass
class _Kept:
    id: str
    vector: np.ndarray
    offset_s: float
    end_s: float
    timestamp: Any  # the kept frame's `timestamp` payload value, for timestamp_end
    pending: Embedded | None  # not written yet: its payload takes the span directly


def _frame_filter(video: str, **ranges: float) -> d.Filter:
    """Frames of one video within offset ranges (the scope adds the tenant)."""
    conds: list[Any] = [d.Match(VIDEO_SHA256, video)]
    for key, bound in ranges.items():
        field, op = key.rsplit("__", 1)
        conds.append(d.Range(field, **{op: bound}))
    return d.Filter(must=tuple(conds))


async def settle_covered(batch: list[State], scope: TenantScope) -> list[State]:
    """NewImage frames that a stored kept frame already covers -> SIMILAR_FRAME."""
    by_video: dict[str, list[int]] = {}
    for i, s in enumerate(batch):
        if isinstance(s, NewImage) and s.loaded.frame is not None:
            by_video.setdefault(s.loaded.frame.video_sha256, []).append(i)
    out = list(batch)
    for video, positions in by_video.items():
        times = [out[i].loaded.frame.offset_s for i in positions]  # type: ignore[union-attr]
        flt = _frame_filter(video, frame_offset_s__lte=max(times), frame_end_s__gte=min(times))
        try:
            page = await scope.scroll(flt, 256, None)
        except ImgsearchError as exc:
            log.warning("frame coverage lookup failed (%s); frames are embedded", exc)
            continue
        spans = [
            (float(p.payload[FRAME_OFFSET]), float(p.payload[FRAME_END]), p.id)
            for p in page.points
            if isinstance(p.payload.get(FRAME_OFFSET), (int, float))
            and isinstance(p.payload.get(FRAME_END), (int, float))
        ]
        for i, t in zip(positions, times, strict=True):
            s = out[i]
            assert isinstance(s, NewImage)
            for start, end, pid in spans:
                if start <= t <= end and pid != s.loaded.id:
                    out[i] = s.settle(s.loaded.settle(IngestStatus.SIMILAR_FRAME, pid))
                    break
    return out


class FrameFilter:
    """The change filter of one ingest run (see the module docstring)."""

    def __init__(self, max_videos: int = 64, max_gap_s: float = DEFAULT_MAX_GAP_S) -> None:
        self._last: collections.OrderedDict[str, _Kept] = (
            collections.OrderedDict()
        )
        self.max_videos = max_videos
        self.max_gap_s = max_gap_s
        # Similar frames of this batch whose kept frame is written in this batch
        # too: (position, its kept frame), checked by `after_write`.
        self._dependents: list[tuple[int, _Kept]] = []

    async def __call__(self, batch: list[State], scope: TenantScope) -> list[State]:
        out = list(batch)
        extended: dict[str, _Kept] = {}
        self._dependents = []
        for i, s in enumerate(out):
            if not isinstance(s, Embedded) or s.loaded.frame is None:
                continue
            frame = s.loaded.frame
            key = frame.video_sha256  # one run has one tenant: the video is the key
            threshold = (
                DEFAULT_THRESHOLD
                if s.loaded.frame_change_threshold is None
                else s.loaded.frame_change_threshold
            )
            last = self._last.get(key)
            if last is None:
                last = await self._stored_last(scope, key, frame.offset_s)
            t = frame.offset_s
            if (
                last is not None
                and last.offset_s <= t
                and t - last.offset_s < self.max_gap_s
                and float(np.dot(last.vector, s.vector)) >= threshold
            ):
                last.end_s = max(last.end_s, t)
                if last.pending is None:
                    extended[last.id] = last
                else:
                    last.pending.loaded.metadata.update(
                        with_end(last.pending.loaded.metadata, last.end_s)
                    )
                    self._dependents.append((i, last))
                out[i] = s.new.settle(s.loaded.settle(IngestStatus.SIMILAR_FRAME, last.id))
            else:
                kept = _Kept(s.loaded.id, s.vector, t, t, s.loaded.metadata.get(d.TIMESTAMP), s)
                s.loaded.metadata.update(with_end(s.loaded.metadata, t))
                self._remember(key, kept)
        for kept in extended.values():
            known = {d.TIMESTAMP: kept.timestamp, FRAME_OFFSET: kept.offset_s}
            fields = with_end(known, kept.end_s)
            try:
                await scope.set_payload(kept.id, fields)
            except ImgsearchError as exc:  # the frames are answered; only the span is short
                log.warning("could not extend the span of frame %s: %s", kept.id, exc)
        # Kept frames of this batch are written by the next stage; later batches
        # extend them through the store.
        for kept in self._last.values():
            kept.pending = None
        return out

    def after_write(self, written: list[State]) -> list[State]:
        """Similar frames share the fate of their kept frame of the same batch:
        when its write failed they fail the same way (nothing is acknowledged
        as covered by a point that was not stored), and a failed kept frame is
        forgotten so later frames are compared with what is stored."""
        out = list(written)
        failed_ids: set[str] = set()
        for i, kept in self._dependents:
            try:
                outcome = out[kept_index(out, kept.id)]
            except LookupError:
                continue
            if isinstance(outcome, Settled) and outcome.outcome.status is IngestStatus.FAILED:
                s = out[i]
                assert isinstance(s, Settled)
                o = outcome.outcome
                out[i] = failed(s.outcome.index, o.reason, o.error_code, s.outcome.id,
                                s.outcome.uri)  # fmt: skip
                failed_ids.add(kept.id)
        for s in out:
            if isinstance(s, Settled) and s.outcome.status is IngestStatus.FAILED:
                failed_ids.add(s.outcome.id)
        for key in [k for k, v in self._last.items() if v.id in failed_ids]:
            del self._last[key]
        self._dependents = []
        return out

    def _remember(self, key: str, kept: _Kept) -> None:
        self._last[key] = kept
        self._last.move_to_end(key)
        while len(self._last) > self.max_videos:
            self._last.popitem(last=False)

    async def _stored_last(self, scope: TenantScope, video: str, t: float) -> _Kept | None:
        """The stored kept frame just before t (a run resumed mid-video), with its vector."""
        flt = _frame_filter(video, frame_offset_s__lt=t, frame_offset_s__gte=t - self.max_gap_s)
        try:
            page = await scope.scroll(flt, 256, None)
            if not page.points:
                return None
            best = max(page.points, key=lambda p: float(p.payload.get(FRAME_OFFSET, -1)))
            got = await scope.get([best.id], True)
        except ImgsearchError as exc:
            log.warning("could not read the last kept frame back (%s)", exc)
            return None
        p = got[0] if got else None
        if p is None or p.vector is None:
            return None
        return _Kept(
            p.id, p.vector, float(p.payload[FRAME_OFFSET]),
            float(p.payload.get(FRAME_END, p.payload[FRAME_OFFSET])), p.payload.get(d.TIMESTAMP),
            None,
        )  # fmt: skip


def kept_index(states: list[State], point_id: str) -> int:
    """Position of the state answering for `point_id` (the kept frame) in a batch."""
    for pos, s in enumerate(states):
        if isinstance(s, Settled) and s.outcome.id == point_id and (
            s.outcome.status is not IngestStatus.SIMILAR_FRAME
        ):
            return pos
    raise LookupError(point_id)


__all__ = ["FrameFilter", "settle_covered"]
