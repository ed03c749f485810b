"""`--meta key=value` for the CLI: typed metadata from plain text.

Values become: an int or a float when they look like one; true/false;
a datetime (stored RFC 3339) for dates like 2024-05-01 or 2024-05-01T12:00;
a geo point for `location=48.85,2.35`; a list for `tags=a,b`; else a string.
Keys go through the same aliases as --filter (`ts` -> `timestamp`, `tag` ->
`tags`, `loc` -> `location`), so what --meta stores, --filter finds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from imgsearch.errors import InvalidInput
from search_gateway import domain as d
from search_gateway.field_aliases import canonical
from search_gateway.filter_syntax import parse_datetime

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?")
_DATEISH = re.compile(r"\d{4}-\d{2}-\d{2}([T ].*)?")


def parse_value(key: str, text: str) -> Any:
    text = text.strip()
    if key == d.LOCATION:
        try:
            lat, lon = (float(x) for x in text.split(","))
        except ValueError:
            raise InvalidInput(f"--meta {key}={text}: expected 'lat,lon' in degrees") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise InvalidInput(f"--meta {key}={text}: lat must be within ±90, lon within ±180")
        return {"lat": lat, "lon": lon}
    if key == d.TAGS:
        return [t.strip() for t in text.split(",") if t.strip()]
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _DATEISH.fullmatch(text):
        when = parse_datetime(text)
        if when is None:
            raise InvalidInput(f"--meta {key}={text}: not a valid date/time")
        return d.rfc3339(when)
    return text


def parse_meta(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--meta {pair!r}: expected key=value")
        name = canonical(key.strip())
        out[name] = parse_value(name, value)
    return out
