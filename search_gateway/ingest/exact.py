"""Stage 2, exact duplicates: content already stored, or seen earlier in the
stream, costs no model work.

The point id derives from the content, so one lookup by id answers "stored
already?". The same uri again is ALREADY_PRESENT; a new uri is recorded in
the existing point's `paths` (DUPLICATE). Within a batch the first copy is
the new image and later copies ride along as extra paths.

With stages overlapped, batch N+1 is looked up while batch N is still being
embedded or written, so the store cannot answer for batch N's images yet:
`InFlight` holds the new images of batches not yet written, and is consulted
*before* the store. An image leaves InFlight only after its point is
written, so anything not found in InFlight was either never in flight or is
already visible to the store lookup that follows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from imgsearch.errors import ImgsearchError
from search_gateway import domain as d
from search_gateway.ingest.items import IngestStatus
from search_gateway.ingest.states import (
    CopyInBatch,
    CopyInFlight,
    Loaded,
    NewImage,
    State,
    StoredCopy,
)
from search_gateway.ingest.store import MAX_PATHS_PER_POINT, too_many_paths
from search_gateway.tenancy import TenantScope


class InFlight:
    """New images of this stream whose batch is not written yet, by point id."""

    def __init__(self) -> None:
        self._by_id: dict[str, NewImage] = {}

    def find(self, point_id: str) -> NewImage | None:
        return self._by_id.get(point_id)

    def add(self, news: Iterable[NewImage]) -> None:
        for new in news:
            self._by_id[new.loaded.id] = new

    def remove(self, news: Iterable[NewImage]) -> None:
        for new in news:
            if self._by_id.get(new.loaded.id) is new:
                del self._by_id[new.loaded.id]


def stored_paths(payload: dict[str, Any]) -> list[str]:
    """The uris a stored point is known under."""
    return list(payload.get(d.PATHS) or [payload.get(d.PATH)])


async def find_exact_duplicates(
    batch: list[State], scope: TenantScope, in_flight: InFlight
) -> list[State]:
    """Each Loaded image as NewImage, StoredCopy, CopyInBatch, CopyInFlight,
    or settled as ALREADY_PRESENT; the batch's new images join `in_flight`."""
    loaded = [s for s in batch if isinstance(s, Loaded)]
    if not loaded:
        return batch
    # In flight first, then the store (see the module docstring for why).
    flying = {s.id: new for s in loaded if (new := in_flight.find(s.id)) is not None}
    ask = list(dict.fromkeys(s.id for s in loaded if s.id not in flying))
    try:
        stored = {p.id: p for p in await scope.get(ask)} if ask else {}
    except ImgsearchError as exc:
        return [s.fail(exc) if isinstance(s, Loaded) else s for s in batch]
    first_in_batch: dict[str, NewImage] = {}
    out: list[State] = []
    for s in batch:
        if not isinstance(s, Loaded):
            out.append(s)
            continue
        point = stored.get(s.id)
        if point is not None:
            if s.uri in stored_paths(point.payload):
                out.append(s.settle(IngestStatus.ALREADY_PRESENT))
            else:
                out.append(StoredCopy(s))
        elif s.id in flying:
            out.append(CopyInFlight(s, flying[s.id]))
        elif s.id in first_in_batch:
            first = first_in_batch[s.id]
            if s.uri != first.loaded.uri and s.uri not in first.extra_paths:
                if len(first.extra_paths) + 1 >= MAX_PATHS_PER_POINT:
                    out.append(s.fail(too_many_paths(s.id)))
                    continue
                first.extra_paths.append(s.uri)
                out.append(CopyInBatch(s, first))
            else:
                out.append(s.settle(IngestStatus.ALREADY_PRESENT))
        else:
            first_in_batch[s.id] = NewImage(s)
            out.append(first_in_batch[s.id])
    in_flight.add(first_in_batch.values())
    return out
