"""Deterministic synthetic scenes: coloured shapes on plain backgrounds.

No pretrained weights can be downloaded in this project's environments, so the
offline models are trained on these scenes; every scene carries its true caption
and structured ground truth so retrieval and captioning quality can be measured.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

IMAGE_SIZE = 64

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 165, 50),
    "blue": (35, 70, 225),
    "yellow": (245, 225, 30),
    "purple": (140, 40, 185),
    "orange": (250, 140, 20),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
SIZES: tuple[str, ...] = ("small", "large")
POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "centre")
# Muted backgrounds that never look like any object colour.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "gray": (135, 135, 135),
    "sand": (190, 172, 135),
    "slate": (85, 95, 115),
}

POSITION_PHRASES: dict[str, str] = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "centre": "in the centre",
}
_MARGIN = 12
_CENTRES: dict[str, tuple[float, float]] = {
    "left": (_MARGIN, IMAGE_SIZE / 2),
    "right": (IMAGE_SIZE - _MARGIN, IMAGE_SIZE / 2),
    "top": (IMAGE_SIZE / 2, _MARGIN),
    "bottom": (IMAGE_SIZE / 2, IMAGE_SIZE - _MARGIN),
    "centre": (IMAGE_SIZE / 2, IMAGE_SIZE / 2),
}
_RADIUS = {"small": (5.5, 6.5), "large": (9.5, 10.5)}
QUERY_PREFIXES: tuple[str, ...] = ("a photo of", "a picture of", "an image of", "a drawing of")
ATTRIBUTES: tuple[str, ...] = ("colour", "shape", "size", "position")


@dataclass(frozen=True)
class SceneObject:
    """Ground truth for one drawn shape."""

    shape: str
    colour: str
    size: str
    position: str

    def to_dict(self) -> dict[str, str]:
        return {
            "shape": self.shape,
            "colour": self.colour,
            "size": self.size,
            "position": self.position,
        }


@dataclass
class Scene:
    """One generated image with its true caption and structured ground truth."""

    image: Image.Image
    caption: str
    objects: list[SceneObject]
    background: str = "gray"
    extra: dict[str, Any] = field(default_factory=dict)

    def ground_truth(self) -> dict[str, Any]:
        """JSON-serialisable ground truth."""
        return {
            "caption": self.caption,
            "background": self.background,
            "objects": [o.to_dict() for o in self.objects],
        }


def describe(obj: Mapping[str, str] | SceneObject, attrs: Sequence[str] = ATTRIBUTES) -> str:
    """Noun phrase for an object naming only ``attrs`` (colour and shape always)."""
    d = obj.to_dict() if isinstance(obj, SceneObject) else obj
    words = ["a"]
    if "size" in attrs and d.get("size"):
        words.append(d["size"])
    words += [d["colour"], d["shape"]]
    if words[1][0] in "aeiou":
        words[0] = "an"
    text = " ".join(words)
    if "position" in attrs and d.get("position"):
        text += " " + POSITION_PHRASES[d["position"]]
    return text


def join_phrases(phrases: Sequence[str]) -> str:
    """'x', 'x and y', 'x, y and z'."""
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption_for(objects: Sequence[SceneObject]) -> str:
    """The true, complete caption: every object with size, colour, shape and position."""
    return join_phrases([describe(o) for o in objects])


def _polygon(cx: float, cy: float, r: float, n: int, rot: float) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(rot + 2 * math.pi * k / n), cy + r * math.sin(rot + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    r: float,
    fill: tuple[int, int, int],
) -> None:
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        h = r * 0.85
        draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=fill)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy + r * 0.15, r * 1.1, 3, -math.pi / 2), fill=fill)
    elif shape == "star":
        outer = _polygon(cx, cy, r * 1.1, 5, -math.pi / 2)
        inner = _polygon(cx, cy, r * 0.45, 5, -math.pi / 2 + math.pi / 5)
        pts = [p for pair in zip(outer, inner, strict=True) for p in pair]
        draw.polygon(pts, fill=fill)
    elif shape == "hexagon":
        draw.polygon(_polygon(cx, cy, r, 6, 0.0), fill=fill)
    elif shape == "cross":
        t = r * 0.36
        draw.rectangle((cx - r, cy - t, cx + r, cy + t), fill=fill)
        draw.rectangle((cx - t, cy - r, cx + t, cy + r), fill=fill)
    else:  # pragma: no cover - guarded by SHAPES
        raise ValueError(f"unknown shape {shape!r}")


def render(
    objects: Sequence[SceneObject], background: str, rng: random.Random, size: int = IMAGE_SIZE
) -> Image.Image:
    """Draw objects (with small jitter from ``rng``) on a plain background."""
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUNDS[background])
    draw = ImageDraw.Draw(img)
    # Large objects first so small ones stay visible if they touch.
    for obj in sorted(objects, key=lambda o: o.size != "large"):
        cx, cy = _CENTRES[obj.position]
        cx += rng.uniform(-1.5, 1.5)
        cy += rng.uniform(-1.5, 1.5)
        r = rng.uniform(*_RADIUS[obj.size])
        _draw_shape(draw, obj.shape, cx, cy, r, COLOURS[obj.colour])
    if size != IMAGE_SIZE:
        img = img.resize((size, size), Image.Resampling.NEAREST)
    return img


def random_objects(rng: random.Random, n_objects: int | None = None) -> list[SceneObject]:
    """One to three objects at distinct positions, never two identical colour+shape pairs."""
    n = n_objects if n_objects is not None else rng.choice((1, 2, 2, 3))
    positions = rng.sample(POSITIONS, n)
    used: set[tuple[str, str]] = set()
    objects: list[SceneObject] = []
    for pos in positions:
        while True:
            colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
            if (colour, shape) not in used:
                break
        used.add((colour, shape))
        objects.append(
            SceneObject(shape=shape, colour=colour, size=rng.choice(SIZES), position=pos)
        )
    return objects


def generate_scene(rng: random.Random, n_objects: int | None = None) -> Scene:
    """Generate one scene; all randomness comes from ``rng`` so datasets are reproducible."""
    objects = random_objects(rng, n_objects)
    background = rng.choice(list(BACKGROUNDS))
    image = render(objects, background, rng)
    return Scene(image=image, caption=caption_for(objects), objects=objects, background=background)


def generate_dataset(n: int, seed: int, n_objects: int | None = None) -> list[Scene]:
    """``n`` scenes from ``seed`` (same seed, same scenes)."""
    rng = random.Random(seed)
    return [generate_scene(rng, n_objects) for _ in range(n)]


# --- caption variants for training -------------------------------------------------------

Mention = dict[str, str]


def sample_mentions(objects: Sequence[SceneObject], rng: random.Random) -> list[Mention]:
    """Pick which objects/attributes a training caption names.

    Mostly short queries ("a red circle", "a small red circle on the left") naming one
    object, sometimes several objects, sometimes the full caption.
    """
    u = rng.random()
    if u < 0.25:
        chosen = list(objects)
        attrs: list[Sequence[str]] = [ATTRIBUTES] * len(chosen)
    elif u < 0.35 and len(objects) > 1:
        k = rng.randint(2, len(objects))
        chosen = rng.sample(list(objects), k)
        keep_size, keep_pos = rng.random() < 0.5, rng.random() < 0.5
        a = (
            ["colour", "shape"]
            + (["size"] if keep_size else [])
            + (["position"] if keep_pos else [])
        )
        attrs = [a] * k
    else:
        chosen = [rng.choice(list(objects))]
        a = ["colour", "shape"]
        if rng.random() < 0.5:
            a.append("size")
        if rng.random() < 0.5:
            a.append("position")
        attrs = [a]
    return [{k: getattr(o, k) for k in at} for o, at in zip(chosen, attrs, strict=True)]


def mentions_text(mentions: Sequence[Mapping[str, str]], rng: random.Random | None = None) -> str:
    """Render mentions as a caption, optionally with a query-style prefix."""
    text = join_phrases([describe(m, tuple(m)) for m in mentions])
    if rng is not None and rng.random() < 0.1:
        text = f"{rng.choice(QUERY_PREFIXES)} {text}"
    return text


# --- sample folder for the README demo ---------------------------------------------------


def write_sample_folder(
    directory: str | Path, n: int = 200, seed: int = 7, image_format: str = "png"
) -> list[dict[str, Any]]:
    """Write ``n`` scene images plus ``metadata.jsonl`` (file, caption, objects, fake metadata).

    Used by the README's main command to build ``sample_images/`` without any download.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    meta_rng = random.Random(seed + 1_000_003)
    start = _dt.datetime(2024, 5, 1, 8, 0, tzinfo=_dt.timezone.utc)
    ext = "jpg" if image_format.lower() in ("jpg", "jpeg") else "png"
    records: list[dict[str, Any]] = []
    for i in range(n):
        scene = generate_scene(rng)
        name = f"scene_{i:05d}.{ext}"
        if ext == "jpg":
            scene.image.save(out / name, quality=95)
        else:
            scene.image.save(out / name)
        ts = start + _dt.timedelta(minutes=17 * i + meta_rng.randint(0, 16))
        tags = sorted({o.shape for o in scene.objects} | {o.colour for o in scene.objects})
        records.append(
            {
                "file_name": name,
                "caption": scene.caption,
                "objects": [o.to_dict() for o in scene.objects],
                "background": scene.background,
                "camera_id": f"cam-{meta_rng.randint(1, 4):02d}",
                "timestamp": ts.isoformat(),
                "tags": tags,
                "width": scene.image.width,
                "height": scene.image.height,
            }
        )
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    return records


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m offline_training.scenes --out sample_images --n 200 --seed 7``."""
    import argparse

    p = argparse.ArgumentParser(description="Write a folder of synthetic scenes + metadata.jsonl")
    p.add_argument("--out", type=Path, default=Path("sample_images"))
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--format", choices=("png", "jpg"), default="png")
    args = p.parse_args(argv)
    recs = write_sample_folder(args.out, args.n, args.seed, args.format)
    print(f"wrote {len(recs)} images and metadata.jsonl to {args.out}")


if __name__ == "__main__":
    main()
