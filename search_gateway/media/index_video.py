"""Indexing one video file: frames sampled here, sent through the ingest API.

Runs on the client side of the API (the CLI's process; in embedded mode the
API is the GatewayCore itself), so the same code feeds an embedded index and
a remote gateway, and a video never travels as one message
(docs/decisions.md). Decoding runs on a worker thread and hands frames over
through a small bounded queue: the decoder stays a few frames ahead of
embedding, never a whole video.

Stopping (`stop`, the CLI's first Ctrl-C): no frame is handed on after it is
set; frames already handed on are still stored and answered, and the report
counts only answered frames. The caller bounds how long that may take (it
cancels the call; `report` passed in keeps the counts so far).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from search_gateway.ingest import FrameRef, IngestItem, IngestOutcome, IngestStatus
from search_gateway.media.frames import VideoFrames
from search_gateway.media.ids import DEFAULT_INTERVAL_S

T = TypeVar("T")


class IngestAPI(Protocol):
    def ingest(self, items: AsyncIterator[IngestItem]) -> AsyncIterator[IngestOutcome]: ...


@dataclass
class VideoIndexReport:
    """What indexing one video did; `error` is set when the file failed (frames
    before the damage are still indexed and counted)."""

    uri: str
    sampled: int = 0
    added: int = 0
    already_present: int = 0
    similar: int = 0
    failed: int = 0
    covered_s: float = 0.0
    duration_s: float | None = None
    seconds: float = 0.0
    error: str | None = None
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False  # stopped before the end of the file

    @property
    def answered(self) -> int:
        """Frames the API has answered for (sampled ones may still be unsent)."""
        return self.added + self.already_present + self.similar + self.failed


def count_outcome(report: VideoIndexReport, o: IngestOutcome) -> None:
    if o.status is IngestStatus.ADDED:
        report.added += 1
    elif o.status is IngestStatus.ALREADY_PRESENT:
        report.already_present += 1
    elif o.status is IngestStatus.SIMILAR_FRAME:
        report.similar += 1
    elif o.status is IngestStatus.FAILED:
        report.failed += 1
        report.failures.append(f"frame {o.index}: {o.reason}")
    else:
        report.added += 1  # DUPLICATE: stored, marked duplicate_of


async def aiter_in_thread(source: Iterable[T], ahead: int = 8) -> AsyncIterator[T]:
    """Iterates a blocking iterable on a worker thread, at most `ahead` items ahead."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=ahead)
    done = object()
    stop = threading.Event()

    def put(item: Any) -> None:
        fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stop.is_set():
            try:
                fut.result(timeout=0.5)
                return
            except TimeoutError:
                continue
        fut.cancel()

    def produce() -> None:
        try:
            it: Iterator[T] = iter(source)
            for item in it:
                if stop.is_set():
                    return
                put(item)
        except BaseException as exc:  # surfaced to the consumer
            put(exc)
            return
        put(done)

    worker = loop.run_in_executor(None, produce)
    try:
        while True:
            item = await queue.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker


async def index_video(
    api: IngestAPI,
    path: str | Path,
    metadata: dict[str, Any] | None = None,
    *,
    interval_s: float = DEFAULT_INTERVAL_S,
    change_threshold: float | None = None,
    uri: str | None = None,
    progress: Callable[[float, int], None] | None = None,
    chunk: int = 16,
    stop: asyncio.Event | None = None,
    report: VideoIndexReport | None = None,
) -> VideoIndexReport:
    """Samples `path` every `interval_s` and ingests the frames; see VideoIndexReport.

    `progress(video_seconds_covered, frames_sampled)` is called per frame.
    `stop`: see the module docstring; `report`: filled in as outcomes arrive.
    """
    frames = VideoFrames(path, metadata, interval_s, uri)
    if report is None:
        report = VideoIndexReport(uri=frames.uri)
    report.uri = frames.uri
    started = time.perf_counter()
    offsets: list[float] = []  # of the frames handed on, by stream position

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    async def items() -> AsyncIterator[IngestItem]:
        # Frames are handed on in runs of `chunk`: the pipeline batches what is
        # waiting, and a model batch of 1-2 frames (what a decoder running at
        # the embedder's pace would give) costs several times more per frame.
        pending: list[IngestItem] = []
        async for f in aiter_in_thread(frames, ahead=2 * chunk):
            if stopped():
                return
            report.sampled += 1
            if progress is not None:
                progress(f.offset_s, report.sampled)
            pending.append(
                IngestItem(
                    data=f.data,
                    uri=f.uri,
                    metadata=f.metadata,
                    frame=FrameRef(frames.sha256, f.offset_s),
                    frame_change_threshold=change_threshold,
                )
            )
            if len(pending) >= chunk:
                for item in pending:
                    if stopped():
                        return
                    offsets.append(item.frame.offset_s if item.frame else 0.0)
                    yield item
                pending.clear()
        for item in pending:
            if stopped():
                return
            offsets.append(item.frame.offset_s if item.frame else 0.0)
            yield item

    async for o in api.ingest(items()):
        count_outcome(report, o)
        if 0 <= o.index < len(offsets):  # video time the answered frames reach
            report.covered_s = max(report.covered_s, offsets[o.index])
    report.seconds = time.perf_counter() - started
    if stopped():
        report.interrupted = True
        return report
    rep = frames.sampler.report
    report.error = rep.error
    report.covered_s = rep.covered_s
    report.duration_s = rep.duration_s
    report.seconds = time.perf_counter() - started
    return report
