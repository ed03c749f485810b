"""API-key authentication and the caller's tenant.

Callers send `authorization: Bearer <key>` (or `x-api-key: <key>`) metadata.
Each key maps to a tenant; the interceptor puts the tenant of the current
call in a context variable that handlers read with `current_tenant()`. Health
and reflection stay open so Kubernetes probes need no key.

Key files have one `<key> <tenant>` pair per line (`#` comments allowed); a
key alone means the tenant "default". Keys are compared in constant time.
"""

from __future__ import annotations

import contextvars
import hmac
from collections.abc import Mapping, Sequence
from pathlib import Path

from imgsearch.errors import Unauthenticated

_TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)

DEFAULT_TENANT = "default"

# Methods anyone may call: probes and service discovery. Full method names
# (/package.Service/Method), so an RPC of ours that happens to be called
# `Check` still needs a key.
OPEN_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    }
)


def is_open(method: str) -> bool:
    """True for the full method names that need no key (health, reflection)."""
    return method in OPEN_METHODS


def current_tenant() -> str | None:
    """The authenticated caller's tenant; None when authentication is off."""
    return _TENANT.get()


def set_tenant(tenant: str | None) -> contextvars.Token[str | None]:
    return _TENANT.set(tenant)


class ApiKeys:
    """Known keys and their tenants."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        if not keys:
            raise ValueError("no API keys given")
        for key in keys:
            if len(key) < 16:
                raise ValueError("API keys must be at least 16 characters long")
        self._keys = [(k.encode(), t) for k, t in keys.items()]

    @classmethod
    def from_file(cls, path: str | Path) -> ApiKeys:
        keys: dict[str, str] = {}
        for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) > 2:
                raise ValueError(f"{path}:{n}: expected '<key> [tenant]'")
            keys[parts[0]] = parts[1] if len(parts) == 2 else DEFAULT_TENANT
        return cls(keys)

    @classmethod
    def single(cls, key: str) -> ApiKeys:
        """One shared key (model services: only the gateway calls them)."""
        return cls({key: ""})

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
        """The tenant of the key in the call's metadata, or Unauthenticated."""
        presented = _presented_key(metadata or ())
        if presented is None:
            raise Unauthenticated("missing API key: send 'authorization: Bearer <key>'")
        candidate = presented.encode()
        tenant = None
        for key, key_tenant in self._keys:  # no early exit: constant time over keys
            if hmac.compare_digest(key, candidate):
                tenant = key_tenant
        if tenant is None:
            raise Unauthenticated("invalid API key")
        return tenant


def _presented_key(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    for name, value in metadata:
        text = value.decode() if isinstance(value, bytes) else value
        if name == "authorization" and text.lower().startswith("bearer "):
            return text[7:].strip()
        if name == "x-api-key":
            return text.strip()
    return None


def bearer(key: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying `key` (empty when no key)."""
    return (("authorization", f"Bearer {key}"),) if key else ()
