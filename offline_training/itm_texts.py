"""Structured texts about scenes, their truth, and hard negatives for image-text matching.

A cross-encoder is only worth its cost where a single CLIP vector is weak: which
colour goes with which shape, where things are, which is bigger. Its training texts
therefore come as structures (mentions, conjunctions, relations) that are checked
against the scene's ground truth, so every label is exact even when a "corruption"
happens to produce a true statement. The relational eval queries use the same
structures, so training and evaluation agree on what "left of" means.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from offline_training import scenes

Mention = dict[str, str]
# Relations between two objects, judged on the layout's centres (x right, y down).
RELATIONS: dict[str, str] = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
}
# Words the ITM tokenizer adds to the shared scene vocabulary.
EXTRA_WORDS: tuple[str, ...] = ("above", "below")
_CENTRE_XY: dict[str, tuple[int, int]] = {
    "left": (0, 1),
    "right": (2, 1),
    "top": (1, 0),
    "bottom": (1, 2),
    "centre": (1, 1),
}


@dataclass(frozen=True)
class Statement:
    """A text as structure: mentions joined by "and", or ``a <relation> b``."""

    mentions: tuple[tuple[tuple[str, str], ...], ...]
    relation: str | None = None  # only with exactly two mentions
    prefix: str = ""

    @staticmethod
    def of(mentions: Sequence[Mention], relation: str | None = None, prefix: str = "") -> Statement:
        return Statement(tuple(tuple(m.items()) for m in mentions), relation, prefix)

    def mention_dicts(self) -> list[Mention]:
        return [dict(m) for m in self.mentions]

    def text(self) -> str:
        phrases = [scenes.describe(m, tuple(m)) for m in self.mention_dicts()]
        body = (
            f"{phrases[0]} {self.relation} {phrases[1]}"
            if self.relation
            else scenes.join_phrases(phrases)
        )
        return f"{self.prefix} {body}" if self.prefix else body


def matches(obj: scenes.SceneObject, mention: Mention) -> bool:
    """Every attribute the mention names is the object's."""
    return all(getattr(obj, k) == v for k, v in mention.items())


def related(a: scenes.SceneObject, b: scenes.SceneObject, relation: str) -> bool:
    """``a <relation> b`` on the 3x3 layout grid (strict along the relation's axis)."""
    (ax, ay), (bx, by) = _CENTRE_XY[a.position], _CENTRE_XY[b.position]
    return {
        "left of": ax < bx,
        "right of": ax > bx,
        "above": ay < by,
        "below": ay > by,
    }[relation]


def is_true(statement: Statement, objects: Sequence[scenes.SceneObject]) -> bool:
    """Distinct objects satisfy every mention (and the relation, if any)."""
    ms = statement.mention_dicts()
    if statement.relation is not None:
        return any(
            matches(a, ms[0]) and matches(b, ms[1]) and related(a, b, statement.relation)
            for a in objects
            for b in objects
            if a is not b
        )
    return _assign(ms, list(objects))


def _assign(ms: list[Mention], free: list[scenes.SceneObject]) -> bool:
    if not ms:
        return True
    return any(
        matches(o, ms[0]) and _assign(ms[1:], free[:i] + free[i + 1 :]) for i, o in enumerate(free)
    )


def _mention(obj: scenes.SceneObject, attrs: Sequence[str]) -> Mention:
    return {k: getattr(obj, k) for k in attrs}


def _attrs(rng: random.Random, p_size: float = 0.5, p_pos: float = 0.5) -> list[str]:
    a = ["colour", "shape"]
    if rng.random() < p_size:
        a.insert(0, "size")
    if rng.random() < p_pos:
        a.append("position")
    return a


def true_statement(objects: Sequence[scenes.SceneObject], rng: random.Random) -> Statement:
    """A statement that is true of the scene: a query-like mention, a conjunction,
    a relation between two objects, or the full caption."""
    objs = list(objects)
    prefix = rng.choice(scenes.QUERY_PREFIXES) if rng.random() < 0.08 else ""
    u = rng.random()
    if len(objs) >= 2 and u < 0.3:
        a, b = rng.sample(objs, 2)
        rels = [r for r in RELATIONS if related(a, b, r)]
        if rels:
            attrs = _attrs(rng, 0.3, 0.0)
            return Statement.of([_mention(a, attrs), _mention(b, attrs)], rng.choice(rels), prefix)
    if len(objs) >= 2 and u < 0.5:
        k = rng.randint(2, len(objs))
        attrs = _attrs(rng, 0.4, 0.4)
        return Statement.of([_mention(o, attrs) for o in rng.sample(objs, k)], None, prefix)
    if u < 0.6:
        return Statement.of([_mention(o, scenes.ATTRIBUTES) for o in objs], None, prefix)
    return Statement.of([_mention(rng.choice(objs), _attrs(rng, 0.6, 0.6))], None, prefix)


_VALUES: dict[str, Sequence[str]] = {
    "colour": tuple(scenes.COLOURS),
    "shape": scenes.SHAPES,
    "size": scenes.SIZES,
    "position": scenes.POSITIONS,
}


def corrupt(
    statement: Statement, objects: Sequence[scenes.SceneObject], rng: random.Random
) -> Statement:
    """A near-miss of ``statement``: attributes swapped between the scene's objects,
    one attribute changed, a relation flipped or its sides exchanged.

    The result may still be true (the caller labels it with :func:`is_true`).
    """
    ms = statement.mention_dicts()
    objs = list(objects)
    u = rng.random()
    if statement.relation is not None and u < 0.35:
        if rng.random() < 0.5:
            return Statement.of(ms, RELATIONS[statement.relation], statement.prefix)
        return Statement.of([ms[1], ms[0]], statement.relation, statement.prefix)
    if len(ms) >= 2 and u < 0.6:
        # Attribute binding: exchange one attribute between two mentions.
        i, j = rng.sample(range(len(ms)), 2)
        keys = [k for k in ms[i] if k in ms[j] and ms[i][k] != ms[j][k]]
        if keys:
            k = rng.choice(keys)
            ms[i][k], ms[j][k] = ms[j][k], ms[i][k]
            return Statement.of(ms, statement.relation, statement.prefix)
    i = rng.randrange(len(ms))
    m = ms[i]
    others = [o for o in objs if not matches(o, m)]
    if others and rng.random() < 0.6:
        # Swap within the scene: give the mention another object's value of one attribute.
        other = rng.choice(others)
        keys = [k for k in m if getattr(other, k) != m[k]]
        if keys:
            k = rng.choice(keys)
            m[k] = getattr(other, k)
            return Statement.of(ms, statement.relation, statement.prefix)
    k = rng.choice(list(m))
    m[k] = rng.choice([v for v in _VALUES[k] if v != m[k]])
    return Statement.of(ms, statement.relation, statement.prefix)


def training_pairs(
    objects: Sequence[scenes.SceneObject], rng: random.Random, n_texts: int
) -> list[tuple[str, int]]:
    """``n_texts`` (text, label) pairs for one scene, about a third of them true:
    the rest are mostly hard negatives (near misses), labelled by the ground truth."""
    out: list[tuple[str, int]] = []
    base = true_statement(objects, rng)
    out.append((base.text(), 1))
    while len(out) < n_texts:
        u = rng.random()
        if u < 0.15:
            s = true_statement(objects, rng)
        elif u < 0.22:  # an easy negative: a statement about another scene
            s = true_statement(scenes.random_objects(rng), rng)
        else:
            s = corrupt(base if rng.random() < 0.6 else true_statement(objects, rng), objects, rng)
            if rng.random() < 0.3:
                s = corrupt(s, objects, rng)
        out.append((s.text(), int(is_true(s, objects))))
    return out
