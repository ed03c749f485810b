"""Ctrl-C for CLI commands: the first one stops, the second one quits.

A command that has work worth finishing (`index`, `serve`, `watch`) enters
`graceful(...)`: the first SIGINT/SIGTERM then only sets the returned event,
and the command stops feeding new work, keeps what was acknowledged, prints a
summary and returns. Every other command (a query, stats) has nothing to
save, so the first signal ends it at once. A second signal always ends the
process at once (exit 130), whatever a model thread is busy with: Python
cannot interrupt a thread inside a torch call, so waiting for one would make
Ctrl-C hang until the batch (or the model load) finishes.

Why os._exit: a normal exit joins the executor threads, i.e. waits for the
very batch the user wanted to abandon. Commands that stop gracefully close
their store first (so every acknowledged point is on disk) and then exit the
same way (`finish`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

EXIT_INTERRUPTED = 130


class Shutdown:
    """Signal state of one CLI command run on one event loop."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.signals = 0
        self._graceful: str | None = None
        # What "at once" means: end the process (the daemon replaces it with
        # cancelling the one command it runs for a client).
        self.quit: Callable[[], None] = quit_now

    @property
    def interrupted(self) -> bool:
        return self.signals > 0

    def on_signal(self) -> None:
        self.signals += 1
        if self.signals > 1 or self._graceful is None:
            self.quit()
            return
        _say(self._graceful)
        self.requested.set()

    @contextlib.contextmanager
    def graceful(self, message: str) -> Iterator[asyncio.Event]:
        """Within: the first signal sets the event (and prints message)."""
        previous, self._graceful = self._graceful, message
        try:
            yield self.requested
        finally:
            self._graceful = previous


_current: Shutdown | None = None


def current() -> Shutdown:
    """The running command's Shutdown (a fresh, uninstalled one outside main)."""
    global _current
    if _current is None:
        _current = Shutdown()
    return _current


@contextlib.contextmanager
def graceful(message: str) -> Iterator[asyncio.Event]:
    """Shortcut for current().graceful(message)."""
    with current().graceful(message) as event:
        yield event


def install(state: Shutdown | None) -> None:
    """Makes state the running command's Shutdown (the daemon, per command)."""
    global _current
    _current = state


def run(command: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run(command()) with the two-step Ctrl-C installed."""
    global _current

    async def main() -> T:
        global _current
        _current = Shutdown()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not main thread
                loop.add_signal_handler(sig, _current.on_signal)
        try:
            return await command()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)

    try:
        return asyncio.run(main())
    finally:
        _current = None


def quit_now(code: int = EXIT_INTERRUPTED) -> None:
    """Ends the process at once (no thread joins)."""
    _say("interrupted")
    finish(code)


def finish(code: int) -> None:
    """Flushes stdout/stderr and exits without waiting for worker threads."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _say(text: str | None) -> None:
    if text:
        with contextlib.suppress(Exception):
            sys.stderr.write(f"\n{text}\n")
            sys.stderr.flush()
