"""The ingest pipeline: micro-batches of a stream through five named stages.

    read and hash -> exact duplicates -> embed and caption -> near-duplicates -> write
    (read.py)        (exact.py)          (embed.py)            (near.py)          (write.py)

Stages are grouped in three steps that run as a pipeline when `overlap` is on
(the default): while batch N is embedded, batch N+1 is read, hashed and
looked up, and batch N-1 is near-duplicate-checked and written. Two rules keep
this equal to running the batches one after another:

* exact duplicates across batches: a batch is looked up against the new
  images of earlier batches still in flight before the store (exact.py);
* near-duplicates: the finishing step (near-duplicates, then write) runs one
  batch at a time, in order, so batch N+1's near-duplicate search sees batch N
  stored.

Outcomes come back in stream order. Each step holds at most one batch and
hands over through a one-batch queue, so a stream of any length is never held
in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from imgsearch.images import DEFAULT_MAX_PIXELS
from search_gateway.captions import CaptionSpool
from search_gateway.ingest.embed import ModelStage
from search_gateway.ingest.exact import InFlight, find_exact_duplicates
from search_gateway.ingest.frames import FrameFilter, settle_covered
from search_gateway.ingest.items import IngestOutcome
from search_gateway.ingest.near import mark_near_duplicates
from search_gateway.ingest.paths import PathPolicy
from search_gateway.ingest.read import read_and_hash
from search_gateway.ingest.states import NewImage, Settled, Source, State, failed, index_of
from search_gateway.ingest.write import WriteStage
from search_gateway.model_clients.base import Captioner, Embedder
from search_gateway.tenancy import TenantScope
from search_gateway.thumbnails import ThumbnailStore

log = logging.getLogger(__name__)

Timeout = Callable[[], float | None]


@dataclass
class _Batch:
    states: list[State]
    new: list[NewImage]  # registered in InFlight until written


@dataclass(frozen=True)
class _Stop:
    """A step failed: passed down the pipeline and raised to the caller."""

    error: BaseException


class IngestPipeline:
    """Runs micro-batches of an ingest stream through models and the store."""

    def __init__(
        self,
        embedder: Embedder,
        captioner: Captioner | None,
        paths: PathPolicy,
        *,
        batch_size: int = 32,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        captions_required: bool = False,
        caption_mode: str = "inline",
        spool: CaptionSpool | None = None,
        overlap: bool = True,
        thumbnails: ThumbnailStore | None = None,
    ) -> None:
        if caption_mode not in ("inline", "deferred"):
            raise ValueError(f"caption_mode must be inline or deferred, not {caption_mode!r}")
        self.embedder = embedder
        self.captioner = captioner
        self.caption_mode = caption_mode
        self.captions_required = captions_required
        self.spool = spool
        self.paths = paths
        self.batch_size = batch_size
        self.max_image_pixels = max_image_pixels
        self.overlap = overlap
        self.thumbnails = thumbnails

    # -- the three steps ----------------------------------------------------------
    async def _front(
        self, sources: list[tuple[int, Source]], scope: TenantScope, in_flight: InFlight
    ) -> _Batch:
        """Read and hash (on threads), then exact duplicates."""
        loaded: list[State] = list(
            await asyncio.gather(
                *(
                    asyncio.to_thread(
                        read_and_hash, i, src, self.paths, scope, self.max_image_pixels
                    )
                    for i, src in sources
                )
            )
        )
        states = await find_exact_duplicates(loaded, scope, in_flight)
        states = await settle_covered(states, scope)
        return _Batch(states, [s for s in states if isinstance(s, NewImage)])

    async def _model(self, batch: _Batch, timeout: Timeout) -> _Batch:
        """Embed and caption the new images."""
        stage = ModelStage(self.embedder, self.captioner, self.caption_mode,
                           self.captions_required)  # fmt: skip
        batch.states = await stage(batch.states, timeout())
        return batch

    async def _finish(
        self, batch: _Batch, scope: TenantScope, in_flight: InFlight, frames: FrameFilter
    ) -> list[IngestOutcome]:
        """Frame change filter, near-duplicates, then write (with thumbnails);
        every image gets exactly one answer."""
        try:
            states = await frames(batch.states, scope)
            states = await mark_near_duplicates(states, scope)
            states = await WriteStage(scope, self.spool, self.thumbnails)(states)
            states = frames.after_write(states)
        finally:
            for new in batch.new:  # nothing may wait forever on a lost image
                new.settle(failed(new.loaded.index, "internal error (see gateway log)",
                                  "INTERNAL", new.loaded.id, new.loaded.uri))  # fmt: skip
            in_flight.remove(batch.new)
        outcomes = []
        for s in states:
            if not isinstance(s, Settled):
                log.error("ingest: image %d left without an outcome", index_of(s))
                s = failed(index_of(s), "internal error (see gateway log)", "INTERNAL")
            outcomes.append(s.outcome)
        return outcomes

    # -- running a stream ---------------------------------------------------------
    async def run(
        self,
        items: AsyncIterator[Any],
        scope: TenantScope,
        timeout: Timeout = lambda: None,
    ) -> AsyncIterator[IngestOutcome]:
        """Outcomes in stream order, for IngestItems and ReadyImages alike;
        `scope` is the caller's view of the store (its tenant)."""
        in_flight = InFlight()
        frames = FrameFilter()
        batches = _batches(items, self.batch_size)
        try:
            if not self.overlap:
                async for sources in batches:
                    batch = await self._front(sources, scope, in_flight)
                    batch = await self._model(batch, timeout)
                    for outcome in await self._finish(batch, scope, in_flight, frames):
                        yield outcome
                return
            async for outcomes in self._overlapped(batches, timeout, scope, in_flight, frames):
                for outcome in outcomes:
                    yield outcome
        finally:
            await batches.aclose()

    async def _overlapped(
        self,
        batches: AsyncIterator[list[tuple[int, Source]]],
        timeout: Timeout,
        scope: TenantScope,
        in_flight: InFlight,
        frames: FrameFilter,
    ) -> AsyncIterator[list[IngestOutcome]]:
        fronted: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        modelled: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
        finished: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)

        async def front() -> None:
            try:
                async for sources in batches:
                    await fronted.put(await self._front(sources, scope, in_flight))
                await fronted.put(None)
            except Exception as exc:  # raised again by the consumer
                await fronted.put(_Stop(exc))

        fronting = asyncio.ensure_future(front())
        modelling = asyncio.ensure_future(
            _step(fronted, fronting, modelled, lambda b: self._model(b, timeout))
        )
        finishing = asyncio.ensure_future(
            _step(
                modelled, modelling, finished, lambda b: self._finish(b, scope, in_flight, frames)
            )
        )
        tasks = [fronting, modelling, finishing]
        try:
            while (got := await _handover(finished, finishing)) is not None:
                if isinstance(got, _Stop):
                    raise got.error
                yield got
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _handover(queue: asyncio.Queue[Any], upstream: asyncio.Future[None]) -> Any:
    """The next thing `upstream` hands over; a _Stop when it ended without
    handing anything over (cancelled, or a BaseException), so no step and no
    client ever waits on a step that is gone."""
    if not queue.empty():
        return queue.get_nowait()
    getter = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait({getter, upstream}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    if not queue.empty():
        return queue.get_nowait()
    if upstream.cancelled():
        return _Stop(asyncio.CancelledError())
    return _Stop(upstream.exception() or RuntimeError("an ingest step ended early"))


async def _step(
    inbox: asyncio.Queue[Any],
    upstream: asyncio.Future[None],
    outbox: asyncio.Queue[Any],
    work: Callable[[Any], Awaitable[Any]],
) -> None:
    """One pipeline step: batches in, results out, in order; a failure (or the
    end of the stream) is passed on."""
    while True:
        got = await _handover(inbox, upstream)
        if got is None or isinstance(got, _Stop):
            await outbox.put(got)
            return
        try:
            result = await work(got)
        except Exception as exc:  # raised again by the consumer
            await outbox.put(_Stop(exc))
            return
        await outbox.put(result)


async def _batches(
    items: AsyncIterator[Any], batch_size: int
) -> AsyncGenerator[list[tuple[int, Source]], None]:
    """Micro-batches of (stream index, item). Takes what is already waiting
    (and what arrives within a few ms) without stalling an interactive client
    on a full batch; reads ahead at most two batches."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2 * batch_size)
    end = object()

    async def reader() -> None:
        try:
            async for item in items:
                await queue.put(item)
        finally:
            await queue.put(end)

    reading = asyncio.ensure_future(reader())
    index = 0
    try:
        done = False
        while not done:
            first = await queue.get()
            if first is end:
                break
            batch = [(index, first)]
            index += 1
            # (get_nowait + sleep, not wait_for(get()): a timed-out wait_for
            # can race with a completed get and drop the item.)
            waited = False
            while len(batch) < batch_size:
                try:
                    nxt = queue.get_nowait()
                except asyncio.QueueEmpty:
                    if waited:
                        break
                    await asyncio.sleep(0.02)
                    waited = True
                    continue
                if nxt is end:
                    done = True
                    break
                batch.append((index, nxt))
                index += 1
            yield batch
        await reading  # surface stream errors (e.g. a cancelled client)
    finally:
        if not reading.done():
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
