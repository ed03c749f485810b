"""`near_group` for points stored before it existed, written once at open.

Grouping by near-duplicate cluster asks the engine to group by `near_group`
(Qdrant's query_points_groups), which leaves out points without the field.
The ingest write stage sets it on every new point; points of an older
collection get it here, the first time a store of this version opens it:
the representative's id for a point marked `duplicate_of` (older data may
hold chains A <- B <- C: followed to the end), else the point's own id.

Every later open costs one exact count of points without the field (through
its keyword index: 0.1 ms at 50k points). The backfill pages through only
those points and is idempotent, so an open interrupted half-way finishes the
job at the next open. It writes payload only: vectors and ids stay as they
are. Measured on Qdrant Edge (/work/notes/groups.md): 15 us a point in an
appendable segment, ~180 us in optimized ones (Qdrant moves an updated point
out of an immutable segment), on a loaded 2-core machine: 50k points ~9 s,
so a 1M-point collection pauses its first open for minutes, once; it logs
what it does.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from search_gateway import domain as d

if TYPE_CHECKING:
    from search_gateway.store.policy import PolicyStore

log = logging.getLogger(__name__)

PAGE = 1024
# Longest duplicate_of chain followed (chains come from before marks pointed
# at the representative; a cycle or a longer chain stops at the last point seen).
MAX_CHAIN = 16


def backfill_near_groups(store: PolicyStore[Any]) -> int:
    """Sets `near_group` on every point that lacks it; returns how many."""
    lacking = store._engine_lacking(d.NEAR_GROUP)
    todo = store._engine_count(lacking)
    if todo == 0:
        return 0
    log.info(
        "collection %s: labelling %d point(s) stored before near-duplicate grouping "
        "with their near_group (once)",
        store.collection,
        todo,
    )
    roots: dict[str, str] = {}
    done = 0
    offset: str | None = None
    while True:
        page, offset = store._engine_scroll(lacking, PAGE, offset, with_payload=True)
        by_group: dict[str, list[str]] = {}
        for p in page:
            by_group.setdefault(representative(store, p, roots), []).append(p.id)
        for group, ids in by_group.items():
            store._engine_set_payload(ids, {d.NEAR_GROUP: group})
        done += len(page)
        if offset is None or not page:
            break
    return done


def representative(store: PolicyStore[Any], point: d.StoredPoint, roots: dict[str, str]) -> str:
    """The id of the cluster representative `point` belongs to (cached in roots)."""
    current = _point_id(point.payload.get(d.DUPLICATE_OF))
    if current is None or current == point.id:
        return point.id
    chain: list[str] = []
    root: str | None = None
    for _ in range(MAX_CHAIN):
        if current in roots:
            root = roots[current]
            break
        chain.append(current)
        found = store._engine_retrieve([current], with_payload=True, with_vectors=False)
        if not found:  # the representative was deleted: its cluster keeps its id
            root = current
            break
        payload = found[0].payload
        group = payload.get(d.NEAR_GROUP)
        if isinstance(group, str) and group:
            root = group
            break
        nxt = _point_id(payload.get(d.DUPLICATE_OF))
        if nxt is None or nxt in chain or nxt == point.id:
            root = current
            break
        current = nxt
    if root is None:
        root = current
    for member in chain:
        roots[member] = root
    return root


def _point_id(value: object) -> str | None:
    """A `duplicate_of` value in canonical form; None when unset or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return d.normalize_point_id(value)
    except d.InvalidPointId:
        return None
