"""`imgsearch delete` and `imgsearch stats`: commands that change or describe
the index without touching images."""

from __future__ import annotations

import argparse
from typing import Any

from imgsearch.errors import InvalidInput
from search_gateway.cli.connect import open_api
from search_gateway.cli.output import print_stats
from search_gateway.filter_syntax import parse_filters


def add_commands(sub: argparse._SubParsersAction, command: Any) -> None:  # type: ignore[type-arg]
    p = command("delete", "delete images by id or by filter")
    p.add_argument("--id", action="append", default=[], help="point id (repeatable)")
    p.add_argument("--filter", action="append", default=[], metavar="EXPR")
    p.set_defaults(func=run_delete)

    p = command("stats", "describe the index")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_stats)


async def run_delete(args: argparse.Namespace) -> int:
    flt = parse_filters(args.filter)
    if not args.id and flt is None:
        raise InvalidInput("give --id (repeatable) or --filter")
    api = await open_api(args)
    try:
        deleted = await api.delete(args.id or (), None if args.id else flt)
    finally:
        await api.close()
    print(f"deleted {deleted} point{'s' if deleted != 1 else ''}")
    return 0


async def run_stats(args: argparse.Namespace) -> int:
    api = await open_api(args)
    try:
        s = await api.stats()
    finally:
        await api.close()
    print_stats(s, args.json)
    return 0
