"""`imgsearch query TEXT` and `imgsearch similar IMAGE | --id ID`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from imgsearch.errors import InvalidInput
from search_gateway import domain as d
from search_gateway.cli.connect import (
    GatewayAPI,
    NoIndex,
    no_index_message,
    open_api,
    settings_from,
)
from search_gateway.cli.events_cli import add_shape_options, page_as_json, print_page, shape_from
from search_gateway.cli.ids import resolve_ids
from search_gateway.cli.output import hits_as_json, notice, print_hits
from search_gateway.core import SearchQuery
from search_gateway.events import ResultShape
from search_gateway.filter_syntax import parse_filters
from search_gateway.rerank import DEFAULT_CANDIDATES, MAX_CANDIDATES, RerankOptions


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
    add_shape_options(p)


def add_commands(sub: argparse._SubParsersAction, command: Any) -> None:  # type: ignore[type-arg]
    p = command("query", "search by text")
    p.add_argument("text", nargs="+")
    p.add_argument(
        "--mode",
        choices=["vector", "caption", "hybrid"],
        default="vector",
        help="vector (CLIP), caption (caption text) or hybrid (both, RRF)",
    )
    p.add_argument(
        "--rerank",
        nargs="?",
        type=int,
        const=DEFAULT_CANDIDATES,
        default=None,
        metavar="N",
        help=f"re-rank the first N candidates (default {DEFAULT_CANDIDATES}, at most "
        f"{MAX_CANDIDATES}) with the image-text matching model, on their thumbnails",
    )
    p.add_argument(
        "--rerank-strict",
        action="store_true",
        help="fail when re-ranking cannot be done (else: vector order, with a note)",
    )
    p.add_argument(
        "--rerank-model",
        default=None,
        metavar="MODEL",
        help="in-process matching model without --gateway/--captioner (offline-tiny, "
        "Salesforce/blip-itm-base-coco); env IMGSEARCH_RERANK_MODEL",
    )
    add_search_options(p)
    p.set_defaults(func=run_query)

    p = command("similar", "search by an image file or an indexed image's id")
    p.add_argument("image", nargs="?")
    p.add_argument("--id", help="id (or unambiguous id prefix) of an indexed image")
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


async def open_index(args: argparse.Namespace, images: bool = True) -> GatewayAPI:
    """The API over an index that exists and holds images (else NoIndex, and
    nothing was loaded or created). images: whether the search embeds one."""
    api = await open_api(args, need_index=True, images=images)
    try:
        if (await api.stats()).count == 0:
            raise NoIndex(no_index_message(settings_from(args), empty=True))
    except BaseException:
        await api.close()
        raise
    return api


async def search_and_show(
    args: argparse.Namespace, label: str, q: SearchQuery, api: GatewayAPI | None = None
) -> int:
    api = api or await open_index(args)
    rerank = getattr(args, "rerank", None)
    details = f"mode {q.mode}, k={q.k}"
    shape = shape_from(args)
    if shape != ResultShape():  # grouped, time-ordered, cut or paged by token
        if rerank is not None:
            await api.close()
            raise InvalidInput("--rerank cannot be combined with grouping, time order or cuts")
        return await show_page(api, args, label, q, shape)
    try:
        if rerank is None:
            hits = await api.search(q)
        else:
            result = await api.search_reranked(
                q, RerankOptions(rerank, getattr(args, "rerank_strict", False))
            )
            hits = result.hits
            details += (
                f", re-ranked ({rerank} candidates, {result.model})"
                if result.reranked
                else ", vector order"
            )
            if result.note:
                details += f" - {result.note}"
            notice(details)
        if not hits:
            for warning in await explain_empty(api, q):
                notice(f"warning: {warning}")
    finally:
        await api.close()
    if args.json:
        print(hits_as_json(label, hits, first_rank=q.offset + 1))
    else:
        print_hits(hits, first_rank=q.offset + 1)
    if args.html:
        from search_gateway.gallery import write_gallery

        out = write_gallery(Path(args.html), label, hits, details)
        print(f"gallery written to {out}", file=sys.stderr)
    return 0


async def show_page(
    api: GatewayAPI, args: argparse.Namespace, label: str, q: SearchQuery, shape: ResultShape
) -> int:
    try:
        page = await api.search_page(q, shape)
        if args.html:
            from search_gateway.gallery_events import write_event_gallery

            out = await write_event_gallery(api, Path(args.html), label, page)
            print(f"gallery written to {out}", file=sys.stderr)
    finally:
        await api.close()
    if args.json:
        print(page_as_json(label, page, first_rank=q.offset + 1))
    else:
        print_page(page)
    return 0


async def explain_empty(api: GatewayAPI, q: SearchQuery, sample: int = 100) -> list[str]:
    """Why a search found nothing, when it is a likely mistake: a filter on a
    field no stored image has, or an offset past the last result."""
    warnings: list[str] = []
    unfiltered = replace(q, filter=None, offset=0, k=sample, score_threshold=None)
    seen = await api.search(unfiltered)
    if q.filter is not None:
        known = {key for h in seen for key in h.payload}
        for key in sorted(filter_keys(q.filter)):
            if key not in known:
                fields = ", ".join(sorted(known - d.RESERVED_FIELDS)[:12]) or "none of their own"
                warnings.append(
                    f"no stored image has a field '{key}' (among the {len(seen)} nearest: {fields})"
                )
    elif q.offset and len(seen) <= q.offset:
        warnings.append(f"--offset {q.offset} is past the last result ({len(seen)} in all)")
    return warnings


def filter_keys(flt: d.Filter) -> set[str]:
    keys: set[str] = set()
    for cond in (*flt.must, *flt.should, *flt.must_not):
        if isinstance(cond, d.Filter):
            keys |= filter_keys(cond)
        elif hasattr(cond, "key"):
            keys.add(cond.key)
    return keys


async def run_query(args: argparse.Namespace) -> int:
    text = " ".join(args.text)
    q = query_from(args, text=text)  # a bad filter fails before anything loads
    return await search_and_show(args, text, q, await open_index(args, images=False))


async def run_similar(args: argparse.Namespace) -> int:
    if args.id:
        q = query_from(args)
        api = await open_index(args, images=False)
        try:
            (point_id,) = await resolve_ids(api, [args.id])
        except BaseException:
            await api.close()
            raise
        q.point_id = point_id
        return await search_and_show(args, f"similar to {args.id}", q, api)
    if not args.image:
        raise InvalidInput("give an image file or --id POINT_ID")
    data = Path(args.image).expanduser().read_bytes()
    return await search_and_show(args, f"similar to {args.image}", query_from(args, image=data))
