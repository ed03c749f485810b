"""Dynamic batching: coalesce concurrent requests into model batches.

Requests put already-preprocessed items (tensors) on a queue, each with a
future. One loop forms a batch from the head of the queue: up to
`max_batch_size` items that share a batch key, waiting at most `max_wait_s`
after the first item for more to arrive. The batch runs on a dedicated
inference thread (never on the event loop); while it runs, new requests keep
decoding in worker threads and queueing, so decode and inference overlap and
the next batch is ready when the model is. This is the scheme of Triton's
dynamic batcher and text-embeddings-inference.

Items carry their own futures, so a request whose items are split over two
model batches (or share one with other requests) is answered when all its
items are done, and a failure in one request's preprocessing never reaches
the batch at all.

Items on their way: a request announces its items (`expect(n)`) before it
decodes them. Without that, N concurrent single-image clients answered by
one batch all send their next image at once, the first decoded one starts a
batch `max_wait_s` later with the few that made it, and the batches settle at
about half the clients (measured: mean 15 of 32). With it, the batcher keeps
waiting while announced items could still fill the batch, and stops at once
when they have all arrived or were dropped (bad image, cancelled call). The
wait is bounded by the larger of `max_fill_wait_s` and half of a recent batch's
run time: waiting for images that are already decoding costs at most half a
batch, and on a CPU host the decode threads and the model share the cores, so
the model idling while they decode loses little (a fixed 50 ms was too short
on a loaded 2-core box, where 32 decodes took longer and batches fell back to
about 10 of 32). Requests that announce nothing (one
client, sequential calls) see only `max_wait_s`, as before.

Clients coming back: announcing only helps once a request has reached the
server. Closed-loop clients (each sends its next image when the last one is
answered) return in a burst right after their batch; on a loaded host the
first one or two arrive, are decoded and would leave in a batch of their own
while the rest are still in flight (measured: 16 of 32 on the shared 2-core
box). So a finished batch of n items also makes the batcher expect up to n
items back: the next batch keeps waiting (same fill bound) until that many
have arrived, or the bound passes, after which it stops expecting them (an
open-loop client that never returns costs one bounded wait, once).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from imgsearch.errors import NotReady, Overloaded

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass
class BatchStats:
    """Counters an operator (and the Info RPCs) read to see batching work."""

    items: int = 0
    batches: int = 0
    batch_sizes: collections.Counter[int] = field(default_factory=collections.Counter)


@dataclass
class _Pending(Generic[ItemT]):
    item: ItemT
    key: Hashable
    future: asyncio.Future[Any]
    enqueued: float


BatchObserver = Callable[[int, float, float], None]  # (size, queue wait s, run s)


class Incoming:
    """Items a request has announced and not yet queued (they are decoding).

    `release()` (idempotent) takes them off the count; `submit` calls it when
    the decoded items are queued, the caller's `finally` when decoding failed.
    """

    def __init__(self, batcher: DynamicBatcher[Any, Any], n: int) -> None:
        self._batcher = batcher
        self._n = n
        batcher._incoming += n
        batcher._arrived(n)

    def release(self) -> None:
        if self._n:
            self._batcher._incoming -= self._n
            self._n = 0
            self._batcher._wake()


class DynamicBatcher(Generic[ItemT, ResultT]):
    """Runs `run_batch(items, key) -> results` over coalesced items.

    Args:
        run_batch: the model call; must return one result per item, in order.
        max_batch_size: largest batch handed to `run_batch`.
        max_wait_s: how long the first item of a batch waits for company.
        max_fill_wait_s: how long it waits at least (when needed) while
            announced items (`expect`) are still decoding and could fill the
            batch; 0 = never wait for them (only max_wait_s).
        max_queue: items allowed to wait; beyond it `submit` raises Overloaded.
        on_batch: optional observer for metrics.
    """

    def __init__(
        self,
        run_batch: Callable[[list[ItemT], Hashable], Sequence[ResultT]],
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int,
        max_fill_wait_s: float = 0.0,
        name: str = "model",
        on_batch: BatchObserver | None = None,
        on_queue_depth: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_fill_wait_s = max(max_fill_wait_s, max_wait_s)
        self._incoming = 0
        self._run_s = 0.0  # moving average of a batch's run time
        self._coming_back = 0  # items of answered batches not yet seen again
        self._idle_since = 0.0  # when the last batch finished (the model went idle)
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._on_queue_depth = on_queue_depth
        self._queue: collections.deque[_Pending[ItemT]] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        # One inference thread: the model uses all cores itself (intra-op
        # threads) and must not run two batches at once.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-infer")
        self.stats = BatchStats()
        self._closed = False

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Starts the batching loop on the running event loop."""
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    @property
    def incoming(self) -> int:
        """Items announced with `expect` and not queued yet."""
        return self._incoming

    def expect(self, n: int) -> Incoming:
        """Announces `n` items that are being prepared; see the module doc."""
        return Incoming(self, n)

    def _arrived(self, n: int) -> None:
        self._coming_back = max(0, self._coming_back - n)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def submit(
        self, items: Sequence[ItemT], key: Hashable = None, incoming: Incoming | None = None
    ) -> list[ResultT]:
        """Queues items and waits for their results, in order; `incoming` (the
        announcement of these items) is released as they are queued."""
        if self._closed:
            raise NotReady("server is shutting down")
        if self._task is None:
            self.start()
        if len(self._queue) + len(items) > self.max_queue:
            raise Overloaded(
                f"overloaded: {len(self._queue)} items queued (limit {self.max_queue}); retry later"
            )
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        pending = [_Pending(item, key, loop.create_future(), now) for item in items]
        self._queue.extend(pending)
        if incoming is not None:
            incoming.release()
        else:
            self._arrived(len(items))
        self._notify_depth()
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            return list(await asyncio.gather(*(p.future for p in pending)))
        except asyncio.CancelledError:
            # The caller went away: drop its items that have not started.
            for p in pending:
                p.future.cancel()
            raise

    async def close(self) -> None:
        """Finishes queued work, then stops the loop and the inference thread."""
        self._closed = True
        while self._queue and self._task is not None and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    async def _loop(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = await self._form_batch()
            if not batch:
                continue
            items = [p.item for p in batch]
            key = batch[0].key
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, items, key)
                if len(results) != len(items):
                    raise RuntimeError(f"model returned {len(results)} results for {len(items)}")
            except Exception as exc:  # one failed batch fails its items, not the server
                log.exception("model batch of %d failed", len(items))
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            self._idle_since = time.perf_counter()
            ran = self._idle_since - started
            self._run_s = ran if not self._run_s else 0.8 * self._run_s + 0.2 * ran
            for p, r in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(r)
            if self.max_fill_wait_s > self.max_wait_s:
                self._coming_back = min(self.max_batch_size, self._coming_back + len(batch))
            self.stats.items += len(batch)
            self.stats.batches += 1
            self.stats.batch_sizes[len(batch)] += 1
            if self._on_batch is not None:
                wait = started - min(p.enqueued for p in batch)
                self._on_batch(len(batch), wait, ran)

    async def _form_batch(self) -> list[_Pending[ItemT]]:
        """Takes up to max_batch_size live items sharing the head's key."""
        assert self._wakeup is not None
        self._drop_cancelled()
        if not self._queue:
            return []
        head = self._queue[0]
        deadline = head.enqueued + self.max_wait_s
        fill_wait = self.max_fill_wait_s
        if fill_wait > self.max_wait_s:  # on (max_fill_wait_s=0 turns it all off)
            fill_wait = max(fill_wait, self._run_s / 2)
        # The fill wait costs model idle time, so it counts from when the
        # model went idle, not from when the head arrived: items that queued
        # while the last batch ran have used up max_wait_s but not this.
        fill_deadline = max(head.enqueued, self._idle_since) + fill_wait
        while self._count_key(head.key) < self.max_batch_size:
            # Announced items still decoding, or clients of the last batch on
            # their way back, may fill the batch: worth waiting for (up to the
            # fill deadline); otherwise only max_wait_s.
            expecting = self._incoming > 0 or self._coming_back > 0
            limit = fill_deadline if expecting else deadline
            remaining = limit - time.perf_counter()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
        if self._count_key(head.key) < self.max_batch_size:
            # Leaving short: whoever was expected back did not come in time
            # (or was one client reusing a big batch's slots); expect no one.
            self._coming_back = 0
        batch: list[_Pending[ItemT]] = []
        rest: collections.deque[_Pending[ItemT]] = collections.deque()
        while self._queue:
            p = self._queue.popleft()
            if p.future.cancelled():
                continue
            if p.key == head.key and len(batch) < self.max_batch_size:
                batch.append(p)
            else:
                rest.append(p)
        self._queue = rest
        self._notify_depth()
        return batch

    def _count_key(self, key: Hashable) -> int:
        return sum(1 for p in self._queue if p.key == key)

    def _drop_cancelled(self) -> None:
        if any(p.future.cancelled() for p in self._queue):
            self._queue = collections.deque(p for p in self._queue if not p.future.cancelled())

    def _notify_depth(self) -> None:
        if self._on_queue_depth is not None:
            self._on_queue_depth(len(self._queue))
