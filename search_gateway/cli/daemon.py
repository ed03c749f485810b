"""The warm local daemon: commands answered by a process that already has the
model loaded and the index open.

Why: a CLI process pays for importing torch and open_clip and loading CLIP on
every query (seconds). With `--warm` (or IMGSEARCH_WARM=1) the first command
starts `imgsearch daemon` in the background; it listens on a unix socket in
the data folder (only the user can open it: the folder and socket are 0700 /
0600) and exits after `--idle` seconds without a command (default 900). Every
later command for that data folder, warm flag or not, runs inside it: the
client sends its argv, working directory and IMGSEARCH_*/HF_* environment;
the daemon runs the very same command code (one at a time) with stdout and
stderr streamed back, and the exit code. Ctrl-C in the client is forwarded
(first: the command stops gracefully; second: the client quits at once).

While a daemon is alive it owns the data folder (the embedded store allows
one process), so clients always go through it; `imgsearch daemon stop` ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from search_gateway.cli import shutdown

DEFAULT_IDLE_S = 900.0
SOCKET_NAME = "cli.sock"
START_TIMEOUT_S = 60.0
_FORWARDED_ENV = ("IMGSEARCH_", "HF_", "TRANSFORMERS_", "OMP_NUM_THREADS")


def socket_path(data_dir: str) -> Path:
    """<data_dir>/cli.sock, or a per-user path in /tmp when that is too long
    for a unix socket address (108 bytes)."""
    path = Path(data_dir).expanduser().resolve() / SOCKET_NAME
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(f"/tmp/imgsearch-{os.getuid()}-{digest}.sock")


def forwarded_env(env: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_FORWARDED_ENV)}


# -- client --------------------------------------------------------------------------
def connect(path: Path) -> socket.socket | None:
    """A connection to a live daemon, or None."""
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def start_daemon(data_dir: str, idle_s: float) -> socket.socket:
    """Starts `imgsearch daemon` in its own session; waits for its socket."""
    path = socket_path(data_dir)
    folder = Path(data_dir).expanduser()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = open(folder / "daemon.log", "ab")  # noqa: SIM115 - handed to the child
    argv = [sys.executable, "-m", "search_gateway.cli", "--data-dir", data_dir, "daemon"]
    subprocess.Popen(
        [*argv, "--idle", str(idle_s)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        close_fds=True,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        sock = connect(path)
        if sock is not None:
            return sock
        time.sleep(0.05)
    raise RuntimeError(f"the warm daemon did not start; see {folder / 'daemon.log'}")


def run_remote(sock: socket.socket, argv: Sequence[str]) -> int:
    """Runs argv in the daemon; relays its output; forwards Ctrl-C."""
    request = {"argv": list(argv), "cwd": os.getcwd(), "env": forwarded_env()}
    sock.sendall(json.dumps(request).encode() + b"\n")
    interrupts = 0

    def on_sigint(_signum: int, _frame: Any) -> None:
        nonlocal interrupts
        interrupts += 1
        with contextlib.suppress(OSError):
            sock.sendall(b'{"signal": "INT"}\n')
        if interrupts > 1:
            shutdown.quit_now()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        reader = sock.makefile("r", encoding="utf-8")
        for line in reader:
            frame = json.loads(line)
            if "out" in frame:
                sys.stdout.write(frame["out"])
                sys.stdout.flush()
            elif "err" in frame:
                sys.stderr.write(frame["err"])
                sys.stderr.flush()
            elif "exit" in frame:
                return int(frame["exit"])
        print("error: the warm daemon went away during the command", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, previous)
        sock.close()


# -- server --------------------------------------------------------------------------
class _Stream(io.TextIOBase):
    """A text stream that sends what is written as {"out"|"err": text} frames."""

    def __init__(self, writer: asyncio.StreamWriter, key: str) -> None:
        self.writer = writer
        self.key = key

    def write(self, text: str) -> int:
        if text and not self.writer.is_closing():
            self.writer.write(json.dumps({self.key: text}).encode() + b"\n")
        return len(text)

    def isatty(self) -> bool:
        return False


class Daemon:
    """Serves CLI commands on a unix socket until idle for idle_s."""

    def __init__(
        self,
        path: Path,
        idle_s: float,
        parse: Callable[[Sequence[str]], argparse.Namespace],
        run: Callable[[argparse.Namespace], Awaitable[int]],
    ) -> None:
        self.path = path
        self.idle_s = idle_s
        # The CLI's parser and its error-handling runner, passed in (so this
        # module does not import the parser module back).
        self.parse = parse
        self.run = run
        self.env = forwarded_env()
        self.lock = asyncio.Lock()
        self.last_used = time.monotonic()
        self.stop = asyncio.Event()

    async def serve(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old_umask = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._client, str(self.path))
        finally:
            os.umask(old_umask)
        print(f"imgsearch daemon on {self.path} (idle exit {self.idle_s:.0f} s)", flush=True)
        try:
            while not self.stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), 5.0)
                if not self.lock.locked() and time.monotonic() - self.last_used > self.idle_s:
                    break
        finally:
            # Stop accepting, release the store, then remove the socket: once it
            # is gone, a plain CLI process can open the data folder.
            server.close()
            from search_gateway.cli.connect import close_kept

            try:
                await close_kept()
            finally:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            if not line:
                return
            request = json.loads(line)
            if request.get("stop"):
                writer.write(b'{"exit": 0}\n')
                self.stop.set()
                return
            if request.get("status"):
                writer.write(json.dumps({"out": f"daemon pid {os.getpid()}\n"}).encode() + b"\n")
                writer.write(b'{"exit": 0}\n')
                return
            code = await self._command(request, reader, writer)
            writer.write(json.dumps({"exit": code}).encode() + b"\n")
        finally:
            self.last_used = time.monotonic()
            with contextlib.suppress(Exception):
                await writer.drain()
                writer.close()

    async def _command(
        self,
        request: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> int:
        out, err = _Stream(writer, "out"), _Stream(writer, "err")
        if request.get("env") != self.env:
            err.write(
                "error: the warm daemon for this data folder runs with other IMGSEARCH_*/HF_* "
                "settings; stop it with `imgsearch daemon stop` and run again\n"
            )
            return 2
        async with self.lock:
            state = shutdown.Shutdown()
            task: asyncio.Task[Any] | None = None

            def cancel() -> None:
                if task is not None:
                    task.cancel()

            state.quit = cancel
            watcher = asyncio.ensure_future(_forward_signals(reader, state))
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    try:
                        args = self.parse(request["argv"])
                    except SystemExit as exc:  # --help, or a usage error (already printed)
                        return int(exc.code or 0)
                    os.chdir(request["cwd"])
                    shutdown.install(state)
                    task = asyncio.ensure_future(self.run(args))
                    try:
                        return int(await task)
                    except asyncio.CancelledError:
                        print("interrupted", file=sys.stderr)
                        return shutdown.EXIT_INTERRUPTED
            finally:
                shutdown.install(None)
                watcher.cancel()


async def _forward_signals(reader: asyncio.StreamReader, state: shutdown.Shutdown) -> None:
    while line := await reader.readline():
        if json.loads(line).get("signal") == "INT":
            state.on_signal()


def control(data_dir: str, message: dict[str, Any]) -> int:
    """Sends stop/status to the daemon of data_dir."""
    sock = connect(socket_path(data_dir))
    if sock is None:
        print(f"no warm daemon for {data_dir}")
        return 0 if message.get("stop") else 1
    sock.sendall(json.dumps(message).encode() + b"\n")
    for line in sock.makefile("r", encoding="utf-8"):
        frame = json.loads(line)
        if "out" in frame:
            sys.stdout.write(frame["out"])
        if "exit" in frame:
            if message.get("stop"):
                print("warm daemon stopped")
            return int(frame["exit"])
    return 0
