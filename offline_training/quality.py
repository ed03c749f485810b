"""Pure quality metrics for the offline models, shared by eval/ and the tests.

A text query names one or more objects with a subset of attributes ("a small blue
square on the right"); a scene is relevant when, for every named object, it holds an
object having all the named attributes. Retrieval is scored with precision@k where
the denominator is min(k, number of relevant scenes), so rare queries are not capped
below 1.0.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from offline_training import scenes

Mention = Mapping[str, str]
ObjectLike = Mapping[str, str] | scenes.SceneObject


def _as_dict(obj: ObjectLike) -> Mapping[str, str]:
    return obj.to_dict() if isinstance(obj, scenes.SceneObject) else obj


def object_matches(mention: Mention, obj: ObjectLike) -> bool:
    """True when ``obj`` has every attribute the mention names."""
    d = _as_dict(obj)
    return all(d.get(k) == v for k, v in mention.items())


def is_relevant(query: Sequence[Mention], objects: Sequence[ObjectLike]) -> bool:
    """A scene is relevant when each mentioned object matches some object in it."""
    return all(any(object_matches(m, o) for o in objects) for m in query)


def precision_at_k(ranked_relevant: Sequence[bool], n_relevant: int, k: int = 10) -> float:
    """Relevant hits in the top ``k``, divided by ``min(k, n_relevant)``."""
    if n_relevant <= 0:
        raise ValueError("query has no relevant scene")
    return float(sum(bool(r) for r in ranked_relevant[:k])) / min(k, n_relevant)


def query_text(query: Sequence[Mention]) -> str:
    """Natural-language form of a query ("a small blue square on the right")."""
    return scenes.mentions_text(query)


def colour_shape_queries(
    objects_per_scene: Sequence[Sequence[ObjectLike]],
) -> list[list[dict[str, str]]]:
    """Every colour+shape pair that occurs at least once in the scenes."""
    present = {
        (_as_dict(o)["colour"], _as_dict(o)["shape"]) for objs in objects_per_scene for o in objs
    }
    return [
        [{"colour": c, "shape": s}]
        for c in scenes.COLOURS
        for s in scenes.SHAPES
        if (c, s) in present
    ]


def attribute_queries(
    objects_per_scene: Sequence[Sequence[ObjectLike]], n: int, seed: int = 0
) -> list[list[dict[str, str]]]:
    """``n`` distinct colour+shape queries with size and/or position added, each taken
    from an object that exists in the scenes (so every query has a relevant scene)."""
    rng = random.Random(seed)
    objs = [_as_dict(o) for objs in objects_per_scene for o in objs]
    extras = (("size",), ("position",), ("size", "position"))
    seen: set[tuple[tuple[str, str], ...]] = set()
    out: list[list[dict[str, str]]] = []
    for _ in range(n * 50):
        if len(out) >= n:
            break
        o = rng.choice(objs)
        keys = ("colour", "shape", *rng.choice(extras))
        mention = {k: o[k] for k in keys}
        sig = tuple(sorted(mention.items()))
        if sig not in seen:
            seen.add(sig)
            out.append([mention])
    return out


def retrieval_precision(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    queries: Sequence[Sequence[Mention]],
    objects_per_scene: Sequence[Sequence[ObjectLike]],
    k: int = 10,
) -> dict[str, Any]:
    """Brute-force cosine search; mean precision@k over queries plus per-query detail."""
    img = image_embeddings / np.linalg.norm(image_embeddings, axis=1, keepdims=True)
    txt = text_embeddings / np.linalg.norm(text_embeddings, axis=1, keepdims=True)
    sims = txt @ img.T
    per_query: list[float] = []
    for qi, q in enumerate(queries):
        rel = np.array([is_relevant(q, objs) for objs in objects_per_scene])
        order = np.argsort(-sims[qi], kind="stable")
        per_query.append(precision_at_k(rel[order].tolist(), int(rel.sum()), k))
    return {
        "precision": float(np.mean(per_query)),
        "per_query": per_query,
        "n_queries": len(queries),
    }


def ranked_precision(
    ranked_ids: Sequence[Sequence[int]],
    queries: Sequence[Sequence[Mention]],
    objects_per_scene: Sequence[Sequence[ObjectLike]],
    k: int = 10,
) -> float:
    """Mean precision@k when a search backend already returned ranked scene indices."""
    vals = []
    for q, ids in zip(queries, ranked_ids, strict=True):
        rel = [is_relevant(q, objs) for objs in objects_per_scene]
        vals.append(precision_at_k([rel[i] for i in ids], sum(rel), k))
    return float(np.mean(vals))


_WORD = re.compile(r"[a-z]+")


def caption_names_objects(caption: str, objects: Sequence[ObjectLike]) -> bool:
    """True when the caption names the right colour directly before (optionally after a
    size word) the right shape, for every object: "a large red circle" names red circle."""
    words = _WORD.findall(caption.lower())
    pairs: set[tuple[str, str]] = set()
    for i, w in enumerate(words):
        if w in scenes.SHAPES:
            j = i - 1
            while j >= 0 and words[j] in scenes.SIZES:
                j -= 1
            if j >= 0 and words[j] in scenes.COLOURS:
                pairs.add((words[j], w))
            if i >= 2 and words[i - 2] in scenes.COLOURS and words[i - 1] in scenes.SIZES:
                pairs.add((words[i - 2], w))
    return all((_as_dict(o)["colour"], _as_dict(o)["shape"]) in pairs for o in objects)


def caption_accuracy(
    captions: Sequence[str], objects_per_scene: Sequence[Sequence[ObjectLike]]
) -> float:
    """Share of scenes whose caption names every object's colour and shape."""
    ok = [
        caption_names_objects(c, objs) for c, objs in zip(captions, objects_per_scene, strict=True)
    ]
    return float(np.mean(ok)) if ok else 0.0


def embed_in_batches(
    fn: Callable[[Sequence[Any]], np.ndarray], items: Sequence[Any], batch: int = 256
) -> np.ndarray:
    """Apply an embedding function over ``items`` in batches and stack the results."""
    return np.concatenate([fn(items[i : i + batch]) for i in range(0, len(items), batch)], axis=0)


def print_bars(checks: Iterable[tuple[str, bool, str]]) -> bool:
    """Prints PASS or FAIL, the bar and its figures for each (bar, passed, figures)
    of an eval script; True when every bar passed."""
    ok = True
    for bar, passed, figures in checks:
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'} {bar}: {figures}")
    return ok
