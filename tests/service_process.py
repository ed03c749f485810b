"""A model service as its own process (`python -m <service>`), for the tests
that check start-up and the SIGTERM drain of the real entry point."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def serve_then_sigterm(args: list[str], env: dict[str, str], ready: str) -> str:
    """Starts `python <args>`, waits for `ready` on its stderr, sends SIGTERM,
    checks it exits 0 and returns what it logged after the signal."""
    proc = subprocess.Popen([sys.executable, *args], env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.time() + 120
    lines = []
    while time.time() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if ready in line or proc.poll() is not None:
            break
    assert any(ready in line for line in lines), "".join(lines)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    rest = proc.stderr.read()
    proc.stderr.close()
    return rest
