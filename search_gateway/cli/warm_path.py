"""The warm client's short path: when a warm daemon serves the data folder,
hand it the raw argv before importing the parser, the settings (pydantic,
gRPC) or anything else; the daemon parses, runs and reports usage errors.
Everything here is the standard library, so a warm command costs the client
little more than starting Python.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from search_gateway.cli import daemon
from search_gateway.data_dir import default_data_dir

# Commands the daemon runs (app.DAEMON_COMMANDS; a test keeps them equal).
ROUTED = frozenset({"index", "recaption", "query", "similar", "get", "delete", "stats"})
# Top-level options that take a value (so their value is not the command).
_VALUED = frozenset(
    {
        "--gateway", "--api-key", "--tls-ca", "--data-dir", "--collection", "--qdrant-url",
        "--model", "--pretrained", "--caption-model", "--device", "--embedder", "--captioner",
        "--warm-idle",
    }
)  # fmt: skip


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand word in argv (None for --help and the like)."""
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in _VALUED:
            skip = True
        elif not token.startswith("-"):
            return token
    return None


def data_dir_of(argv: Sequence[str]) -> str:
    """--data-dir (anywhere, last wins) > IMGSEARCH_DATA_DIR > the default,
    the settings' own precedence."""
    found: str | None = None
    for i, token in enumerate(argv):
        if token == "--data-dir" and i + 1 < len(argv):
            found = argv[i + 1]
        elif token.startswith("--data-dir="):
            found = token.split("=", 1)[1]
    return found or os.environ.get("IMGSEARCH_DATA_DIR") or default_data_dir()


def try_warm(argv: Sequence[str]) -> int | None:
    """The exit code when a live warm daemon ran the command, else None."""
    if command_of(argv) not in ROUTED or any(
        t == "--gateway" or t.startswith("--gateway=") for t in argv
    ):
        return None
    sock = daemon.connect(daemon.socket_path(data_dir_of(argv)))
    if sock is None:
        return None
    return daemon.run_remote(sock, argv)
