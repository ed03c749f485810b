"""Search flags of issue 13 (`--group`, `--order`, `--relative-cutoff`,
`--page-token`, `--candidates`), and printing of grouped / time-ordered pages."""

from __future__ import annotations

import argparse
import json
import re
import sys

from imgsearch.errors import InvalidInput
from search_gateway.cli.output import hits_as_json, short_path
from search_gateway.events import (
    DEFAULT_CANDIDATES,
    DEFAULT_WINDOW_S,
    WINDOWED_GROUPS,
    ResultShape,
    SearchPage,
)

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ORDERS = {"relevance": "relevance", "time": "time", "time-desc": "time_desc"}


def add_shape_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--group",
        metavar="BY[,WINDOW]",
        help="one hit per event: video or camera, within a window, e.g. video,60s or "
        "camera,5m; or one hit per near-duplicate cluster: near_duplicate",
    )
    p.add_argument(
        "--order",
        choices=sorted(_ORDERS),
        default="relevance",
        help="time: the relevant hits oldest first (time-desc: newest first)",
    )
    p.add_argument(
        "--relative-cutoff",
        type=float,
        metavar="X",
        help="keep hits scoring within X of the best hit (e.g. 0.05)",
    )
    p.add_argument(
        "--candidates",
        type=int,
        default=DEFAULT_CANDIDATES,
        help=f"--order time: how many of the most relevant hits (default {DEFAULT_CANDIDATES})",
    )
    p.add_argument("--page-token", help="continue from a previous page (printed on stderr)")


def parse_duration(text: str) -> float:
    """'60s', '5m', '1.5h', '90' (seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise InvalidInput(f"not a duration: {text!r} (e.g. 60s, 5m, 1h)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def shape_from(args: argparse.Namespace) -> ResultShape:
    group_by, window = None, DEFAULT_WINDOW_S
    if args.group:
        by, _, win = args.group.partition(",")
        group_by = by.strip().replace("-", "_")  # near-duplicate reads as near_duplicate
        if win and group_by not in WINDOWED_GROUPS:
            raise InvalidInput(f"--group {group_by} takes no time window (a cluster is one group)")
        if win:
            window = parse_duration(win)
    return ResultShape(
        group_by=group_by,
        window_s=window,
        order=_ORDERS[args.order],
        relative_cutoff=args.relative_cutoff,
        candidates=args.candidates,
        page_token=args.page_token,
    )


def video_link(uri: str, payload: dict[str, object]) -> str:
    """For a video frame, a link that opens the video at that second (media fragment #t=)."""
    offset = payload.get("frame_offset_s")
    if not isinstance(offset, (int, float)):
        return uri
    return f"{uri}#t={offset:.0f}"


def page_as_json(query: str, page: SearchPage, first_rank: int = 1) -> str:
    """hits_as_json, plus each group's key, size, time span and hit ids
    (groups[i] belongs to hits[i]) and the next page token, when there are any."""
    out = json.loads(hits_as_json(query, page.hits, first_rank))
    if page.groups:
        out["groups"] = [
            {"key": g.key, "size": g.size, "start": g.start, "end": g.end,
             "hit_ids": [h.id for h in g.hits]}
            for g in page.groups
        ]  # fmt: skip
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return json.dumps(out, indent=2, default=str)


def print_page(page: SearchPage) -> None:
    if not page.hits:
        print("no results")
    elif page.groups:
        print(f"{'rank':>4}  {'score':>6}  {'hits':>4}  {'from':<20}  {'to':<20}  where")
        for rank, g in enumerate(page.groups, 1):
            where = video_link(short_path(g.best.uri, 50), g.best.payload)
            print(
                f"{rank:>4}  {g.best.score:>6.3f}  {g.size:>4}  {g.start or '-':<20}  "
                f"{g.end or '-':<20}  {where}"
            )
    else:
        print(f"{'rank':>4}  {'score':>6}  {'time':<20}  {'path':<50}  caption")
        for rank, h in enumerate(page.hits, 1):
            ts = str(h.payload.get("timestamp", "-"))
            where = video_link(short_path(h.uri, 50), h.payload)
            print(f"{rank:>4}  {h.score:>6.3f}  {ts:<20}  {where:<50}  {h.caption}")
    if page.next_page_token:
        print(f"next page: --page-token {page.next_page_token}", file=sys.stderr)
