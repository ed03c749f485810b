"""Load the committed offline models the way the services do, and run them in batches.

Used by eval/offline_quality.py and tests/test_offline_models.py so both measure the
models exactly as ``register_offline_clip`` / ``offline_blip_dir`` hand them out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from offline_models.registry import offline_blip_dir, register_offline_clip
from offline_training import quality, scenes

HELD_OUT_SEED = 900_001  # training uses seeds 1 (CLIP) and 2 (BLIP)


@dataclass
class OfflineClip:
    """open_clip model, eval transform and tokenizer of the committed tiny CLIP."""

    model: Any  # open_clip.CLIP: open_clip ships no type information
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[Sequence[str]], torch.Tensor]

    @torch.no_grad()
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        x = torch.stack([self.preprocess(im) for im in images])
        return self.model.encode_image(x, normalize=True).float().numpy()

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode_text(self.tokenizer(list(texts)), normalize=True).float().numpy()


def load_clip() -> OfflineClip:
    """Through the public contract: register, then plain open_clip calls."""
    import open_clip

    name, ckpt = register_offline_clip()
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(ckpt))
    model.eval()
    return OfflineClip(model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(name))


@dataclass
class OfflineBlip:
    """BlipForConditionalGeneration + BlipProcessor from ``offline_blip_dir()``."""

    model: Any
    processor: Any

    @torch.no_grad()
    def caption(self, images: Sequence[Image.Image], max_new_tokens: int = 30) -> list[str]:
        inputs = self.processor(images=list(images), return_tensors="pt")
        out = self.model.generate(**inputs, max_new_tokens=max_new_tokens)
        return [c.strip() for c in self.processor.batch_decode(out, skip_special_tokens=True)]


def load_blip() -> OfflineBlip:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    d = offline_blip_dir()
    model = BlipForConditionalGeneration.from_pretrained(d)
    model.eval()
    return OfflineBlip(model=model, processor=BlipProcessor.from_pretrained(d))


def evaluate_clip(
    clip: OfflineClip, n_scenes: int, seed: int = HELD_OUT_SEED, n_attr_queries: int = 200
) -> dict[str, Any]:
    """Held-out text->image precision@10, brute-force cosine over all scenes."""
    data = scenes.generate_dataset(n_scenes, seed)
    objs = [s.objects for s in data]
    img = quality.embed_in_batches(clip.embed_images, [s.image for s in data])
    results: dict[str, Any] = {"n_scenes": n_scenes, "seed": seed}
    for key, queries in (
        ("colour_shape", quality.colour_shape_queries(objs)),
        ("with_size_or_position", quality.attribute_queries(objs, n_attr_queries, seed=seed)),
    ):
        txt = clip.embed_texts([quality.query_text(q) for q in queries])
        results[key] = quality.retrieval_precision(img, txt, queries, objs, k=10)
        results[key]["queries"] = [quality.query_text(q) for q in queries]
    return results


def evaluate_blip(
    blip: OfflineBlip, n_scenes: int, seed: int = HELD_OUT_SEED + 1, n_objects: int | None = 1
) -> dict[str, Any]:
    """Share of held-out scenes whose caption names every object's colour and shape."""
    data = scenes.generate_dataset(n_scenes, seed, n_objects=n_objects)
    captions: list[str] = []
    for i in range(0, len(data), 64):
        captions += blip.caption([s.image for s in data[i : i + 64]])
    objs = [s.objects for s in data]
    return {
        "n_scenes": n_scenes,
        "accuracy": quality.caption_accuracy(captions, objs),
        "exact": float(np.mean([c == s.caption for c, s in zip(captions, data, strict=True)])),
        "examples": [(s.caption, c) for s, c in zip(data[:8], captions[:8], strict=True)],
    }
