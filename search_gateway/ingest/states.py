"""The named states an image passes through in the ingest pipeline.

Each stage takes a batch (a list of states, in stream order) and returns the
same positions in their next state, so what an item *is* at any point is its
type rather than a combination of fields (the old `_Work.vector is None`
meaning "exact duplicate").

    read and hash      IngestItem | ReadyImage -> Loaded | Settled
    exact duplicates   Loaded -> NewImage | StoredCopy | CopyInBatch | CopyInFlight | Settled
    embed and caption  NewImage -> Embedded | Settled
    near-duplicates    Embedded -> Embedded (duplicate_of set) | Settled
    write              everything -> Settled
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.images import ImageHeader
from search_gateway.ingest.items import (
    FrameRef,
    IngestItem,
    IngestOutcome,
    IngestStatus,
    ReadyImage,
)

Source: TypeAlias = IngestItem | ReadyImage


@dataclass(frozen=True)
class Settled:
    """Final: this item's outcome is decided (failed, or nothing to do)."""

    outcome: IngestOutcome


def failed(
    index: int, exc: BaseException | str, code: str = "INVALID_ARGUMENT", id: str = "",
    uri: str = "",
) -> Settled:  # fmt: skip
    """A FAILED outcome; an ImgsearchError brings its own status code."""
    if isinstance(exc, ImgsearchError):
        code = exc.status_name
    return Settled(IngestOutcome(index, IngestStatus.FAILED, id, uri, reason=str(exc),
                                 error_code=code))  # fmt: skip


@dataclass(frozen=True)
class Loaded:
    """Bytes in hand, hashed, header read (no pixels decoded yet)."""

    index: int
    data: bytes
    uri: str
    sha256: str
    id: str
    header: ImageHeader
    metadata: dict[str, Any]
    with_captions: bool
    near_duplicate_threshold: float
    frame: FrameRef | None = None
    frame_change_threshold: float | None = None

    def fail(self, exc: BaseException | str, code: str = "INVALID_ARGUMENT") -> Settled:
        return failed(self.index, exc, code, self.id, self.uri)

    def settle(self, status: IngestStatus, duplicate_of: str = "", **extra: Any) -> Settled:
        return Settled(IngestOutcome(self.index, status, self.id, self.uri, duplicate_of, **extra))


@dataclass(eq=False)
class NewImage:
    """Content not stored yet, first of its kind in this stream: it needs the models.

    `extra_paths` collects the uris of later copies in the same batch (written
    with it); `written` resolves to its outcome once the write stage is done,
    for copies in later batches that were read while it was in flight.
    """

    loaded: Loaded
    extra_paths: list[str] = field(default_factory=list)
    written: asyncio.Future[IngestOutcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, settled: Settled) -> Settled:
        """Its final state; copies waiting on it learn its outcome."""
        if not self.written.done():
            self.written.set_result(settled.outcome)
        return settled


@dataclass(frozen=True)
class StoredCopy:
    """Content already stored under another uri: only this uri is added to its `paths`."""

    loaded: Loaded


@dataclass(frozen=True)
class CopyInBatch:
    """Same content as an earlier new image of this batch, at another uri
    (recorded in that image's `extra_paths`); shares its fate."""

    loaded: Loaded
    first: NewImage


@dataclass(frozen=True)
class CopyInFlight:
    """Same content as a new image of an earlier batch that was not yet
    written when this one was looked up; settled after that write."""

    loaded: Loaded
    first: NewImage


@dataclass
class Embedded:
    """A new image with its vector (and caption, when one was asked for and made)."""

    new: NewImage
    vector: np.ndarray
    caption: str | None = None
    caption_model: str = ""
    caption_pending: bool = False
    duplicate_of: str = ""  # set by the near-duplicate stage

    @property
    def loaded(self) -> Loaded:
        return self.new.loaded


State: TypeAlias = Settled | Loaded | NewImage | StoredCopy | CopyInBatch | CopyInFlight | Embedded


def index_of(state: State) -> int:
    if isinstance(state, Settled):
        return state.outcome.index
    return state.loaded.index if not isinstance(state, Loaded) else state.index
