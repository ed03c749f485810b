"""BlipMatcher: BLIP's image-text matching head behind the pre-process / core split.

A cross-encoder reads the text and the image together, so it can check what one
CLIP vector blurs (which colour belongs to which shape, where things are). It is
far more expensive per pair than a cosine, which is why it only re-ranks the
first candidates of a vector search.

* `preprocess_image(bytes) -> Tensor` runs in decode threads, one image at a time.
* `encode_text(str) -> tuple[int, ...]` tokenises once per request.
* `score_batch([(pixels, ids), ...])` is the model step over a stacked batch;
  pairs from different requests (different texts) share it, texts padded.

The real model is e.g. ``Salesforce/blip-itm-base-coco``; ``offline-tiny`` is the
project's own tiny matcher (offline_models/weights/itm), loaded the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from caption_service.blip import BlipModel
from caption_service.model_spec import BlipSpec, resolve
from imgsearch.errors import InvalidInput
from imgsearch.images import DEFAULT_MAX_PIXELS
from imgsearch.precision import auto_picks_bf16, resolve_device, resolve_precision

log = logging.getLogger(__name__)

OFFLINE_MODEL_NAME = "offline-tiny"
REAL_MODEL = "Salesforce/blip-itm-base-coco"
MAX_TEXT_CHARS = 1000

Pair = tuple[torch.Tensor, tuple[int, ...]]


@dataclass(frozen=True)
class MatcherInfo:
    """What Score runs on; the gateway reports `model` with re-ranked results."""

    model: str
    device: str
    precision: str
    image_size: int
    max_positions: int


def resolve_matcher(model: str) -> BlipSpec:
    """Like the captioner's model names, with ``offline-tiny`` the committed matcher."""
    if model.strip() == OFFLINE_MODEL_NAME:
        from offline_models.registry import WEIGHTS_DIR

        itm_dir = WEIGHTS_DIR / "itm"
        if not (itm_dir / "config.json").is_file():
            raise FileNotFoundError(f"offline ITM weights missing under {itm_dir}")
        return BlipSpec(str(itm_dir), True, OFFLINE_MODEL_NAME)
    return resolve(model)


class BlipMatcher(BlipModel[MatcherInfo]):
    """Image-text matching probabilities through BlipForImageTextRetrieval."""

    def __init__(
        self,
        model: str = REAL_MODEL,
        *,
        device: str = "auto",
        precision: str = "auto",
        cache_dir: str | None = None,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        max_text_chars: int = MAX_TEXT_CHARS,
    ) -> None:
        super().__init__()
        self.model_name = model
        self.requested_device = device
        self.requested_precision = precision
        self.cache_dir = cache_dir
        self.max_image_pixels = max_image_pixels
        self.max_text_chars = max_text_chars
        self._info: MatcherInfo | None = None

    def describe(self) -> str:
        return f"BLIP ITM {self.model_name}"

    def _load(self) -> None:
        from transformers import BlipForImageTextRetrieval

        device = resolve_device(self.requested_device)
        # "auto" on a CPU that multiplies bfloat16 natively: bf16, as both services'
        # "auto" runtimes do. Re-ranking is pure model time per candidate (the
        # tiny matcher: 1.5-1.8x faster; P(match) within 0.01 of float32).
        precision = (
            "bfloat16"
            if auto_picks_bf16(device, self.requested_precision)
            else resolve_precision(self.requested_precision, device)
        )
        spec = resolve_matcher(self.model_name)
        processor, model = self._load_blip(
            BlipForImageTextRetrieval, spec, self.cache_dir, device, precision
        )
        self._pad_id = int(self._tokenizer.pad_token_id or 0)
        size = getattr(processor.image_processor, "size", None)
        side = size.get("height") if isinstance(size, dict) else getattr(size, "height", None)
        vision: Any = model.config.vision_config
        text: Any = model.config.text_config
        self._info = MatcherInfo(
            model=spec.display,
            device=device,
            precision=precision,
            image_size=int(side or vision.image_size),
            max_positions=int(text.max_position_embeddings),
        )

    def warmup(self) -> None:
        self.load()
        size = self.info.image_size
        self.score_batch([(torch.zeros(3, size, size), self.encode_text("warm up"))])

    @property
    def model_id(self) -> str:
        if self._info is not None:
            return self._info.model
        return resolve_matcher(self.model_name).display

    # -- pre-processing (preprocess_image: BlipModel) ------------------------
    def encode_text(self, text: str) -> tuple[int, ...]:
        """[CLS] words [SEP], truncated to the model's positions; InvalidInput if empty/long."""
        self.load()
        text = text.strip()
        if not text:
            raise InvalidInput("score text is empty")
        if len(text) > self.max_text_chars:
            raise InvalidInput(
                f"score text has {len(text)} characters; the limit is {self.max_text_chars}"
            )
        ids = self._tokenizer(
            text, truncation=True, max_length=self.info.max_positions, add_special_tokens=True
        )["input_ids"]
        return tuple(int(i) for i in ids)

    # -- core --------------------------------------------------------------
    @torch.inference_mode()
    def score_batch(self, pairs: Sequence[Pair]) -> list[float]:
        """P(match) per (pixels, token ids) pair, in order."""
        if not pairs:
            return []
        pixels = torch.stack([p for p, _ in pairs]).to(self._device, dtype=self._dtype)
        width = max(len(ids) for _, ids in pairs)
        input_ids = torch.full((len(pairs), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(pairs), width), dtype=torch.long)
        for row, (_, ids) in enumerate(pairs):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        out = self._model(
            input_ids=input_ids.to(self._device),
            attention_mask=mask.to(self._device),
            pixel_values=pixels,
            use_itm_head=True,
        )
        probs = torch.softmax(out.itm_score.float(), dim=-1)[:, 1]
        return [float(p) for p in probs.cpu()]

    def score_images(
        self, text: str, images: Sequence[bytes]
    ) -> tuple[list[float], dict[int, str]]:
        """In-process convenience: scores, and per-index errors for bad images (score 0)."""
        from imgsearch.images import ImageDecodeError

        ids = self.encode_text(text)
        scores = [0.0] * len(images)
        errors: dict[int, str] = {}
        good: list[tuple[int, torch.Tensor]] = []
        for i, data in enumerate(images):
            try:
                good.append((i, self.preprocess_image(data)))
            except ImageDecodeError as exc:
                errors[i] = str(exc)
        for start in range(0, len(good), 32):
            chunk = good[start : start + 32]
            for (i, _), s in zip(
                chunk, self.score_batch([(t, ids) for _, t in chunk]), strict=True
            ):
                scores[i] = s
        return scores, errors
