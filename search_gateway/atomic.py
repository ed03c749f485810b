"""Files the gateway keeps beside its store (caption spool, thumbnails) are
replaced atomically: written to a temp file in the same folder, then renamed
over, so a crash leaves the old copy or the new one, never a torn file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Writes `data` to `path` via a temp file named `.<name>.<random>.tmp` in
    the same folder (hidden, and ending in .tmp, so folder listings can skip
    a leftover one); the temp file is removed if anything fails."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
