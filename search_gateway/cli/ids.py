"""Point ids as people type them: the table shows the first 8 characters, and
every id-taking command accepts any unambiguous prefix of a stored id."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from imgsearch.errors import InvalidInput, NotFound
from search_gateway.cli.connect import GatewayAPI
from search_gateway.cli.local_store import is_embedded, local_scope

SHORT = 8
_HEX = re.compile(r"[0-9a-f-]{1,36}")
_SCAN_PAGE = 64


def short_id(point_id: str) -> str:
    return point_id[:SHORT]


def is_full(point_id: str) -> bool:
    try:
        return str(uuid.UUID(point_id)) == point_id.lower()
    except ValueError:
        return False


def _lower_bound(prefix: str) -> str:
    """The smallest UUID starting with prefix (ids scroll in id order)."""
    digits = prefix.replace("-", "")
    return str(uuid.UUID(digits.ljust(32, "0")))


async def resolve_ids(api: GatewayAPI, given: Sequence[str]) -> list[str]:
    """Full ids for what was typed; a prefix must match exactly one stored id."""
    out: list[str] = []
    for raw in given:
        text = raw.strip().lower()
        if is_full(text):
            out.append(text)
            continue
        if not _HEX.fullmatch(text) or text.endswith("-"):
            raise InvalidInput(f"{raw!r} is not a point id or id prefix (hex digits)")
        out.append(await _resolve_prefix(api, raw, text))
    return out


async def _resolve_prefix(api: GatewayAPI, raw: str, prefix: str) -> str:
    if not is_embedded(api):
        raise InvalidInput(f"{raw!r}: give the full id with --gateway (prefixes work embedded)")
    page = await local_scope(api).scroll(None, _SCAN_PAGE, _lower_bound(prefix))
    matches = [p.id for p in page.points if p.id.startswith(prefix)]
    if not matches:
        raise NotFound(f"no stored image has an id starting with {raw!r}")
    if len(matches) > 1:
        shown = ", ".join(m[: len(prefix) + 4] for m in matches[:5])
        raise InvalidInput(f"id prefix {raw!r} is ambiguous ({shown}...): type more of it")
    return str(matches[0])
