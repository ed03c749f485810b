"""TenantScope: one caller's view of the store, so tenant scoping cannot be forgotten.

With API keys mapped to tenants, every point carries its tenant in the
payload and its id is derived from (tenant, image hash): the same image of
two tenants is two points. Core, ingest and the caption backfill reach the
store only through a TenantScope, whose methods add the tenant to every
filter, drop other tenants' points from every read, delete only owned
points and stamp the tenant on every write. A store method added to the
gateway is added here, where the rule stands next to it. With tenancy off
(tenant None) every method passes straight through.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Any, Concatenate, ParamSpec, TypeVar

from imgsearch.errors import InvalidInput, NotFound
from search_gateway import domain as d
from search_gateway.store.async_store import AsyncStore

P = ParamSpec("P")
T = TypeVar("T")


def _filtered(
    method: Callable[Concatenate[AsyncStore, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[TenantScope, P], Coroutine[Any, Any, T]]:
    """A store method as the scope runs it: same parameters, its `filter` scoped."""
    signature = inspect.signature(method)
    if "filter" not in signature.parameters:
        raise TypeError(f"{method.__name__} has no filter to scope")

    async def call(self: TenantScope, /, *args: P.args, **kwargs: P.kwargs) -> T:
        bound = signature.bind(self.store, *args, **kwargs)
        bound.arguments["filter"] = self.filter(bound.arguments.get("filter"))
        return await method(*bound.args, **bound.kwargs)

    call.__name__ = call.__qualname__ = method.__name__
    call.__doc__ = method.__doc__
    return call


class TenantScope:
    """The store as one tenant sees it (all of it when tenant is None)."""

    def __init__(self, store: AsyncStore, tenant: str | None) -> None:
        self.store = store
        self.tenant = tenant

    # --- the rules -------------------------------------------------------------

    def filter(self, flt: d.Filter | None) -> d.Filter | None:
        """flt restricted to this tenant's points (unchanged when tenancy is off)."""
        return d.scoped(flt, self.tenant)

    def owns(self, point: d.StoredPoint) -> bool:
        return self.tenant is None or point.payload.get(d.TENANT) == self.tenant

    def point_id(self, sha256_hex: str) -> str:
        """The id of an image within this tenant."""
        return d.tenant_point_id(sha256_hex, self.tenant)

    def check_metadata(self, metadata: dict[str, Any]) -> None:
        """InvalidInput when a caller tries to set the tenant itself."""
        if self.tenant is not None and d.TENANT in metadata:
            raise InvalidInput("metadata key 'tenant' is set by the gateway from your API key")

    def stamp(self, point: d.StoredPoint) -> d.StoredPoint:
        """The point with this tenant in its payload."""
        if self.tenant is None or point.payload.get(d.TENANT) == self.tenant:
            return point
        return replace(point, payload={**point.payload, d.TENANT: self.tenant})

    # --- the store, scoped ----------------------------------------------------------

    async def get(self, ids: Sequence[str], with_vectors: bool = False) -> list[d.StoredPoint]:
        """Points by id; other tenants' points are left out as if unknown."""
        return [p for p in await self.store.get(ids, with_vectors) if self.owns(p)]

    async def upsert(self, points: Sequence[d.StoredPoint]) -> None:
        await self.store.upsert([self.stamp(p) for p in points])

    async def set_payload(self, point_id: str, fields: dict[str, Any]) -> None:
        await self._check_owned(point_id)
        await self.store.set_payload(point_id, fields)

    async def set_caption(self, point_id: str, caption: str, model: str) -> None:
        await self._check_owned(point_id)
        await self.store.set_caption(point_id, caption, model)

    async def delete_ids(self, ids: Sequence[str]) -> int:
        """Deletes the owned points among ids; returns how many existed."""
        wanted = list(ids)
        if self.tenant is not None:
            wanted = [p.id for p in await self.get(wanted)]
        return await self.store.delete_ids(wanted)

    async def _check_owned(self, point_id: str) -> None:
        if self.tenant is not None and not await self.get([point_id]):
            raise NotFound(f"no point with id {point_id}")  # same answer for foreign ids

    # Methods with a `filter` parameter: the store's own, with the filter scoped.
    count = _filtered(AsyncStore.count)
    scroll = _filtered(AsyncStore.scroll)
    search = _filtered(AsyncStore.search)
    search_caption = _filtered(AsyncStore.search_caption)
    search_hybrid = _filtered(AsyncStore.search_hybrid)
    delete_filter = _filtered(AsyncStore.delete_filter)
    search_groups = _filtered(AsyncStore.search_groups)
    search_ordered = _filtered(AsyncStore.search_ordered)
