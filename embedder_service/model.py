"""ClipEmbedder: an open_clip model behind the pre-process / core / post-process
split that dynamic batching needs.

* `preprocess_image(bytes) -> Tensor` and `tokenize(texts)` are the CPU-side
  steps; they run in worker threads, one item at a time, and raise
  ImageDecodeError / InvalidInput for bad items only.
* `encode_image_batch` / `encode_text_batch` are the device-side steps over a
  stacked batch; they return L2-normalised float32 rows.
* `embed_images` / `embed_texts` chain both for in-process callers (the
  gateway's embedded mode and the benchmarks).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embedder_service.backends import AUTO, Backend, create_backend
from embedder_service.model_spec import resolve
from imgsearch.errors import InvalidInput
from imgsearch.images import DEFAULT_MAX_PIXELS, decode_rgb
from imgsearch.inference import InferenceModel
from imgsearch.precision import resolve_device
from imgsearch.results import ImageVectors
from imgsearch.serving.decoding import decode_each, in_batches

log = logging.getLogger(__name__)

# Texts are cut to this many characters before tokenising: 77 tokens never
# need more, and a 10 MB query must not cost seconds of tokeniser time.
MAX_TEXT_CHARS = 2048


@dataclass(frozen=True)
class EmbedderModelInfo:
    """What the loaded model is; the gateway builds its collection from it."""

    model: str
    pretrained: str
    dimension: int
    device: str
    precision: str
    context_length: int
    image_size: int
    runtime: str = "eager"  # the backend that runs (embedder_service.backends)


@dataclass(frozen=True)
class Loaded:
    """What a build gives ClipEmbedder (text_tower.ClipTextEmbedder builds its own)."""

    model: Any  # open_clip CLIP (nn.Module), eval mode, float32
    preprocess: Any  # the image transform; None when there is no image tower
    tokenizer: Any  # open_clip tokenizer: (texts, context_length=) -> LongTensor
    display_model: str  # as model_spec.OpenClipSpec
    display_pretrained: str


class ClipEmbedder(InferenceModel):
    """CLIP image and text embeddings through open_clip."""

    def __init__(
        self,
        model: str = "ViT-B-32",
        pretrained: str = "laion2b_s34b_b79k",
        *,
        device: str = "auto",
        precision: str = "auto",
        runtime: str = AUTO,
        cache_dir: str | None = None,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        draft_decode: bool = True,
    ) -> None:
        super().__init__()
        self.model_name = model
        self.pretrained = pretrained
        # JPEG draft (DCT-scaled) decoding: 3-5x faster for camera photos; off
        # = full-resolution decode before the resize (the reference in benches).
        self.draft_decode = draft_decode
        self.requested_device = device
        self.requested_precision = precision
        self.requested_runtime = runtime
        self.cache_dir = cache_dir
        self.max_image_pixels = max_image_pixels
        self._info: EmbedderModelInfo | None = None
        self._tokenizer_lock = threading.Lock()

    def describe(self) -> str:
        return f"open_clip {self.model_name} ({self.pretrained or 'random weights'})"

    # -- lifecycle -------------------------------------------------------
    def _build(self, device: str) -> Loaded:
        """The open_clip model (both towers), its transform and tokenizer."""
        import open_clip

        spec = resolve(self.model_name, self.pretrained)
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.name, pretrained=spec.pretrained, device=device, cache_dir=self.cache_dir
        )
        model.eval()
        tokenizer = open_clip.get_tokenizer(spec.name, cache_dir=self.cache_dir)
        return Loaded(model, preprocess, tokenizer, spec.display_model, spec.display_pretrained)

    def _load(self) -> None:
        device = resolve_device(self.requested_device)
        # Checked before the weights load, so a bad runtime fails fast.
        backend = create_backend(self.requested_runtime, device, self.requested_precision)
        loaded = self._build(device)
        model = loaded.model
        self._model = model
        self._preprocess = loaded.preprocess
        self._tokenizer = loaded.tokenizer
        self._device = torch.device(device)
        self._pad_id = _pad_token_id(self._tokenizer)
        context_length = int(getattr(self._tokenizer, "context_length", 77))
        image_size = _image_size(model)
        backend.prepare(model)
        self._backend: Backend = backend
        self._dtype = backend.dtype
        # Through the backend: the same kernels as the first real request, so
        # their one-time set-up is paid once (a CLI query runs just one).
        with torch.inference_mode():
            probe = self._tokenizer(["a"]).to(self._device)
            dimension = int(backend.encode_text(probe).shape[-1])
        log.info("embedder runtime %s (%s) on %s", backend.runtime, backend.precision, device)
        self._info = EmbedderModelInfo(
            model=loaded.display_model,
            pretrained=loaded.display_pretrained,
            dimension=dimension,
            device=device,
            precision=backend.precision,
            context_length=context_length,
            image_size=image_size,
            runtime=backend.runtime,
        )

    def warmup(self) -> None:
        """Runs every graph serving needs; for compiled runtimes this is the
        compile (minutes on a small CPU), done before health says SERVING."""
        self.load()
        info = self.info
        self._backend.warmup(self._device, info.image_size, info.context_length)
        with torch.inference_mode():
            self.encode_text_batch([self.tokenize(["warm up"])[0][0]])

    @property
    def info(self) -> EmbedderModelInfo:
        self.load()
        assert self._info is not None
        return self._info

    # -- pre-processing (worker threads, one item each) --------------------
    def preprocess_image(self, data: bytes) -> torch.Tensor:
        """Decodes and transforms one image; ImageDecodeError for bad bytes."""
        self.load()
        min_side = self.info.image_size if self.draft_decode else None
        image = decode_rgb(data, self.max_image_pixels, min_side=min_side)
        return self._preprocess(image)

    def tokenize(self, texts: Sequence[str]) -> tuple[list[torch.Tensor], list[bool]]:
        """Token rows and, per text, whether it was truncated to the context."""
        self.load()
        ctx = self.info.context_length
        cleaned: list[str] = []
        cut: list[bool] = []
        for i, text in enumerate(texts):
            if not text or not text.strip():
                raise InvalidInput(f"text[{i}]: empty text")
            cut.append(len(text) > MAX_TEXT_CHARS)
            cleaned.append(text[:MAX_TEXT_CHARS])
        # Hugging Face fast tokenizers fail ("Already borrowed") when two
        # threads use one at once; tokenising is cheap, so serialise it.
        with self._tokenizer_lock:
            tokens = self._tokenizer(cleaned, context_length=ctx)
            # One more position than the context: a real token there means the
            # text did not fit.
            longer = self._tokenizer(cleaned, context_length=ctx + 1)
        truncated = [c or bool(row[-1] != self._pad_id) for c, row in zip(cut, longer, strict=True)]
        return list(tokens), truncated

    # -- core (inference thread, whole batches) ---------------------------
    @torch.inference_mode()
    def encode_image_batch(self, pixels: Sequence[torch.Tensor]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        batch = torch.stack(list(pixels)).to(self._device, dtype=self._dtype, non_blocking=True)
        features = self._backend.encode_image(batch)
        return _normalised(features)

    @torch.inference_mode()
    def encode_text_batch(self, tokens: Sequence[torch.Tensor]) -> np.ndarray:
        """(n, dim) float32, L2-normalised."""
        batch = torch.stack(list(tokens)).to(self._device)
        features = self._backend.encode_text(batch)
        return _normalised(features)

    # -- in-process conveniences ------------------------------------------
    def embed_images(self, images: Sequence[bytes], batch_size: int = 32) -> ImageVectors:
        """Embeds encoded images; bad ones are reported, not raised."""
        decoded = decode_each(self.preprocess_image, images)
        result = ImageVectors([None] * len(images), decoded.errors)
        for i, vector in in_batches(decoded.good, self.encode_image_batch, batch_size):
            result.values[i] = vector
        return result

    def embed_texts(
        self, texts: Sequence[str], batch_size: int = 64
    ) -> tuple[np.ndarray, list[bool]]:
        """(n, dim) vectors and per-text truncation flags."""
        tokens, truncated = self.tokenize(texts)
        parts = [
            self.encode_text_batch(tokens[s : s + batch_size])
            for s in range(0, len(tokens), batch_size)
        ]
        return np.concatenate(parts), truncated


def _normalised(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return features.cpu().numpy().astype(np.float32, copy=False)


def _pad_token_id(tokenizer: object) -> int:
    inner = getattr(tokenizer, "tokenizer", None)
    pad = getattr(inner, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def _image_size(model: torch.nn.Module) -> int:
    size = getattr(getattr(model, "visual", None), "image_size", 224)
    if isinstance(size, (tuple, list)):
        return int(max(size))
    return int(size)
