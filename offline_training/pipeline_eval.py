"""Search quality of the offline models through the real product pipeline.

Held-out scenes are ingested into an embedded gateway (GatewayCore with the
in-process offline-tiny CLIP and BLIP and an on-disk Qdrant), then queried
with `GatewayCore.search` exactly as the CLI does. This measures what a user
gets, including decoding, batching, storage and filters — not just the model.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from offline_models.registry import OFFLINE_MODEL_NAME
from offline_training import quality, scenes
from offline_training.inference import HELD_OUT_SEED

CAMERAS = ("cam-01", "cam-02", "cam-03")


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


async def _evaluate(
    n_scenes: int, seed: int, n_attr_queries: int, caption_scenes: int, data_dir: Path
) -> dict[str, Any]:
    from search_gateway import domain as d
    from search_gateway.assemble import build_core
    from search_gateway.core import SearchQuery
    from search_gateway.ingest import IngestItem
    from search_gateway.settings import CaptionerLink, EmbedderLink, GatewaySettings

    settings = GatewaySettings(
        data_dir=str(data_dir),
        collection="eval",
        embedder=EmbedderLink(model=OFFLINE_MODEL_NAME, pretrained=""),
        captioner=CaptionerLink(model=OFFLINE_MODEL_NAME),
        caption_mode="inline",
    )
    core = await build_core(settings)
    data = scenes.generate_dataset(n_scenes, seed)
    single = scenes.generate_dataset(caption_scenes, seed + 1, n_objects=1)
    objects = [s.objects for s in data]
    try:

        async def items() -> AsyncIterator[IngestItem]:
            for i, s in enumerate(data):
                meta = {"camera_id": CAMERAS[i % len(CAMERAS)]}
                yield IngestItem(data=_png(s.image), uri=f"scene/{i}", metadata=meta)
            for i, s in enumerate(single):
                yield IngestItem(
                    data=_png(s.image), uri=f"single/{i}", with_captions=True,
                    metadata={"camera_id": "captions"},
                )  # fmt: skip

        outcomes = [o async for o in core.ingest(items())]
        failed = [o for o in outcomes if o.status.value == "failed"]
        if failed:
            raise RuntimeError(f"{len(failed)} scenes failed to ingest: {failed[0].reason}")
        only_scenes = d.Filter(must_not=(d.Match("camera_id", "captions"),))

        async def ranked(query: list[dict[str, str]], flt: d.Filter) -> list[Any]:
            text = quality.query_text(query)
            return await core.search(SearchQuery(text=text, k=10, filter=flt))

        results: dict[str, Any] = {}
        for name, queries in (
            ("colour_shape", quality.colour_shape_queries(objects)),
            ("with_size_or_position", quality.attribute_queries(objects, n_attr_queries, seed)),
        ):
            ids = [
                [int(h.uri.split("/")[1]) for h in await ranked(q, only_scenes)] for q in queries
            ]
            results[name] = quality.ranked_precision(ids, queries, objects)
            results[f"{name}_queries"] = len(queries)

        # A metadata filter: every hit must satisfy it.
        cam = d.Filter(must=(d.Match("camera_id", "cam-02"),))
        violations = 0
        for q in quality.colour_shape_queries(objects)[:20]:
            violations += sum(h.payload.get("camera_id") != "cam-02" for h in await ranked(q, cam))
        results["filter_violations"] = violations

        # Captions stored by the pipeline for single-object scenes.
        captioned = await core.search(
            SearchQuery(text="a shape", k=caption_scenes,
                        filter=d.Filter(must=(d.Match("camera_id", "captions"),)))
        )  # fmt: skip
        by_index = {int(h.uri.split("/")[1]): h.caption for h in captioned}
        captions = [by_index.get(i, "") for i in range(caption_scenes)]
        results["captions_single_object"] = quality.caption_accuracy(
            captions, [s.objects for s in single]
        )
        results["caption_examples"] = [
            (single[i].caption, captions[i]) for i in range(min(5, caption_scenes))
        ]
        return results
    finally:
        await core.close()


def evaluate_pipeline(
    n_scenes: int = 500,
    seed: int = HELD_OUT_SEED,
    n_attr_queries: int = 100,
    caption_scenes: int = 200,
    data_dir: Path | None = None,
) -> dict[str, Any]:
    """Runs the evaluation in a fresh (temporary) index; returns the metrics."""
    if data_dir is not None:
        return asyncio.run(_evaluate(n_scenes, seed, n_attr_queries, caption_scenes, data_dir))
    with tempfile.TemporaryDirectory(prefix="imgsearch-eval-") as tmp:
        return asyncio.run(_evaluate(n_scenes, seed, n_attr_queries, caption_scenes, Path(tmp)))
