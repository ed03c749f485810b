"""Runs an asyncio gRPC server on its own event loop in a background thread,
so synchronous tests (hypothesis) can call it with a plain sync channel."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any


class ServerThread:
    def __init__(self, start: Callable[[], Awaitable[Any]]) -> None:
        self._start = start
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: Any = None

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self.server = self.run(self._start())
        return self

    def run(self, coro: Awaitable[Any], timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self.server.stop(1))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
