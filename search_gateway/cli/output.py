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

from search_gateway.ingest import IngestOutcome, IngestStatus

if TYPE_CHECKING:
    from search_gateway.cli.enrich import EnrichReport
    from search_gateway.core import Hit, Stats


@dataclass
class IndexSummary:
    counts: dict[IngestStatus, int] = field(default_factory=lambda: dict.fromkeys(IngestStatus, 0))
    near_duplicates: int = 0  # stored, marked duplicate_of (part of DUPLICATE)
    identical_copies: int = 0  # byte-identical to a stored image: not stored (part of DUPLICATE)
    failures: list[tuple[str, str]] = field(default_factory=list)
    caption_pending: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    enriched: EnrichReport | None = None

    def record(self, outcome: IngestOutcome) -> None:
        self.counts[outcome.status] += 1
        self.caption_pending += outcome.caption_pending
        if outcome.status is IngestStatus.DUPLICATE:
            # A byte-identical copy reports the stored point's own id as duplicate_of.
            if outcome.duplicate_of and outcome.duplicate_of != outcome.id:
                self.near_duplicates += 1
            else:
                self.identical_copies += 1

    @property
    def done(self) -> int:
        return sum(self.counts.values())


def progress(total: int, disabled: bool, desc: str = "indexing") -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, unit="img", desc=desc, disable=disabled, file=sys.stderr, smoothing=0.1
    )


def notice(text: str) -> None:
    print(text, file=sys.stderr)


def print_index_summary(s: IndexSummary, total: int) -> None:
    c = s.counts
    rate = s.done / s.seconds if s.seconds > 0 else 0.0
    if s.interrupted:
        print(f"interrupted after {s.done} of {total} images in {s.seconds:.1f} s")
    else:
        print(f"indexed {total} images in {s.seconds:.1f} s ({rate:.1f} images/s)")
    stored = c[IngestStatus.ADDED] + s.near_duplicates
    skipped = c[IngestStatus.ALREADY_PRESENT] + s.identical_copies
    print(
        f"  stored {stored} (new {c[IngestStatus.ADDED]} · near-duplicate {s.near_duplicates})"
        f" · skipped {skipped} (already present {c[IngestStatus.ALREADY_PRESENT]}"
        f" · identical copy {s.identical_copies}) · failed {c[IngestStatus.FAILED]}"
    )
    e = s.enriched
    if e is not None and (e.metadata_updated or e.captions_queued):
        print(
            f"  updated {e.metadata_updated} already-stored images' metadata"
            f" · queued {e.captions_queued} of them for captions"
        )
    if e is not None and e.unsupported:
        print(
            f"  {e.unsupported} already-stored images not updated:"
            " enriching works in embedded mode, not through --gateway"
        )
    if s.caption_pending:
        print(f"  {s.caption_pending} captions pending (run `imgsearch recaption` later)")
    if s.interrupted:
        print("  everything listed as stored is in the index; run the same command to go on")
    if s.failures:
        print("failures:")
        for where, reason in s.failures:
            print(f"  {where}: {reason}")


def hits_as_json(query: str, hits: Sequence[Hit], first_rank: int = 1) -> str:
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
                    **(
                        {"rerank_score": round(h.rerank_score, 6)}
                        if h.rerank_score is not None
                        else {}
                    ),
                }
                for rank, h in enumerate(hits, first_rank)
            ],
        },
        indent=2,
        default=str,
    )


def print_hits(hits: Sequence[Hit], first_rank: int = 1) -> None:
    """rank (continuing across pages), score(s), short id, path, caption; a
    re-ranked list shows the match probability and the vector score."""
    if not hits:
        print("no results")
        return
    if any(h.rerank_score is not None for h in hits):
        print(f"{'rank':>4}  {'match':>6}  {'vector':>6}  {'id':<8}  {'path':<50}  caption")
        for rank, h in enumerate(hits, first_rank):
            match = f"{h.rerank_score:>6.3f}" if h.rerank_score is not None else f"{'-':>6}"
            path = short_path(h.uri, 50)
            print(f"{rank:>4}  {match}  {h.score:>6.3f}  {h.id[:8]:<8}  {path:<50}  {h.caption}")
        return
    print(f"{'rank':>4}  {'score':>6}  {'id':<8}  {'path':<50}  caption")
    for rank, h in enumerate(hits, first_rank):
        short = h.id[:8]
        print(f"{rank:>4}  {h.score:>6.3f}  {short:<8}  {short_path(h.uri, 50):<50}  {h.caption}")


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
