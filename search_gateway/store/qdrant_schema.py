"""The Qdrant shape of an imgsearch collection: vectors and payload indexes
(the model record is store/model_record.py, shared with the Edge store)."""

from __future__ import annotations

from typing import Any

from qdrant_client import models

from search_gateway import domain as d


def vectors_config(spec: d.CollectionSpec) -> dict[str, models.VectorParams]:
    """The dense CLIP vector: cosine over spec.dimension floats."""
    return {
        d.DENSE_VECTOR: models.VectorParams(size=spec.dimension, distance=models.Distance.COSINE)
    }


def sparse_vectors_config() -> dict[str, models.SparseVectorParams]:
    """Caption terms; Qdrant's IDF modifier turns their dot product into BM25."""
    return {d.CAPTION_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)}


def payload_index_schema(kind: d.IndexKind) -> models.PayloadSchemaType | Any:
    """Qdrant payload index for a domain index kind."""
    if kind is d.IndexKind.KEYWORD:
        return models.PayloadSchemaType.KEYWORD
    if kind is d.IndexKind.TENANT_KEYWORD:
        # Server mode co-locates each tenant's points, so per-tenant searches stay fast.
        return models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
    if kind is d.IndexKind.INTEGER:
        return models.IntegerIndexParams(
            type=models.IntegerIndexType.INTEGER, lookup=True, range=True
        )
    if kind is d.IndexKind.FLOAT:
        return models.PayloadSchemaType.FLOAT
    if kind is d.IndexKind.BOOL:
        return models.PayloadSchemaType.BOOL
    if kind is d.IndexKind.DATETIME:
        return models.PayloadSchemaType.DATETIME
    if kind is d.IndexKind.GEO:
        return models.PayloadSchemaType.GEO
    if kind is d.IndexKind.TEXT:
        # The default word tokenizer, lowercased: the same tokens as caption_terms,
        # and the only text index local mode reproduces exactly.
        return models.TextIndexParams(
            type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.WORD, lowercase=True
        )
    raise ValueError(f"no Qdrant index for {kind}")
