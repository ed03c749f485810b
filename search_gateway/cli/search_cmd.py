"""`imgsearch query TEXT` and `imgsearch similar IMAGE | --id ID`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from imgsearch.errors import InvalidInput
from search_gateway.cli.connect import open_api
from search_gateway.cli.output import hits_as_json, print_hits
from search_gateway.core import SearchQuery
from search_gateway.filter_syntax import parse_filters


def add_search_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--offset", type=int, default=0, help="skip this many results (pagination)")
    p.add_argument("--threshold", type=float, default=None, help="drop results scoring below this")
    p.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="EXPR",
        help="e.g. 'camera_id=7', 'ts>=2024-05-01', 'tags in (a,b)', "
        "'near=48.85,2.35,5km', 'caption~\"red jacket\"' (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML gallery")


def add_commands(sub: argparse._SubParsersAction, command: Any) -> None:  # type: ignore[type-arg]
    p = command("query", "search by text")
    p.add_argument("text", nargs="+")
    p.add_argument(
        "--mode",
        choices=["vector", "caption", "hybrid"],
        default="vector",
        help="vector (CLIP), caption (caption text) or hybrid (both, RRF)",
    )
    add_search_options(p)
    p.set_defaults(func=run_query)

    p = command("similar", "search by an image file or an indexed image's id")
    p.add_argument("image", nargs="?")
    p.add_argument("--id", help="id of an indexed image ('more like this')")
    add_search_options(p)
    p.set_defaults(func=run_similar)


def query_from(args: argparse.Namespace, **source: Any) -> SearchQuery:
    if args.k < 1:
        raise InvalidInput(f"-k must be at least 1, got {args.k}")
    if args.offset < 0:
        raise InvalidInput(f"--offset must be >= 0, got {args.offset}")
    return SearchQuery(
        k=args.k,
        offset=args.offset,
        score_threshold=args.threshold,
        filter=parse_filters(args.filter),
        mode=getattr(args, "mode", "vector"),
        **source,
    )


async def search_and_show(args: argparse.Namespace, label: str, q: SearchQuery) -> int:
    api = await open_api(args)
    try:
        hits = await api.search(q)
    finally:
        await api.close()
    if args.json:
        print(hits_as_json(label, hits))
    else:
        print_hits(hits)
    if args.html:
        from search_gateway.gallery import write_gallery

        out = write_gallery(Path(args.html), label, hits, f"mode {q.mode}, k={q.k}")
        print(f"gallery written to {out}", file=sys.stderr)
    return 0


async def run_query(args: argparse.Namespace) -> int:
    text = " ".join(args.text)
    return await search_and_show(args, text, query_from(args, text=text))


async def run_similar(args: argparse.Namespace) -> int:
    if args.id:
        return await search_and_show(
            args, f"similar to {args.id}", query_from(args, point_id=args.id)
        )
    if not args.image:
        raise InvalidInput("give an image file or --id POINT_ID")
    data = Path(args.image).expanduser().read_bytes()
    return await search_and_show(args, f"similar to {args.image}", query_from(args, image=data))
