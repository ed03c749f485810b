"""The Qdrant Edge shape of an imgsearch collection: tuning, shard config, indexes.

The counterpart of store/qdrant_schema.py for qdrant-edge-py's classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from search_gateway import domain as d


@dataclass(frozen=True)
class EdgeTuning:
    """HNSW and optimizer knobs of an Edge shard (defaults meet the 1M-point target)."""

    hnsw_m: int = 16
    hnsw_ef_construct: int = 100  # Qdrant's default
    # Segments under this size (KB of vectors) are scanned exactly instead of
    # searched through HNSW; Qdrant's default.
    full_scan_threshold_kb: int = 10_000
    # ef at query time: recall@10 >= 0.95 on clustered CLIP-like vectors at 1M.
    hnsw_ef: int = 128
    # optimize() runs once max(optimize_after_points, optimize_growth * points
    # already indexed) points were written since the last run: rebuilds stay
    # rare as the shard grows. Until then new points are searched exactly (a
    # plain scan, ~1 ms per 10k points).
    optimize_after_points: int = 20_000
    optimize_growth: float = 0.2
    # Upper bound of one segment (KB); bounds what one optimize() rebuilds.
    max_segment_size_kb: int | None = None
    # Writes flush segments at most this often (Qdrant server's default), so
    # the WAL is truncated instead of growing and replaying at every start.
    flush_interval_s: float = 5.0


def shard_config(spec: d.CollectionSpec, t: EdgeTuning) -> qe.EdgeConfig:
    """Dense cosine vector of spec.dimension, BM25 caption terms, HNSW as tuned."""
    return qe.EdgeConfig(
        vectors={
            d.DENSE_VECTOR: qe.EdgeVectorParams(size=spec.dimension, distance=qe.Distance.Cosine)
        },
        # Qdrant's IDF modifier turns the caption terms' dot product into BM25.
        sparse_vectors={d.CAPTION_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        hnsw_config=qe.HnswIndexConfig(
            m=t.hnsw_m,
            ef_construct=t.hnsw_ef_construct,
            full_scan_threshold=t.full_scan_threshold_kb,
        ),
        optimizers=qe.EdgeOptimizersConfig(max_segment_size=t.max_segment_size_kb)
        if t.max_segment_size_kb
        else None,
    )


def index_params(kind: d.IndexKind) -> qe.PayloadSchemaType | Any:
    """Edge payload index for a domain index kind (as qdrant_schema.payload_index_schema)."""
    try:
        return _INDEX_PARAMS[kind]
    except KeyError:
        raise ValueError(f"no Edge index for {kind}") from None


_INDEX_PARAMS: dict[d.IndexKind, Any] = {
    d.IndexKind.KEYWORD: qe.PayloadSchemaType.Keyword,
    d.IndexKind.TENANT_KEYWORD: qe.KeywordIndexParams(is_tenant=True),
    d.IndexKind.INTEGER: qe.IntegerIndexParams(lookup=True, range=True),
    d.IndexKind.FLOAT: qe.PayloadSchemaType.Float,
    d.IndexKind.BOOL: qe.PayloadSchemaType.Bool,
    d.IndexKind.DATETIME: qe.PayloadSchemaType.Datetime,
    d.IndexKind.GEO: qe.PayloadSchemaType.Geo,
    # The word tokenizer, lowercased: the same tokens as caption_terms.
    d.IndexKind.TEXT: qe.TextIndexParams(tokenizer=qe.TokenizerType.Word, lowercase=True),
}


def shard_dense_size(shard_path: Path) -> int | None:
    """Dimension of the dense vector from the shard's edge_config.json, if readable."""
    try:
        config = json.loads((shard_path / "edge_config.json").read_text(encoding="utf-8"))
        return int(config["vectors"][d.DENSE_VECTOR]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def sparse(terms: Any) -> qe.SparseVector:
    """Caption terms as an Edge sparse vector."""
    return qe.SparseVector(list(terms.indices), list(terms.values))
