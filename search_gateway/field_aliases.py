"""Short field names people type, shared by `--meta` and `--filter`.

One table, so `--meta ts=2024-05-01` stores `timestamp` and a later
`--filter 'ts>=2024-05-01'` finds it (before, --meta stored a key named
`ts` that the filter's `ts` never matched).
"""

from __future__ import annotations

from search_gateway import domain as d

ALIASES: dict[str, str] = {
    "ts": d.TIMESTAMP,
    "time": d.TIMESTAMP,
    "tag": d.TAGS,
    "loc": d.LOCATION,
}


def canonical(key: str) -> str:
    """The stored field name for what was typed."""
    return ALIASES.get(key, key)
