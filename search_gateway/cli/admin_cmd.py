"""`imgsearch delete`, `get` and `stats`: commands that change or describe the
index without computing a vector, so they never load a model."""

from __future__ import annotations

import argparse
import json
from typing import Any

from imgsearch.errors import InvalidInput
from search_gateway.cli.connect import (
    GatewayAPI,
    NoIndex,
    collection_exists,
    no_index_message,
    open_api,
    settings_from,
)
from search_gateway.cli.ids import resolve_ids
from search_gateway.cli.local_store import local_scope
from search_gateway.cli.output import print_hits, print_stats
from search_gateway.filter_syntax import parse_filters

DRY_RUN_SHOWN = 20


def add_commands(sub: argparse._SubParsersAction, command: Any) -> None:  # type: ignore[type-arg]
    p = command("delete", "delete images by id or by filter")
    p.add_argument(
        "--id", action="append", default=[], help="point id or unambiguous prefix (repeatable)"
    )
    p.add_argument("--filter", action="append", default=[], metavar="EXPR")
    p.add_argument(
        "--dry-run", action="store_true", help="only say what would be deleted (count and some)"
    )
    p.set_defaults(func=run_delete)

    p = command("get", "show stored images by id (payload as JSON)")
    p.add_argument("id", nargs="+", help="point id or unambiguous prefix")
    p.set_defaults(func=run_get)

    p = command("stats", "describe the index")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_stats)


async def run_delete(args: argparse.Namespace) -> int:
    flt = parse_filters(args.filter)
    if not args.id and flt is None:
        raise InvalidInput("give --id (repeatable) or --filter")
    api = await open_api(args, need_index=True, images=False)
    try:
        ids = await resolve_ids(api, args.id) if args.id else []
        if args.dry_run:
            return await _dry_run(api, ids, flt)
        deleted = await api.delete(ids, None if ids else flt)
    finally:
        await api.close()
    print(f"deleted {deleted} point{'s' if deleted != 1 else ''}")
    return 0


async def _dry_run(api: GatewayAPI, ids: list[str], flt: Any) -> int:
    if ids:
        hits, missing = await api.get(ids)
        count = len(hits)
        for raw in missing:
            print(f"no stored image with id {raw}")
    else:
        what = "delete --filter --dry-run"
        scope = local_scope(api, purpose=what)
        count = await scope.count(flt)
        page = await scope.scroll(flt, DRY_RUN_SHOWN, None)
        from search_gateway.core import Hit

        hits = [Hit.from_point(p.id, 1.0, p.payload) for p in page.points]
    print(f"would delete {count} point{'s' if count != 1 else ''} (dry run: nothing deleted)")
    if hits:
        shown = hits[:DRY_RUN_SHOWN]
        print_hits(shown)
        if count > len(shown):
            print(f"… and {count - len(shown)} more")
    return 0


async def run_get(args: argparse.Namespace) -> int:
    api = await open_api(args, need_index=True, images=False)
    try:
        ids = await resolve_ids(api, args.id)
        hits, missing = await api.get(ids)
    finally:
        await api.close()
    out = [{"id": h.id, "path": h.uri, "caption": h.caption, "payload": h.payload} for h in hits]
    print(json.dumps(out, indent=2, default=str))
    for raw in missing:
        print(f"no stored image with id {raw}")
    return 0 if not missing else 1


async def run_stats(args: argparse.Namespace) -> int:
    if not args.gateway and collection_exists(settings_from(args)) is False:
        message = no_index_message(settings_from(args))
        if args.json:
            print(json.dumps({"count": 0, "exists": False, "message": message}, indent=2))
        else:
            print(message)
        return 0
    api = await open_api(args, images=False)
    try:
        s = await api.stats()
    finally:
        await api.close()
    print_stats(s, args.json)
    return 0


__all__ = ["NoIndex", "add_commands"]
