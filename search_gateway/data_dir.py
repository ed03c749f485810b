"""Where the embedded index lives by default (stdlib only: the CLI's warm
path reads it without importing the settings machinery)."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "imgsearch")
