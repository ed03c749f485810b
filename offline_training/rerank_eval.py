"""Re-ranking quality through the real pipeline: files -> gateway -> store -> search.

Held-out scenes are written as JPEG files and ingested by path into an embedded
gateway (in-process offline-tiny CLIP, BLIP captions inline, Qdrant Edge on disk);
queries go through ``GatewayCore.search`` (vector, hybrid) and through the gateway's
``Reranker`` (the offline-tiny matcher scoring stored thumbnails), as the CLI does.

Query sets:

* colour+shape and size/position queries (the same sets as pipeline_eval);
* a relational set on two-object scenes: for each pair of objects A, B one binding
  query ("a red circle and a blue square") and one relation query ("a red circle
  left of a blue square"), with distractor scenes holding the same objects the
  other way round (B left of A) and with their colours swapped (a blue circle and
  a red square). Relevance is the ground truth of ``offline_training.itm_texts``.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from offline_training import itm_texts, quality, scenes
from offline_training.inference import HELD_OUT_SEED
from offline_training.itm_texts import Statement

RELATIONAL_SEED = 900_201
# (scenes, relational) seeds for choosing settings; disjoint from training and held-out.
VALIDATION_SEEDS = (900_301, 900_401)
# Vector weights of the fused order reported beside the configured one.
WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0)
K = 10
# Grid cells (x, y) of scenes.POSITIONS, to place A and B in a given relation.
_PAIRS_FOR: dict[str, list[tuple[str, str]]] = {
    rel: [
        (a, b)
        for a in scenes.POSITIONS
        for b in scenes.POSITIONS
        if a != b
        and itm_texts.related(
            scenes.SceneObject("circle", "red", "small", a),
            scenes.SceneObject("circle", "red", "small", b),
            rel,
        )
    ]
    for rel in itm_texts.RELATIONS
}


@dataclass
class LabelledScene:
    scene: scenes.Scene
    group: str  # "background" or the relational group it was made for


def relational_scenes(
    n_groups: int, seed: int = RELATIONAL_SEED, per_kind: int = 3
) -> tuple[list[LabelledScene], list[Statement]]:
    """Two-object scenes and their binding + relation queries.

    Per group (objects A, B with different colours and shapes, one relation R):
    `per_kind` scenes with A R B, `per_kind` with B R A (sides swapped), and
    `per_kind` with A's and B's colours swapped (in either order).
    """
    rng = random.Random(seed)
    out: list[LabelledScene] = []
    queries: list[Statement] = []
    relations = list(itm_texts.RELATIONS)
    for g in range(n_groups):
        ca, cb = rng.sample(list(scenes.COLOURS), 2)
        sa, sb = rng.sample(list(scenes.SHAPES), 2)
        rel = relations[g % len(relations)]
        a, b = {"colour": ca, "shape": sa}, {"colour": cb, "shape": sb}
        queries.append(Statement.of([a, b]))
        queries.append(Statement.of([a, b], rel))

        swapped_a, swapped_b = {"colour": cb, "shape": sa}, {"colour": ca, "shape": sb}
        for _ in range(per_kind):
            for first, second, where in (
                (a, b, rng.choice(_PAIRS_FOR[rel])),
                (b, a, rng.choice(_PAIRS_FOR[rel])),  # same objects, the other way round
                (swapped_a, swapped_b, tuple(rng.sample(scenes.POSITIONS, 2))),
            ):
                out.append(LabelledScene(_two_objects(first, second, where, rng), f"group{g}"))
    return out, queries


def _two_objects(
    first: dict[str, str], second: dict[str, str], where: Sequence[str], rng: random.Random
) -> scenes.Scene:
    objs = [
        scenes.SceneObject(m["shape"], m["colour"], rng.choice(scenes.SIZES), p)
        for m, p in zip((first, second), where, strict=True)
    ]
    bg = rng.choice(list(scenes.BACKGROUNDS))
    return scenes.Scene(scenes.render(objs, bg, rng), scenes.caption_for(objs), objs, bg)


def _precision(ranked: Sequence[bool], n_relevant: int, k: int = K) -> float:
    return quality.precision_at_k(ranked, n_relevant, k)


def r_precision(ranked: Sequence[bool], n_relevant: int) -> float:
    """Relevant hits among the first ``n_relevant``: precision at the query's own depth.

    P@10 (divided by min(10, relevant)) cannot see a swapped distractor ranked
    above a true scene when a relational query has only 3 or 6 true scenes and
    the distractors also fit in the top 10; R-precision counts every one of them.
    """
    if n_relevant <= 0:
        raise ValueError("query has no relevant scene")
    return float(sum(bool(r) for r in ranked[:n_relevant])) / n_relevant


async def _evaluate(
    data_dir: Path,
    n_scenes: int,
    n_attr_queries: int,
    n_groups: int,
    candidates: int,
    seed: int,
    relational_seed: int,
    vector_weight: float | None,
) -> dict[str, Any]:
    from search_gateway.assemble import build_core
    from search_gateway.core import SearchQuery
    from search_gateway.ingest import IngestItem
    from search_gateway.rerank import fused_order
    from search_gateway.settings import CaptionerLink, EmbedderLink, GatewaySettings, RerankLink
    from search_gateway.thumbnails import ThumbnailStore, make_thumbnail

    files = data_dir / "files"
    files.mkdir(parents=True, exist_ok=True)
    background = [LabelledScene(s, "background") for s in scenes.generate_dataset(n_scenes, seed)]
    relational, rel_queries = relational_scenes(n_groups, relational_seed)
    everything = background + relational
    paths = []
    for i, ls in enumerate(everything):
        path = files / f"{i:05d}.jpg"
        ls.scene.image.save(path, quality=95)
        paths.append(path)
    settings = GatewaySettings(
        data_dir=str(data_dir / "data"),
        collection="rerank-eval",
        embedder=EmbedderLink(model="offline-tiny", pretrained="", device="cpu"),
        captioner=CaptionerLink(model="offline-tiny", device="cpu"),
        caption_mode="inline",
        rerank=RerankLink(model="offline-tiny")
        if vector_weight is None
        else RerankLink(model="offline-tiny", vector_weight=vector_weight),
    )
    core = await build_core(settings, read_roots=[files])
    thumbs = ThumbnailStore.under(settings.data_dir, settings.collection)
    try:

        async def items() -> AsyncIterator[IngestItem]:
            for p in paths:
                yield IngestItem(path=str(p), uri=str(p), with_captions=True)

        started = time.perf_counter()
        outcomes = [o async for o in core.ingest(items())]
        ingest_s = time.perf_counter() - started
        bad = [o for o in outcomes if o.status.value == "failed"]
        if bad:
            raise RuntimeError(f"{len(bad)} scenes failed to ingest: {bad[0].reason}")
        # Thumbnails as the ingest stage stores them (camera's thumbnail store);
        # points that already have one (ingest wrote it) are left alone.
        written = 0
        for o, ls in zip(outcomes, everything, strict=True):
            if o.id and thumbs.get(o.id) is None:
                thumbs.put(o.id, make_thumbnail(ls.scene.image))
                written += 1
        objects = [ls.scene.objects for ls in everything]
        index_of = {str(p): i for i, p in enumerate(paths)}
        reranker = core.reranker
        assert reranker is not None and reranker.scorer is not None

        weights = sorted({*WEIGHT_GRID, reranker.vector_weight})
        rerank_s: list[float] = []

        async def ranked(text: str, mode: str) -> tuple[list[int], dict[float, list[int]]]:
            """Candidate ids in vector (or hybrid) order, and re-ranked per vector weight.

            One candidate search and one scoring per query; the order at the
            configured weight is exactly what Reranker.search returns.
            """
            t0 = time.perf_counter()
            cands = await core.search(SearchQuery(text=text, k=candidates, mode=mode))
            await reranker.rerank(text, list(cands), strict=True, timeout=None)
            rerank_s.append(time.perf_counter() - t0)
            ids = [index_of[h.uri] for h in cands]
            by_weight = {w: [ids[i] for i in fused_order(cands, w)] for w in weights}
            return ids, by_weight

        results: dict[str, Any] = {
            "ingest_s": ingest_s,
            "thumbnails_written_by_eval": written,
            "n_points": len(everything),
            "candidates": candidates,
            "vector_weight": reranker.vector_weight,
            "weights": weights,
        }
        attr_sets = {
            "colour_shape": quality.colour_shape_queries([s.scene.objects for s in background]),
            "with_size_or_position": quality.attribute_queries(
                [s.scene.objects for s in background], n_attr_queries, seed
            ),
        }
        statements = {
            "relational_binding": [q for q in rel_queries if q.relation is None],
            "relational_relation": [q for q in rel_queries if q.relation is not None],
        }
        sets: list[tuple[str, list[tuple[str, list[bool]]], tuple[str, ...]]] = []
        for name, queries in attr_sets.items():
            cases = [
                (quality.query_text(q), [quality.is_relevant(q, objs) for objs in objects])
                for q in queries
            ]
            sets.append((name, cases, ("vector",)))
        for name, sts in statements.items():
            cases = [(st.text(), [itm_texts.is_true(st, objs) for objs in objects]) for st in sts]
            sets.append((name, cases, ("vector", "hybrid")))
        for name, cases, modes in sets:
            for mode in modes:
                plain: list[float] = []
                plain_r: list[float] = []
                fused: dict[float, list[float]] = {w: [] for w in weights}
                fused_r: dict[float, list[float]] = {w: [] for w in weights}
                for text, rel in cases:
                    top, by_weight = await ranked(text, mode)
                    plain.append(_precision([rel[i] for i in top], sum(rel)))
                    plain_r.append(r_precision([rel[i] for i in top], sum(rel)))
                    for w, ids in by_weight.items():
                        fused[w].append(_precision([rel[i] for i in ids], sum(rel)))
                        fused_r[w].append(r_precision([rel[i] for i in ids], sum(rel)))
                prefix = "" if mode == "vector" else "hybrid+"
                chosen = reranker.vector_weight
                results[f"{name}/{mode}"] = float(np.mean(plain))
                results[f"{name}/{prefix}rerank"] = float(np.mean(fused[chosen]))
                results[f"{name}/{mode}/R"] = float(np.mean(plain_r))
                results[f"{name}/{prefix}rerank/R"] = float(np.mean(fused_r[chosen]))
                for w in weights:
                    results[f"{name}/{prefix}rerank@{w:g}"] = float(np.mean(fused[w]))
                    results[f"{name}/{prefix}rerank@{w:g}/R"] = float(np.mean(fused_r[w]))
            results[f"{name}/queries"] = len(cases)
        results["rerank_search_p50_s"] = float(np.percentile(rerank_s, 50))
        results["rerank_search_p99_s"] = float(np.percentile(rerank_s, 99))
        results["examples"] = [st.text() for st in rel_queries[:4]]
        return results
    finally:
        await core.close()


def check_bars(r: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(bar, passed, figures) for each of issue 16's bars."""
    out = []
    sp = r["with_size_or_position/rerank"]
    out.append(("size/position p@10 >= 0.95 re-ranked", sp >= 0.95, f"{sp:.3f}"))
    for kind in ("binding", "relation"):
        for measure, suffix in (("P@10", ""), ("R-precision", "/R")):
            v = r[f"relational_{kind}/vector{suffix}"]
            rr = r[f"relational_{kind}/rerank{suffix}"]
            ok = (1 - rr) <= (1 - v) / 2
            figures = f"{1 - v:.3f} -> {1 - rr:.3f}"
            out.append((f"relational {kind}: {measure} error halved", ok, figures))
    cv, cr = r["colour_shape/vector"], r["colour_shape/rerank"]
    out.append(("colour+shape does not drop", cr >= cv, f"{cv:.3f} -> {cr:.3f}"))
    return out


def evaluate_rerank(
    n_scenes: int = 600,
    n_attr_queries: int = 80,
    n_groups: int = 16,
    candidates: int = 50,
    seed: int = HELD_OUT_SEED,
    data_dir: Path | None = None,
    relational_seed: int = RELATIONAL_SEED,
    vector_weight: float | None = None,
) -> dict[str, Any]:
    """Runs the evaluation in a fresh (temporary) index; returns the metrics.

    `vector_weight` None = the gateway's default (settings.RerankLink). Choose a
    weight on the validation seeds (VALIDATION_SEEDS), never on the held-out ones.
    """
    args = (n_scenes, n_attr_queries, n_groups, candidates, seed, relational_seed, vector_weight)
    if data_dir is not None:
        return asyncio.run(_evaluate(data_dir, *args))
    with tempfile.TemporaryDirectory(prefix="imgsearch-rerank-eval-") as tmp:
        return asyncio.run(_evaluate(Path(tmp), *args))
