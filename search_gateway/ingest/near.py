"""Stage 4, near-duplicates: an image whose nearest neighbour (a stored point
or an earlier image of the same batch) has cosine >= its threshold is stored
with `duplicate_of` set to that neighbour's representative (the neighbour
itself, or what it is marked a duplicate of), so marks never form chains.

The store search sees every earlier batch: the write stage runs batches in
order, and this stage of batch N+1 starts only after batch N is written.
"""

from __future__ import annotations

import numpy as np

from imgsearch.errors import ImgsearchError
from search_gateway import domain as d
from search_gateway.ingest.states import Embedded, State
from search_gateway.tenancy import TenantScope


async def mark_near_duplicates(batch: list[State], scope: TenantScope) -> list[State]:
    """Sets `duplicate_of` on Embedded images that have a near neighbour."""
    out: list[State] = []
    accepted: list[Embedded] = []
    for s in batch:
        if not isinstance(s, Embedded):
            out.append(s)
            continue
        threshold = s.loaded.near_duplicate_threshold
        if threshold > 0:
            best_id, best = "", -1.0
            for earlier in accepted:
                score = float(np.dot(earlier.vector, s.vector))
                if score > best:  # point at the group's representative, not a chain
                    best_id, best = earlier.duplicate_of or earlier.loaded.id, score
            try:
                hits = await scope.search(s.vector, 1, 0, threshold)
            except ImgsearchError as exc:
                out.append(s.new.settle(s.loaded.fail(exc)))
                continue
            if hits and hits[0].score > best:
                found = hits[0].payload
                representative = found.get(d.NEAR_GROUP) or found.get(d.DUPLICATE_OF) or hits[0].id
                best_id, best = str(representative), hits[0].score
            if best >= threshold and best_id != s.loaded.id:
                s.duplicate_of = best_id
        accepted.append(s)
        out.append(s)
    return out
