"""BlipCaptioner: a transformers BLIP captioner behind the pre-process / core
split that dynamic batching needs.

* `preprocess_image(bytes) -> Tensor` is the CPU-side step; it runs in worker
  threads, one image at a time, and raises ImageDecodeError for bad images only.
* `caption_batch(pixels, options)` is the device-side step over a stacked
  batch whose items share one `CaptionOptions` (the batch key).
* `caption_images(images, options)` chains both for in-process callers (the
  gateway's embedded mode).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, cast

import torch

from caption_service.blip import BlipModel
from caption_service.model_spec import DEFAULT_MODEL, resolve
from imgsearch.errors import InvalidInput
from imgsearch.images import DEFAULT_MAX_PIXELS
from imgsearch.precision import (
    auto_picks_bf16,
    check_bf16_runtime,
    resolve_device,
    resolve_precision,
)
from imgsearch.serving.decoding import decode_each, in_batches

log = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 30
MAX_NEW_TOKENS_LIMIT = 128
MAX_BEAMS = 8
# A prefix is a few words ("a photography of"); the cap keeps a hostile one
# from costing tokeniser time or the model's whole position budget.
MAX_PREFIX_CHARS = 300


@dataclass(frozen=True)
class CaptionOptions:
    """How to caption. Frozen and hashable: it is the dynamic batcher's batch
    key, so only images with identical options share a model batch.

    `prefix` is stripped; "" means unconditional captioning.
    """

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    num_beams: int = 1
    prefix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", (self.prefix or "").strip())
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise InvalidInput(f"max_new_tokens must be >= 1, not {self.max_new_tokens!r}")
        if not isinstance(self.num_beams, int) or self.num_beams < 1:
            raise InvalidInput(f"num_beams must be >= 1, not {self.num_beams!r}")
        if len(self.prefix) > MAX_PREFIX_CHARS:
            raise InvalidInput(
                f"prefix is {len(self.prefix)} characters; the limit is {MAX_PREFIX_CHARS}"
            )

    @classmethod
    def resolve(
        cls,
        max_new_tokens: int = 0,
        num_beams: int = 0,
        prefix: str = "",
        *,
        default_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        max_new_tokens_limit: int = MAX_NEW_TOKENS_LIMIT,
        max_beams: int = MAX_BEAMS,
    ) -> CaptionOptions:
        """Options from wire values (0 = default) checked against a server's limits."""
        if max_new_tokens > max_new_tokens_limit:
            raise InvalidInput(
                f"max_new_tokens {max_new_tokens} is over the limit {max_new_tokens_limit}"
            )
        if num_beams > max_beams:
            raise InvalidInput(f"num_beams {num_beams} is over the limit {max_beams}")
        return cls(
            max_new_tokens=max_new_tokens or default_max_new_tokens,
            num_beams=num_beams or 1,
            prefix=prefix,
        )


@dataclass(frozen=True)
class CaptionerModelInfo:
    """What the loaded model is; the gateway stores `model` with each caption."""

    model: str
    device: str
    precision: str
    image_size: int
    max_positions: int  # prompt + generated tokens must fit in this


class CaptionList(NamedTuple):
    """The in-process convenience's answer: a caption per image ("" where the
    image failed) and the reasons. Services and the gateway use
    imgsearch.results.ImageCaptions; this pair stays because callers unpack it."""

    captions: list[str]
    errors: dict[int, str]


class BlipCaptioner(BlipModel[CaptionerModelInfo]):
    """Image captions through transformers' BlipForConditionalGeneration."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        precision: str = "auto",
        runtime: str = "eager",
        cache_dir: str | None = None,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__()
        self.model_name = model
        self.requested_device = device
        self.requested_precision = precision
        self.requested_runtime = runtime
        self.cache_dir = cache_dir
        self.max_image_pixels = max_image_pixels
        self._info: CaptionerModelInfo | None = None
        # Fast (Rust) tokenisers are not safe to call from two threads at once,
        # and prompts are few: tokenise each prefix once, under a lock.
        self._prompt_lock = threading.Lock()
        self._prompts: dict[str, list[int]] = {}

    def describe(self) -> str:
        return f"BLIP {self.model_name}"

    # -- lifecycle -------------------------------------------------------
    def _load(self) -> None:
        from transformers import BlipForConditionalGeneration

        device = resolve_device(self.requested_device)
        precision = resolve_runtime_precision(
            self.requested_runtime, self.requested_precision, device
        )
        spec = resolve(self.model_name)
        processor, model = self._load_blip(
            BlipForConditionalGeneration, spec, self.cache_dir, device, precision
        )
        text_config: Any = model.config.text_config  # a BlipTextConfig; typed as a union
        self._bos_id = int(text_config.bos_token_id)
        log.info("captioner runtime %s (%s) on %s", self.requested_runtime, precision, device)
        self._info = CaptionerModelInfo(
            model=spec.display,
            device=device,
            precision=precision,
            image_size=_image_size(processor.image_processor, model.config.vision_config),
            max_positions=int(text_config.max_position_embeddings),
        )

    def warmup(self) -> None:
        self.load()
        size = self.info.image_size
        self.caption_batch([torch.zeros(3, size, size)], CaptionOptions(max_new_tokens=2))

    @property
    def model_id(self) -> str:
        """The name stored with each caption (== info.model), known without loading."""
        if self._info is not None:
            return self._info.model
        return resolve(self.model_name).display

    def check_options(self, options: CaptionOptions) -> None:
        """InvalidInput when the prompt plus max_new_tokens overflow the model."""
        prompt = self._prompt_ids(options.prefix)
        # generate() feeds the prompt without its trailing [SEP].
        needed = len(prompt) - 1 + options.max_new_tokens
        if needed > self.info.max_positions:
            raise InvalidInput(
                f"prefix ({len(prompt) - 2} tokens) plus max_new_tokens "
                f"({options.max_new_tokens}) exceed the model's {self.info.max_positions} positions"
            )

    # -- pre-processing (worker threads, one item each; images: BlipModel) --
    def _prompt_ids(self, prefix: str) -> list[int]:
        """[CLS] prefix [SEP] ids, as BlipProcessor makes them (cached)."""
        self.load()
        with self._prompt_lock:
            ids = self._prompts.get(prefix)
            if ids is None:
                ids = list(self._tokenizer(prefix, add_special_tokens=True)["input_ids"])
                if len(self._prompts) > 1024:  # bounded: prefixes come from clients
                    self._prompts.clear()
                self._prompts[prefix] = ids
            return ids

    # -- core (inference thread, whole batches) ---------------------------
    @torch.inference_mode()
    def caption_batch(self, pixels: Sequence[torch.Tensor], options: CaptionOptions) -> list[str]:
        """One caption per image, in order; all items share `options`."""
        if not pixels:
            return []
        batch = torch.stack(list(pixels)).to(self._device, dtype=self._dtype, non_blocking=True)
        prompt = self._prompt_ids(options.prefix)
        # BLIP's generate() swaps the first token ([CLS]) for bos ([DEC]) and
        # drops the last ([SEP]) itself, so it takes the processor's ids as they are.
        input_ids = cast(
            torch.LongTensor,
            torch.tensor([prompt] * len(pixels), dtype=torch.long, device=self._device),
        )
        output = self._model.generate(
            pixel_values=batch,
            input_ids=input_ids,
            attention_mask=cast(torch.LongTensor, torch.ones_like(input_ids)),
            max_new_tokens=options.max_new_tokens,
            num_beams=options.num_beams,
            do_sample=False,
        )
        return self._decode(output.tolist(), len(prompt) - 1, options.prefix)

    def _decode(self, rows: list[list[int]], prompt_len: int, prefix: str) -> list[str]:
        """Captions that start with the caller's prefix exactly as given.

        The tokenizer lower-cases and re-spaces text, so the decoded prompt is
        cut off and the client's own prefix put back in front of the rest.
        """
        decode = self._tokenizer.decode
        captions = []
        for row in rows:
            if not prefix:
                captions.append(decode(row, skip_special_tokens=True).strip())
                continue
            head = decode(row[:prompt_len], skip_special_tokens=True)
            full = decode(row, skip_special_tokens=True)
            if full.startswith(head):
                rest = full[len(head) :]
            else:  # decoding is not prefix-stable here: fall back to the new tokens
                rest = " " + decode(row[prompt_len:], skip_special_tokens=True)
            captions.append((prefix + rest).strip())
        return captions

    # -- in-process convenience -------------------------------------------
    def caption_images(
        self,
        images: Sequence[bytes],
        options: CaptionOptions | None = None,
        batch_size: int = 8,
    ) -> CaptionList:
        """Captions encoded images; bad ones are reported, not raised."""
        options = options or CaptionOptions()
        self.check_options(options)
        decoded = decode_each(self.preprocess_image, images)
        result = CaptionList([""] * len(images), decoded.errors)
        run = partial(self.caption_batch, options=options)
        for i, caption in in_batches(decoded.good, run, batch_size):
            result.captions[i] = caption
        return result


CAPTION_RUNTIMES = ("auto", "eager", "bf16")


def resolve_runtime_precision(runtime: str, precision: str, device: str) -> str:
    """The dtype a captioner runtime runs in.

    "eager" honours `precision` (auto: float16 on CUDA, float32 on CPU);
    "bf16" casts the weights to bfloat16 (on CPUs with native bf16, BLIP-large
    captions ~3.5x faster than float32); "auto" is bf16 where that is native
    and no precision was pinned, else eager. No compiled path: generate()
    re-enters the decoder with a growing cache, which compiles poorly.
    """
    if runtime not in CAPTION_RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(CAPTION_RUNTIMES)}, not {runtime!r}")
    if runtime == "auto":
        runtime = "bf16" if auto_picks_bf16(device, precision) else "eager"
    if runtime == "eager":
        return resolve_precision(precision, device)
    check_bf16_runtime(runtime, device, precision)
    return "bfloat16"


def _image_size(image_processor: Any, vision_config: Any) -> int:
    """The side the processor resizes to (a dict in transformers 4, SizeDict in 5)."""
    size = getattr(image_processor, "size", None)
    for key in ("height", "shortest_edge"):
        value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
        if value:
            return int(value)
    return int(vision_config.image_size)
