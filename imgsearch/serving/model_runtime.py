"""BatchedModelRuntime: what every served model shares around its batchers.

A runtime owns one model, a thread pool that decodes images (never on the
event loop, concurrently with inference) and one DynamicBatcher per model
entry point. It loads and warms the model off the event loop before it
accepts work, refuses requests while loading or when they are empty or too
large, and counts what its batchers served for the Info RPCs. The embedder
and captioner runtimes add their own request methods on top.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from imgsearch.errors import InvalidInput, NotReady, TooLarge
from imgsearch.serving.batching import DynamicBatcher
from imgsearch.serving.metrics import ServiceMetrics

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class LoadableModel(Protocol):
    def load(self) -> None: ...

    def warmup(self) -> None: ...


class BatchLimits(Protocol):
    """The limit fields the base reads (each service's frozen Limits dataclass has them)."""

    @property
    def max_batch_size(self) -> int: ...

    @property
    def max_wait_s(self) -> float: ...

    @property
    def max_queue(self) -> int: ...

    @property
    def max_items_per_request(self) -> int: ...


class BatchedModelRuntime:
    """Decode pool + batchers + readiness of one served model."""

    def __init__(
        self,
        model: LoadableModel,
        limits: BatchLimits,
        metrics: ServiceMetrics,
        decode_workers: int = 0,
    ) -> None:
        self.model = model
        self.limits = limits
        self.metrics = metrics
        workers = decode_workers or (os.cpu_count() or 2)
        self._decode_pool = ThreadPoolExecutor(workers, thread_name_prefix="decode")
        self._batchers: list[DynamicBatcher[Any, Any]] = []
        self.ready = False

    def _batcher(
        self,
        run_batch: Callable[[list[ItemT], Hashable], list[ResultT]],
        name: str,
        metric_label: str,
    ) -> DynamicBatcher[ItemT, ResultT]:
        """A batcher with this runtime's limits and metrics, started with it."""
        batcher = DynamicBatcher[ItemT, ResultT](
            run_batch,
            max_batch_size=self.limits.max_batch_size,
            max_wait_s=self.limits.max_wait_s,
            max_queue=self.limits.max_queue,
            # Optional in a service's Limits: 0 = no waiting for announced items.
            max_fill_wait_s=getattr(self.limits, "max_fill_wait_s", 0.0),
            name=name,
            on_batch=self.metrics.batch_observer(metric_label),
            on_queue_depth=self.metrics.depth_observer(metric_label),
        )
        self._batchers.append(batcher)
        return batcher

    async def start(self) -> None:
        """Loads and warms the model off the event loop, then accepts work."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.model.load)
        await loop.run_in_executor(None, self.model.warmup)
        for batcher in self._batchers:
            batcher.start()
        self.ready = True

    async def close(self) -> None:
        self.ready = False
        for batcher in self._batchers:
            await batcher.close()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def items_served(self) -> int:
        return sum(b.stats.items for b in self._batchers)

    @property
    def model_batches(self) -> int:
        return sum(b.stats.batches for b in self._batchers)

    def _check_request(self, n: int, what: str) -> None:
        """NotReady while loading; InvalidInput when empty; TooLarge over the limit."""
        if not self.ready:
            raise NotReady("model is loading; retry shortly")
        if n == 0:
            raise InvalidInput(f"empty batch: no {what} given")
        if n > self.limits.max_items_per_request:
            raise TooLarge(
                f"{n} {what} in one request; the limit is {self.limits.max_items_per_request}"
            )
