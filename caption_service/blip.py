"""What the BLIP captioner and the BLIP matcher share: loading a checkpoint
onto a device in a dtype, and the CPU-side image step."""

from __future__ import annotations

from typing import Any, Generic, Protocol, TypeVar

import torch

from caption_service.model_spec import BlipSpec
from imgsearch.images import decode_rgb
from imgsearch.inference import InferenceModel
from imgsearch.precision import DTYPES


class _Info(Protocol):
    @property
    def image_size(self) -> int: ...


InfoT = TypeVar("InfoT", bound=_Info)


class BlipModel(InferenceModel, Generic[InfoT]):
    """A BLIP head: `_load_blip` in `_load`, which then sets `_info`."""

    max_image_pixels: int
    _info: InfoT | None

    def _load_blip(
        self, model_class: Any, spec: BlipSpec, cache_dir: str | None, device: str, precision: str
    ) -> tuple[Any, Any]:
        """The processor and the model (cast to `precision` on `device`, in eval mode);
        keeps what the pre-processing and the model step use."""
        from transformers import BlipProcessor

        common: dict[str, Any] = {"cache_dir": cache_dir, "local_files_only": spec.local}
        processor = BlipProcessor.from_pretrained(spec.source, **common)
        # Loaded in the checkpoint's dtype (the tiny ones are stored fp16 to stay
        # small), then cast: the keyword for the load dtype changed between
        # transformers 4 (torch_dtype) and 5 (dtype).
        model = model_class.from_pretrained(spec.source, **common)
        # transformers' decorated .to() is typed so mypy cannot call it.
        model.to(device=device, dtype=DTYPES[precision])
        model.eval()
        self._model = model
        self._image_processor = processor.image_processor
        self._tokenizer = processor.tokenizer
        self._device = torch.device(device)
        self._dtype = DTYPES[precision]
        return processor, model

    @property
    def info(self) -> InfoT:
        self.load()
        assert self._info is not None
        return self._info

    # -- pre-processing (worker threads, one item each) --------------------
    def preprocess_image(self, data: bytes) -> torch.Tensor:
        """Decodes and transforms one image to (3, S, S); ImageDecodeError for bad bytes."""
        self.load()
        image = decode_rgb(data, self.max_image_pixels, min_side=self.info.image_size)
        return self._image_processor(images=image, return_tensors="pt")["pixel_values"][0]
