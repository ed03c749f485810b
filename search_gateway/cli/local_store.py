"""The embedded store, for the CLI's maintenance reads and writes (id prefixes,
dry runs, enriching): things the gateway's gRPC contract does not offer, so
they work embedded only. One place that knows how the core exposes its store."""

from __future__ import annotations

from typing import Any

from imgsearch.errors import InvalidInput
from search_gateway.cli.connect import GatewayAPI


def is_embedded(api: GatewayAPI) -> bool:
    return hasattr(api, "store_call") or hasattr(api, "store")


async def store(api: GatewayAPI, method: str, *args: Any, purpose: str = "this") -> Any:
    """Runs a VectorStore method on the core's store thread (embedded only)."""
    call = getattr(api, "store_call", None)
    if call is not None:
        return await call(method, *args)
    typed = getattr(api, "store", None)  # an AsyncStore: the same methods, awaitable
    if typed is not None:
        return await getattr(typed, method)(*args)
    raise InvalidInput(f"{purpose} works with the embedded index, not through --gateway")
