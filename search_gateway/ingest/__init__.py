"""Idempotent ingest: images in, points in the store out, one outcome per image.

The point id is UUIDv5(sha256 of the content), so the same content always
maps to one point and re-ingesting costs no model work. Per micro-batch of
the incoming stream, five named stages (see pipeline.py and states.py):

1. read and hash (read.py): the bytes, or the file under the allowed roots
   (paths.py), hashed; the header read (format, size; rejects decompression
   bombs) without decoding pixels;
2. exact duplicates (exact.py): content already stored costs no model work;
   the same uri again is ALREADY_PRESENT, a new uri is recorded in the
   existing point's `paths` and reported as DUPLICATE;
3. embed and caption (embed.py): the new images (captions concurrently when
   asked, or deferred to CaptionBackfill);
4. near-duplicates (near.py): optionally mark images close to a stored point
   or an earlier image of the batch with `duplicate_of`;
5. write (write.py): upsert, and only then report ADDED: nothing is
   acknowledged that is not stored.

A failure of one image is that image's outcome; a store or model outage
fails the batch's new images with UNAVAILABLE, and a re-run adds exactly
those. Images made inside the gateway (video frames) enter at stage 1 as
`ReadyImage`.
"""

from search_gateway.ingest.items import (
    MAX_METADATA_BYTES,
    FrameRef,
    IngestItem,
    IngestOutcome,
    IngestStatus,
    ReadyImage,
    validate_metadata,
)
from search_gateway.ingest.paths import DEFAULT_MAX_FILE_BYTES, PathPolicy
from search_gateway.ingest.pipeline import IngestPipeline
from search_gateway.ingest.read import MAX_URI_CHARS

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_URI_CHARS",
    "FrameRef",
    "IngestItem",
    "IngestOutcome",
    "IngestPipeline",
    "IngestStatus",
    "PathPolicy",
    "ReadyImage",
    "validate_metadata",
]
