"""The record of which model a collection's vectors come from, in the form both
engines store it (Qdrant collection metadata, Edge's model file).

Kept apart from qdrant_schema so that the Edge store (and every CLI command
over it) does not import qdrant-client, whose import alone costs ~0.3 s.
"""

from __future__ import annotations

from typing import Any

from search_gateway import domain as d

# Key of the collection metadata entry that records the embedding model.
METADATA_KEY = "imgsearch"
# Bumped when the stored layout changes incompatibly.
SCHEMA_VERSION = 1


def spec_to_metadata(spec: d.CollectionSpec) -> dict[str, Any]:
    """Collection metadata recording which model the vectors come from."""
    return {
        METADATA_KEY: {
            "model": spec.model,
            "pretrained": spec.pretrained,
            "dimension": spec.dimension,
            "schema": SCHEMA_VERSION,
        }
    }


def spec_from_metadata(metadata: dict[str, Any] | None) -> d.CollectionSpec | None:
    """The recorded spec, or None when the collection carries no (valid) record."""
    record = (metadata or {}).get(METADATA_KEY)
    if not isinstance(record, dict):
        return None
    try:
        return d.CollectionSpec(
            model=str(record["model"]),
            pretrained=str(record["pretrained"]),
            dimension=int(record["dimension"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
