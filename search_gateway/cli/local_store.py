"""The embedded store, for the CLI's maintenance reads and writes (id prefixes,
dry runs, enriching): things the gateway's gRPC contract does not offer, so
they work embedded only. One place that knows how the core exposes its store,
and it hands out the typed `TenantScope` (never a method name as a string)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from imgsearch.errors import InvalidInput

if TYPE_CHECKING:  # the CLI's fast paths must not import the store engines
    from search_gateway.store.async_store import AsyncStore
    from search_gateway.tenancy import TenantScope


@runtime_checkable
class LocalIndex(Protocol):
    """What an embedded GatewayCore offers beyond the gRPC contract."""

    store: AsyncStore

    def scope(self, tenant: str | None) -> TenantScope: ...


def is_embedded(api: object) -> bool:
    return isinstance(api, LocalIndex)


def local_scope(api: object, purpose: str = "this") -> TenantScope:
    """The whole embedded index (no tenant: the CLI owns its data folder)."""
    if isinstance(api, LocalIndex):
        return api.scope(None)
    raise InvalidInput(f"{purpose} works with the embedded index, not through --gateway")
