"""How the ingest stages reach the store.

`StoreCall` runs a VectorStore method by name on the store thread and maps
its errors to ImgsearchError (GatewayCore.store_call). The few store
operations ingest needs are named here, so the stages say what they do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgsearch.errors import TooLarge
from search_gateway import domain as d

# A point's `paths` (uris of the same content) is bounded like every string
# the client controls, so one hit always fits in a response.
MAX_PATHS_PER_POINT = 100

StoreCall = Callable[..., Any]  # runs a store method off the event loop, mapping errors


async def add_path(store_call: StoreCall, point_id: str, uri: str) -> bool | None:
    """Records `uri` in a stored point's `paths`: True when added, False when
    it was there already, None when there is no such point."""
    points = await store_call("get", [point_id])
    if not points:
        return None
    payload = points[0].payload
    paths = list(payload.get(d.PATHS) or [payload.get(d.PATH)])
    if uri in paths:
        return False
    if len(paths) >= MAX_PATHS_PER_POINT:
        raise too_many_paths(point_id)
    paths.append(uri)
    await store_call("set_payload", point_id, {d.PATHS: paths})
    return True


def too_many_paths(point_id: str) -> TooLarge:
    return TooLarge(
        f"point {point_id} already records {MAX_PATHS_PER_POINT} uris for this content "
        "(the limit); this uri was not recorded"
    )
