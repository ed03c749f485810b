"""Everything the CLI prints: result tables and JSON, summaries, progress bars.

Results go to stdout (pipeable); progress and notices go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from search_gateway.ingest import IngestStatus

if TYPE_CHECKING:
    from search_gateway.core import Hit, Stats


@dataclass
class IndexSummary:
    counts: dict[IngestStatus, int] = field(default_factory=lambda: dict.fromkeys(IngestStatus, 0))
    failures: list[tuple[str, str]] = field(default_factory=list)
    caption_pending: int = 0
    seconds: float = 0.0


def progress(total: int, disabled: bool, desc: str = "indexing") -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, unit="img", desc=desc, disable=disabled, file=sys.stderr, smoothing=0.1
    )


def notice(text: str) -> None:
    print(text, file=sys.stderr)


def print_index_summary(s: IndexSummary, total: int) -> None:
    c = s.counts
    rate = total / s.seconds if s.seconds > 0 else 0.0
    print(f"indexed {total} images in {s.seconds:.1f} s ({rate:.1f} images/s)")
    print(
        f"  added {c[IngestStatus.ADDED]} · already present {c[IngestStatus.ALREADY_PRESENT]}"
        f" · duplicate {c[IngestStatus.DUPLICATE]} · failed {c[IngestStatus.FAILED]}"
    )
    if s.caption_pending:
        print(f"  {s.caption_pending} captions pending (run `imgsearch recaption` later)")
    if s.failures:
        print("failures:")
        for where, reason in s.failures:
            print(f"  {where}: {reason}")


def hits_as_json(query: str, hits: Sequence[Hit]) -> str:
    return json.dumps(
        {
            "query": query,
            "hits": [
                {
                    "rank": rank,
                    "id": h.id,
                    "score": round(h.score, 6),
                    "path": h.uri,
                    "caption": h.caption,
                    "payload": h.payload,
                }
                for rank, h in enumerate(hits, 1)
            ],
        },
        indent=2,
        default=str,
    )


def print_hits(hits: Sequence[Hit]) -> None:
    if not hits:
        print("no results")
        return
    print(f"{'rank':>4}  {'score':>6}  {'path':<50}  caption")
    for rank, h in enumerate(hits, 1):
        print(f"{rank:>4}  {h.score:>6.3f}  {short_path(h.uri, 50):<50}  {h.caption}")


def short_path(path: str, width: int) -> str:
    try:
        rel = os.path.relpath(path)
        if not rel.startswith(".."):
            path = rel
    except ValueError:
        pass
    return path if len(path) <= width else "…" + path[-(width - 1) :]


def print_stats(s: Stats, as_json: bool) -> None:
    if as_json:
        print(json.dumps(s.__dict__, indent=2))
        return
    print(f"collection   {s.collection} ({s.store})")
    print(f"images       {s.count}")
    print(f"model        {s.model} / {s.pretrained or '-'} (dim {s.dimension})")
    print(f"captioned    {s.captioned_count} (pending {s.caption_pending_count})")
