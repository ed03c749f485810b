"""Ctrl-C for CLI commands: the first one stops, the second one quits.

A command that has work worth finishing (`index`, `serve`, `watch`) enters
`graceful(...)`: the first SIGINT/SIGTERM then only sets the returned event,
and the command stops feeding new work, keeps what was acknowledged, prints a
summary and returns. Every other command (a query, stats) has nothing to
save, so the first signal ends it at once. A second signal always ends the
process at once (the signal's default action: the shell shows exit 130),
whatever a model thread is busy with: Python cannot interrupt a thread inside
a torch call, so waiting for one would make Ctrl-C hang until the batch (or
the model load) finishes.

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
# After the first Ctrl-C: how long the work already in flight (images in the
# pipeline, a video's frames) may take to be stored before the rest is
# abandoned (the issue asks for exit within 2 s).
STOP_GRACE_S = 1.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Shutdown:
    """Signal state of one CLI command.

    With a loop (an ordinary CLI process) it owns SIGINT/SIGTERM: outside
    `graceful` they keep the default action, so the kernel ends the process
    at once whatever its threads are doing; inside, the first signal sets
    `requested` and restores the default action, so the second one is again
    the kernel's immediate exit (a Python handler would have to wait for the
    main thread, which a loaded machine or a busy loop delays by seconds).
    Without a loop (the warm daemon) signals arrive as messages: on_signal is
    called directly and `quit` cancels the command instead.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.requested = asyncio.Event()
        self.signals = 0
        self._graceful: str | None = None
        self._loop = loop
        self.quit: Callable[[], None] = quit_now

    @property
    def interrupted(self) -> bool:
        return self.signals > 0

    def on_signal(self) -> None:
        self.signals += 1
        if self.signals > 1 or self._graceful is None:
            self.quit()
            return
        self._default_signals()  # the next Ctrl-C ends the process at once
        _say(self._graceful)
        self.requested.set()

    @contextlib.contextmanager
    def graceful(self, message: str) -> Iterator[asyncio.Event]:
        """Within: the first signal sets the event (and prints message)."""
        previous, self._graceful = self._graceful, message
        if self._loop is not None and previous is None and not self.signals:
            for sig in _SIGNALS:
                self._loop.add_signal_handler(sig, self.on_signal)
        try:
            yield self.requested
        finally:
            self._graceful = previous
            if previous is None:
                self._default_signals()

    def _default_signals(self) -> None:
        if self._loop is None:
            return
        for sig in _SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.remove_signal_handler(sig)
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(sig, signal.SIG_DFL)


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
        _current = Shutdown(asyncio.get_running_loop())
        _current._default_signals()  # SIGINT ends a query at once
        return await command()

    try:
        return asyncio.run(main())
    finally:
        _current = None


async def run_until_stopped(work: Awaitable[object], stop: asyncio.Event, grace_s: float) -> bool:
    """Runs work; after stop is set, lets it finish for grace_s, then cancels
    it. True when it ran to the end."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=grace_s)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return False
        task.result()  # errors of the work surface here
        return not stop.is_set()
    finally:
        stopped.cancel()


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
