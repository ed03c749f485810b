"""The store operation ingest composes from the caller's TenantScope: recording
another uri of stored content, within the bound on a point's uris."""

from __future__ import annotations

from imgsearch.errors import TooLarge
from search_gateway import domain as d
from search_gateway.tenancy import TenantScope

# A point's `paths` (uris of the same content) is bounded like every string
# the client controls, so one hit always fits in a response.
MAX_PATHS_PER_POINT = 100


async def add_path(scope: TenantScope, point_id: str, uri: str) -> bool | None:
    """Records `uri` in a stored point's `paths`: True when added, False when
    it was there already, None when there is no such point."""
    points = await scope.get([point_id])
    if not points:
        return None
    payload = points[0].payload
    paths = list(payload.get(d.PATHS) or [payload.get(d.PATH)])
    if uri in paths:
        return False
    if len(paths) >= MAX_PATHS_PER_POINT:
        raise too_many_paths(point_id)
    paths.append(uri)
    await scope.set_payload(point_id, {d.PATHS: paths})
    return True


def too_many_paths(point_id: str) -> TooLarge:
    return TooLarge(
        f"point {point_id} already records {MAX_PATHS_PER_POINT} uris for this content "
        "(the limit); this uri was not recorded"
    )
