"""The files an Edge collection keeps beside its shard: model record and folder lock.

Edge has no collection metadata, so the model record is a small JSON file
next to the shard, written atomically (temp file + rename). And like
qdrant-client's local mode, one process at a time owns a data folder: an
flock on <folder>/.lock says so early and clearly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import IO

from search_gateway import domain as d
from search_gateway.store import model_record as schema

try:  # POSIX: one process per data folder, as qdrant-client local mode enforces
    import fcntl
except ImportError:  # pragma: no cover - Windows relies on Edge's own WAL lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MODEL_RECORD = "imgsearch.json"


def read_record(folder: Path) -> d.CollectionSpec | None:
    """The recorded spec, or None when there is no (readable) record."""
    path = folder / MODEL_RECORD
    try:
        return schema.spec_from_metadata(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("unreadable model record %s: %s", path, exc)
        return None


def write_record(folder: Path, spec: d.CollectionSpec) -> None:
    """Writes the model record atomically: a temp file, fsynced, renamed over."""
    text = json.dumps(schema.spec_to_metadata(spec), indent=2, sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=".imgsearch-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / MODEL_RECORD)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def in_use_message(folder: Path) -> str:
    return (
        f"the Qdrant Edge data folder {folder} is in use by another process; "
        "stop it, or use a Qdrant server (QDRANT_URL) for concurrent access"
    )


class FolderLock:
    """An exclusive flock on <folder>/.lock, held from creation until release()."""

    def __init__(self, folder: Path) -> None:
        self._file: IO[bytes] | None = None
        if fcntl is None:
            return
        f = open(folder / ".lock", "a+b")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            f.close()
            raise d.StoreUnavailable(in_use_message(folder)) from exc
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the flock
            self._file = None
