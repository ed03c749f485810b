"""Enriching images already in the index when `index` runs again over them.

Re-indexing used to skip stored images silently ("already present"), so new
`--meta` values and `--with-captions` had no effect on them. Now:
* metadata given for an image (--meta, --meta-jsonl) that differs from what
  is stored is written over those keys (other keys stay);
* with --with-captions, a stored image without a caption is queued for the
  caption backfill, which `index` then waits for as for new images.
Embedded mode only: the gateway's gRPC contract has no payload update.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from search_gateway import domain as d
from search_gateway.cli.connect import GatewayAPI
from search_gateway.cli.local_store import is_embedded, local_scope

GET_BATCH = 500


@dataclass
class EnrichReport:
    metadata_updated: int = 0
    captions_queued: int = 0
    unsupported: int = 0  # through --gateway: left as they were


async def enrich(
    api: GatewayAPI, present: Sequence[tuple[str, dict[str, Any]]], captions: bool
) -> EnrichReport:
    """present: (point id, metadata given for it) of the already-stored images."""
    report = EnrichReport()
    wanted = [(pid, meta) for pid, meta in present if meta or captions]
    if not wanted:
        return report
    if not is_embedded(api):
        report.unsupported = len(wanted)
        return report
    for start in range(0, len(wanted), GET_BATCH):
        chunk = wanted[start : start + GET_BATCH]
        hits, _missing = await api.get([pid for pid, _ in chunk])
        stored = {h.id: h.payload for h in hits}
        for pid, meta in chunk:
            payload = stored.get(pid)
            if payload is None:
                continue
            changed = {k: v for k, v in meta.items() if payload.get(k) != v}
            if changed:
                await local_scope(api).set_payload(pid, changed)
                report.metadata_updated += 1
            if captions and not payload.get(d.CAPTION) and not payload.get(d.CAPTION_PENDING):
                await local_scope(api).set_payload(pid, {d.CAPTION_PENDING: True})
                report.captions_queued += 1
    return report
