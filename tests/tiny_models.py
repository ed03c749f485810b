"""Tiny models built locally for tests: no downloads, same loading code paths
as the real models (an open_clip config JSON + checkpoint file; a BLIP
directory written by save_pretrained with a tokenizer from a local vocab)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}

# Deeper and wider than TINY_CLIP_CONFIG, still seconds to build and compile:
# enough layers for reduced-precision rounding to accumulate, so the fast-path
# accuracy gate measures something (ViT-B-32 has 12 layers of width 768).
SMALL_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 4},
}


def build_tiny_clip(
    folder: Path, name: str = "tiny-clip-test", seed: int = 0, config: dict | None = None
) -> tuple[Path, Path]:
    """Writes `<name>.json` and `<name>.pt` (random weights); returns both paths."""
    import open_clip

    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / f"{name}.json"
    config_path.write_text(json.dumps(config or TINY_CLIP_CONFIG))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(name)
    checkpoint = folder / f"{name}.pt"
    torch.save(model.state_dict(), checkpoint)
    return config_path, checkpoint


# Words the tiny BLIP can say; the special tokens come first, in BERT's order,
# then [DEC], which BLIP's decoder uses as its start token (bos).
TINY_BLIP_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
TINY_BLIP_WORDS = (  # space-separated
    "a an the of in on at with and is are man woman person child dog cat bird horse "
    "red blue green yellow black white car bus bike tree sky street road beach field "
    "room table photo photography picture image painting sitting standing walking "
    "next to near two three small large , . ' -"
)


def build_tiny_blip(folder: Path, seed: int = 0) -> Path:
    """Writes a random tiny BLIP captioner (model + processor, save_pretrained
    layout) into `folder` and returns it; it loads like any BLIP directory."""
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = [*TINY_BLIP_SPECIAL, *TINY_BLIP_WORDS.split()]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # Like Salesforce's BLIP tokenizer: lower-casing WordPiece with bos = [DEC].
    tokenizer = BertTokenizerFast.from_pretrained(folder, bos_token="[DEC]", model_max_length=64)
    ids = {token: vocab.index(token) for token in TINY_BLIP_SPECIAL}
    config = BlipConfig(
        vision_config={
            "image_size": 32,
            "patch_size": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
            "bos_token_id": ids["[DEC]"],
            "pad_token_id": ids["[PAD]"],
            "sep_token_id": ids["[SEP]"],
            "eos_token_id": ids["[SEP]"],
        },
        projection_dim=32,
        image_text_hidden_size=32,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    with torch.no_grad():
        # BLIP initialises the vision tower near zero (std 1e-10) and the
        # decoder's cross-attention small, which would give every image the
        # same caption; larger random weights make captions depend on pixels.
        for name, param in model.named_parameters():
            if param.dim() > 1 and ("vision_model" in name or "crossattention" in name):
                param.normal_(0.0, 0.5)
        # Never predict special tokens, so captions are words and run to
        # max_new_tokens (deterministic lengths; no empty captions).
        head = model.text_decoder.cls.predictions
        for bias in (head.bias, head.decoder.bias):  # tied in transformers 5, not in 4
            bias[: len(TINY_BLIP_SPECIAL)] = -1e4
    model.save_pretrained(folder)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder
