"""A local `tokenizer.json` tokenizer without importing transformers.

open_clip's HFTokenizer (the offline-tiny model's tokenizer) loads its
tokenizer through `transformers.AutoTokenizer`, and importing transformers
costs seconds. For a tokenizer folder with a `tokenizer.json`, transformers'
fast tokenizer is a thin layer over the Rust `tokenizers.Tokenizer`: at each
call it sets truncation and padding on it and calls `encode_batch` with the
special tokens added by the file's post-processor. `AutoTokenizer` here does
the same for the one call HFTokenizer makes (`padding="max_length",
truncation=True, return_tensors="pt"`), and refuses (NotImplementedError,
so the caller uses transformers) every folder where transformers would do
more: a tokenizer class other than the plain fast one, special tokens
missing from the vocabulary, no post-processor, options in
`tokenizer_config.json` it does not know. tests/test_text_tower.py compares
the ids with transformers' on the shipped tokenizer.

Used only through open_clip_narrow (it stands in for `transformers` inside
the narrowly imported open_clip modules).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# tokenizer_config.json keys this class reproduces; any other key means
# transformers may behave differently, so the folder is refused.
_KNOWN_KEYS = {
    "backend",
    "tokenizer_class",
    "model_max_length",
    "padding_side",
    "truncation_side",
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
    "clean_up_tokenization_spaces",
}
_FAST_CLASSES = {"TokenizersBackend", "PreTrainedTokenizerFast"}


@dataclass
class Encoded:
    """What HFTokenizer reads from transformers' BatchEncoding."""

    input_ids: Any  # torch.Tensor (n, max_length) of int64


class FastTokenizer:
    """The subset of transformers' fast tokenizer that HFTokenizer calls."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        config = _config(folder)
        unknown = set(config) - _KNOWN_KEYS
        if unknown:
            raise NotImplementedError(f"tokenizer_config.json keys {sorted(unknown)}")
        if config.get("tokenizer_class", "PreTrainedTokenizerFast") not in _FAST_CLASSES:
            raise NotImplementedError(f"tokenizer class {config.get('tokenizer_class')}")
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        if self._tokenizer.post_processor is None:
            raise NotImplementedError("no post-processor (transformers would build one)")
        self.padding_side = str(config.get("padding_side", "right"))
        self.truncation_side = str(config.get("truncation_side", "right"))
        self.special: dict[str, str] = {}
        for key in _KNOWN_KEYS:
            if not key.endswith("_token") or config.get(key) is None:
                continue
            if not isinstance(config[key], str):
                raise NotImplementedError(f"{key} given as {type(config[key]).__name__}")
            self.special[key] = config[key]
        for token in self.special.values():
            if self._tokenizer.token_to_id(token) is None:
                raise NotImplementedError(f"special token {token!r} not in the vocabulary")
        self.pad_token = self.special.get("pad_token")
        self.pad_token_id = self._id(self.pad_token)
        self.sep_token_id = self._id(self.special.get("sep_token"))

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self._tokenizer.token_to_id(token)

    def __call__(
        self,
        texts: Sequence[str],
        *,
        return_tensors: str,
        max_length: int,
        padding: str,
        truncation: bool,
    ) -> Encoded:
        import torch

        if (return_tensors, padding, truncation) != ("pt", "max_length", True):
            raise NotImplementedError("only padding='max_length', truncation=True, tensors 'pt'")
        if self.pad_token is None or self.pad_token_id is None:
            raise NotImplementedError("padding needs a pad token")
        # As transformers' set_truncation_and_padding + _batch_encode_plus.
        self._tokenizer.enable_truncation(
            max_length, stride=0, strategy="longest_first", direction=self.truncation_side
        )
        self._tokenizer.enable_padding(
            direction=self.padding_side,
            pad_id=self.pad_token_id,
            pad_type_id=0,
            pad_token=self.pad_token,
            length=max_length,
            pad_to_multiple_of=None,
        )
        rows = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        return Encoded(torch.tensor([row.ids for row in rows], dtype=torch.long))


class AutoTokenizer:
    """Stands in for `transformers.AutoTokenizer` inside open_clip_narrow."""

    @staticmethod
    def from_pretrained(name: str, cache_dir: str | None = None, **kwargs: Any) -> FastTokenizer:
        folder = Path(name)
        if kwargs or not (folder / "tokenizer.json").is_file():
            raise NotImplementedError(f"{name}: only a local tokenizer.json folder, no options")
        return FastTokenizer(folder)


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}
