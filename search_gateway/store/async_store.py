"""AsyncStore: the VectorStore's methods, awaitable, on the store thread, as domain errors.

The gateway's handlers run on an event loop and the engines block, and
qdrant-client's embedded mode is not thread-safe: every call goes to one
store thread (a few, against a server). As qdrant-client's AsyncQdrantClient
mirrors its sync client, AsyncStore mirrors the VectorStore protocol method
by method: each method is built from the protocol's own function, so its
parameters and result are the protocol's (checked by the type checker) and
a new protocol method is one line here. Engine errors become the gateway's
(imgsearch.errors): ModelMismatch -> FailedPrecondition, StoreUnavailable ->
Unavailable, InvalidFilter/InvalidPointId -> InvalidInput, PointNotFound ->
NotFound.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from imgsearch.errors import FailedPrecondition, ImgsearchError, InvalidInput, NotFound, Unavailable
from search_gateway import domain as d
from search_gateway.store.base import VectorStore

P = ParamSpec("P")
T = TypeVar("T")


def _mirror(
    method: Callable[Concatenate[VectorStore, P], T],
) -> Callable[Concatenate[AsyncStore, P], Coroutine[Any, Any, T]]:
    """The async twin of one VectorStore method: same parameters, awaited result."""
    name = method.__name__

    async def call(self: AsyncStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        sync: Callable[P, T] = getattr(self.sync, name)
        return await self.run(functools.partial(sync, *args, **kwargs))

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    call.__wrapped__ = method  # type: ignore[attr-defined]  # inspect.signature follows it
    return call


class AsyncStore:
    """A VectorStore driven from the event loop; close() also ends its threads."""

    def __init__(self, store: VectorStore, threads: int = 1) -> None:
        self.sync = store
        # qdrant-client's embedded mode is not thread-safe: one store thread.
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="store")

    @property
    def collection(self) -> str:
        return self.sync.collection

    @property
    def location(self) -> str:
        return self.sync.location

    async def run(self, fn: Callable[[], T]) -> T:
        """Runs fn on the store thread; the engine's errors as the gateway's."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn)
        except ImgsearchError:
            raise
        except d.ModelMismatch as exc:
            raise FailedPrecondition(str(exc)) from exc
        except d.StoreUnavailable as exc:
            raise Unavailable(str(exc)) from exc
        except (d.InvalidFilter, d.InvalidPointId) as exc:
            raise InvalidInput(str(exc)) from exc
        except d.PointNotFound as exc:
            raise NotFound(str(exc)) from exc

    open = _mirror(VectorStore.open)
    get = _mirror(VectorStore.get)
    upsert = _mirror(VectorStore.upsert)
    set_payload = _mirror(VectorStore.set_payload)
    set_caption = _mirror(VectorStore.set_caption)
    search = _mirror(VectorStore.search)
    search_caption = _mirror(VectorStore.search_caption)
    search_hybrid = _mirror(VectorStore.search_hybrid)
    delete_ids = _mirror(VectorStore.delete_ids)
    delete_filter = _mirror(VectorStore.delete_filter)
    count = _mirror(VectorStore.count)
    scroll = _mirror(VectorStore.scroll)
    search_groups = _mirror(VectorStore.search_groups)
    search_ordered = _mirror(VectorStore.search_ordered)

    async def close(self) -> None:
        """Closes the store on its thread, then ends the thread pool."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self.sync.close)
        self._pool.shutdown(wait=True)
