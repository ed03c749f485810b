"""The lifecycle every model wrapper shares (as in Immich's InferenceModel):
an idempotent, thread-safe `load()` wrapping `_load()`, then `warmup()`, so
servers can report NOT_SERVING until both are done and in-process users can
call `load()` lazily."""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod

log = logging.getLogger(__name__)

# One model builds at a time in a process: transformers' from_pretrained
# initialises on the meta device, and two models loading in two threads at once
# fail ("Cannot copy out of meta tensor"). Embedded mode loads BLIP and the
# re-rank matcher lazily in different threads, so the guard lives here.
_BUILD_LOCK = threading.Lock()


class InferenceModel(ABC):
    """Base class for model wrappers."""

    def __init__(self) -> None:
        self._load_lock = threading.Lock()
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        """Loads weights once; later calls return at once."""
        if self._loaded:
            return
        with self._load_lock:
            if self._loaded:
                return
            started = time.perf_counter()
            with _BUILD_LOCK:
                self._load()
            self._loaded = True
            log.info("%s loaded in %.1f s", self.describe(), time.perf_counter() - started)

    def warmup(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Runs one small inference so the first real request is not slow."""

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def describe(self) -> str:
        """One line naming the model, for logs."""
