"""The `imgsearch` CLI as its own process, as a user runs it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping


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
