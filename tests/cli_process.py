"""The `imgsearch` CLI as its own process, as a user runs it."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping


async def run_imgsearch(
    env: Mapping[str, str], *args: str, timeout_s: float
) -> tuple[int, str, str]:
    """Runs `python -m search_gateway.cli ARGS` with `env`; its exit status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "search_gateway.cli", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def read_stderr_until(
    proc: subprocess.Popen[str], reached: Callable[[str], bool], what: str, timeout: float = 240
) -> str:
    """Reads a running CLI's stderr (its progress) until `reached(all read so far)`;
    returns what was read. Raw reads, so a progress bar's carriage returns count."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536).decode(errors="replace")
            if not chunk:
                break
            seen += chunk
            if reached(seen):
                return seen
    raise AssertionError(f"no progress to {what}: {seen[-2000:]}")


def ctrl_c_twice(proc: subprocess.Popen[str]) -> float:
    """Presses Ctrl-C twice, as an impatient user does; the seconds from the
    second press to the process's end. The second press is the signal's default
    action (the shell shows 130)."""
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)  # two signals sent back to back may arrive as one
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    proc.communicate(timeout=30)
    assert proc.returncode in (130, -signal.SIGINT)
    return time.monotonic() - sent
