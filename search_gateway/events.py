"""Results by event and by time: grouping, time order, relative cutoff, page tokens.

What people ask of camera footage is "the red car on cam-03 last Tuesday",
and they want one answer per event, not forty near-identical frames. So:

* **Grouping** asks the engine for groups (Qdrant's query_points_groups on the
  group field: `video_sha256`, `camera_id` or `near_group`). Video and camera
  groups are split into events: hits whose timestamps lie within `window_s`
  of the previous one belong to the same event. The window is a query-time
  choice, so it cannot be a stored bucket; the split is a linear pass over
  hits the engine grouped. A near-duplicate cluster (`near_group`, the
  representative's id on every point) is one group whatever its times. One
  hit (the best) per group, with the group's size and time span.
* **Time order**: the relevant hits (the `candidates` nearest above the
  cutoff) in chronological order, done by the engine (prefetch + order_by on
  `timestamp`).
* **Relative cutoff**: CLIP cosines are not comparable across queries, so
  "within X of the best hit" is often the better bar; the best score is found
  once, on the first page, and frozen into the page token.
* **Page tokens** are opaque (base64 JSON), bound to the query, and pin a
  snapshot: only points ingested up to the first page's time are seen, so
  pages stay consistent while points are added. Time order continues from the
  last timestamp (keyset: a deep page costs the same as the first); relevance
  and group pages continue by offset, which the engine computes without
  returning the prefix.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from imgsearch.errors import InvalidInput
from search_gateway import domain as d

if TYPE_CHECKING:
    from search_gateway.core import GatewayCore, Hit, SearchQuery

VIDEO_SHA256 = d.VIDEO_SHA256
TIMESTAMP_END = d.TIMESTAMP_END
GROUP_FIELDS = {"video": VIDEO_SHA256, "camera": d.CAMERA_ID, "near_duplicate": d.NEAR_GROUP}
# Groups split into events by time (window_s); the others are one group each.
WINDOWED_GROUPS = ("video", "camera")
ORDERS = ("relevance", "time", "time_desc")
DEFAULT_WINDOW_S = 60.0
DEFAULT_CANDIDATES = 100
# Time-windowed groups keep hits within this of the best unless told otherwise:
# without a cutoff every point of a video is a "hit", and hits chained in
# time would merge a whole video into one event. CLIP cosines of matching
# and non-matching frames differ by 0.1-0.4 (offline model: 0.32-0.34 vs
# <= -0.07 on the quality test's video).
DEFAULT_GROUP_CUTOFF = 0.1
# Hits per engine group that are split into events.
GROUP_DEPTH = 100
_TOKEN_VERSION = 1


@dataclass(frozen=True)
class ResultShape:
    """How hits are shaped: grouped, ordered, cut, paged (all optional)."""

    group_by: str | None = None  # "video", "camera" or "near_duplicate"
    window_s: float = DEFAULT_WINDOW_S
    order: str = "relevance"
    relative_cutoff: float | None = None
    candidates: int = DEFAULT_CANDIDATES
    page_token: str | None = None
    # Plain relevance order, but answered with a page token (the proto's
    # explicit SEARCH_ORDER_RELEVANCE); any other field set implies it.
    paged: bool = False

    def check(self, max_k: int) -> None:
        if self.group_by is not None and self.group_by not in GROUP_FIELDS:
            raise InvalidInput(
                f"group_by must be one of {', '.join(GROUP_FIELDS)}, not {self.group_by!r}"
            )
        if not 0 < self.window_s <= 7 * 86400:
            raise InvalidInput(f"group window must be within (0, 604800] s, got {self.window_s}")
        if self.order not in ORDERS:
            raise InvalidInput(f"order must be one of {', '.join(ORDERS)}, not {self.order!r}")
        if self.group_by is not None and self.order != "relevance":
            raise InvalidInput("grouped results are ranked by relevance; drop --order or --group")
        if self.relative_cutoff is not None and not 0 <= self.relative_cutoff <= 2:
            raise InvalidInput(f"relative_cutoff must be within [0, 2], got {self.relative_cutoff}")
        if not 1 <= self.candidates <= max_k:
            raise InvalidInput(f"candidates must be within 1..{max_k}, got {self.candidates}")


@dataclass
class EventGroup:
    """One event: its best hit, how many hits it holds and when it happened."""

    key: str
    best: Hit
    size: int
    start: str | None
    end: str | None
    hits: list[Hit] = field(default_factory=list)


@dataclass
class SearchPage:
    hits: list[Hit]
    groups: list[EventGroup]
    next_page_token: str = ""


# --- pure pieces -------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)


def split_events(key: str, hits: list[Hit], window_s: float) -> list[EventGroup]:
    """Splits one engine group into events: a gap over `window_s` starts a new one.

    Hits without a timestamp form one event of their own per group.
    """
    timed = sorted(
        ((t, h) for h in hits if (t := parse_time(h.payload.get(d.TIMESTAMP))) is not None),
        key=lambda th: th[0],
    )
    untimed = [h for h in hits if parse_time(h.payload.get(d.TIMESTAMP)) is None]
    runs: list[list[tuple[datetime, Hit]]] = []
    run_end: datetime | None = None
    for t, h in timed:
        if run_end is None or (t - run_end).total_seconds() > window_s:
            runs.append([])
            run_end = t
        runs[-1].append((t, h))
        run_end = max(run_end, parse_time(h.payload.get(TIMESTAMP_END)) or t)
    out = []
    for run in runs:
        members = [h for _, h in run]
        ends = [parse_time(h.payload.get(TIMESTAMP_END)) or t for t, h in run]
        out.append(
            EventGroup(
                key=key,
                best=max(members, key=lambda h: h.score),
                size=len(members),
                start=d.rfc3339(run[0][0]),
                end=d.rfc3339(max(ends)),
                hits=sorted(members, key=lambda h: -h.score),
            )
        )
    if untimed:
        best = max(untimed, key=lambda h: h.score)
        out.append(EventGroup(key, best, len(untimed), None, None, untimed))
    return out


def whole_group(key: str, hits: list[Hit]) -> EventGroup:
    """One engine group as one group (a near-duplicate cluster): its best hit,
    size and the time span of its timed hits (unset when none has a time)."""
    starts = [t for h in hits if (t := parse_time(h.payload.get(d.TIMESTAMP))) is not None]
    ends = [
        t
        for h in hits
        if (t := parse_time(h.payload.get(TIMESTAMP_END) or h.payload.get(d.TIMESTAMP)))
        is not None
    ]
    ranked = sorted(hits, key=lambda h: -h.score)
    return EventGroup(
        key=key,
        best=ranked[0],
        size=len(ranked),
        start=d.rfc3339(min(starts)) if starts else None,
        end=d.rfc3339(max(ends)) if ends else None,
        hits=ranked,
    )


def events_of(key: str, hits: list[Hit], shape: ResultShape) -> list[EventGroup]:
    """The groups one engine group gives: events in time, or the group whole."""
    if shape.group_by in WINDOWED_GROUPS:
        return split_events(key, hits, shape.window_s)
    return [whole_group(key, hits)] if hits else []


def query_fingerprint(q: SearchQuery, shape: ResultShape, tenant: str | None) -> str:
    """Binds a page token to its query (text/image/point, filter, shape, tenant)."""
    h = hashlib.sha256()
    image = hashlib.sha256(q.image).hexdigest() if q.image is not None else None
    parts = [
        q.text, image, q.point_id, q.k, q.mode, q.score_threshold, repr(q.filter),
        shape.group_by, shape.window_s, shape.order, shape.relative_cutoff, shape.candidates,
        tenant,
    ]  # fmt: skip
    h.update(json.dumps(parts, default=str).encode())
    return h.hexdigest()[:16]


def encode_token(state: dict[str, Any]) -> str:
    raw = json.dumps({"v": _TOKEN_VERSION, **state}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, fingerprint: str) -> dict[str, Any]:
    """The token's state, or InvalidInput when it is malformed or for another query."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        state = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput("page_token is malformed") from None
    if not isinstance(state, dict) or state.get("v") != _TOKEN_VERSION:
        raise InvalidInput("page_token is malformed or from another version")
    if state.get("q") != fingerprint:
        raise InvalidInput("page_token belongs to another query (same query, filter and shape)")
    if parse_time(state.get("snap")) is None:
        raise InvalidInput("page_token is malformed")
    return state


# --- the search ----------------------------------------------------------------------


async def search_page(
    core: GatewayCore,
    q: SearchQuery,
    shape: ResultShape,
    to_hit: Callable[[d.ScoredPoint], Hit],
    timeout: float | None = None,
    tenant: str | None = None,
) -> SearchPage:
    """Hits (and groups) for one page; see the module docstring. (`to_hit` comes
    from core, which imports this module: no import back.)"""
    await core._ready()
    core._check_query(q)
    shape.check(core.limits.max_k)
    shaped = shape.group_by or shape.order != "relevance" or shape.relative_cutoff is not None
    if q.mode != "vector" and shaped:
        raise InvalidInput("grouping, time order and relative cutoff need vector mode")
    fp = query_fingerprint(q, shape, tenant)
    state = decode_token(shape.page_token, fp) if shape.page_token else None
    if state is not None and q.offset:
        raise InvalidInput("give offset or page_token, not both")
    if state is not None and int(state.get("off", 0)) > core.limits.max_offset:
        raise InvalidInput(f"page_token goes past the deepest offset ({core.limits.max_offset})")
    scope = core.scope(tenant)
    vector = await core._query_vector(q, timeout, scope)
    exclude: tuple[str, ...] = ()
    if q.point_id is not None:
        exclude = (d.normalize_point_id(q.point_id),)
    snapshot = parse_time(state["snap"]) if state else datetime.now(timezone.utc)
    assert snapshot is not None
    pinned = d.Filter(must=(d.DatetimeRange(d.INGESTED_AT, lte=snapshot),))
    # (The scope adds the tenant's own condition to every call below.)
    flt = d.Filter(must=(pinned, q.filter)) if q.filter is not None else pinned

    if state is not None:
        threshold = state.get("thr")
    else:
        threshold = q.score_threshold
        cutoff = shape.relative_cutoff
        if cutoff is None and shape.group_by in WINDOWED_GROUPS and threshold is None:
            cutoff = DEFAULT_GROUP_CUTOFF
        if cutoff is not None:
            best = await scope.search(vector, 1, 0, threshold, flt, exclude)
            if best:
                bar = best[0].score - cutoff
                threshold = bar if threshold is None else max(threshold, bar)
    base = {"q": fp, "snap": d.rfc3339(snapshot), "thr": threshold}

    hit = to_hit

    if shape.group_by is not None:
        offset = int(state.get("off", 0)) if state else q.offset
        n_groups = offset + q.k
        groups = await scope.search_groups(
            vector, GROUP_FIELDS[shape.group_by], n_groups, GROUP_DEPTH, threshold, flt, exclude
        )
        events = [e for g in groups for e in events_of(g.key, [hit(p) for p in g.hits], shape)]
        events.sort(key=lambda e: (-e.best.score, e.start or ""))
        page = events[offset : offset + q.k]
        more = len(events) > offset + q.k or len(groups) >= n_groups
        token = encode_token({**base, "off": offset + q.k}) if more and page else ""
        return SearchPage([e.best for e in page], page, token)

    if shape.order != "relevance":
        descending = shape.order == "time_desc"
        start = state.get("from") if state else None
        seen = list(state.get("seen", [])) if state else []
        if q.offset and not state:
            raise InvalidInput("time order pages by page_token, not offset")
        points = await scope.search_ordered(
            vector, shape.candidates, q.k + 1, d.TIMESTAMP, descending,
            start, threshold, flt, exclude + tuple(seen),
        )  # fmt: skip
        page_points, more = points[: q.k], len(points) > q.k
        token = ""
        if more and page_points:
            last = page_points[-1].payload.get(d.TIMESTAMP)
            same = [p.id for p in page_points if p.payload.get(d.TIMESTAMP) == last]
            if last == start:
                same = seen + same  # a run of equal timestamps spanning pages
            token = encode_token({**base, "from": last, "seen": same})
        return SearchPage([hit(p) for p in page_points], [], token)

    offset = int(state.get("off", 0)) if state else q.offset
    points = await scope.search(vector, q.k + 1, offset, threshold, flt, exclude)
    page_points = points[: q.k]
    token = encode_token({**base, "off": offset + q.k}) if len(points) > q.k else ""
    return SearchPage([hit(p) for p in page_points], [], token)
