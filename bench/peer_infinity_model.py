"""Writes a random-weight Hugging Face CLIP ViT-B/32 for Infinity (run with the
Infinity venv's python: it needs only transformers and torch).

Same shapes as open_clip's ViT-B-32 (vision 12 x 768, patch 32, 224 px; text
12 x 512, context 77; projection 512). The tokenizer files are built from the
CLIP BPE merges that ship inside open_clip (`bpe_simple_vocab_16e6.txt.gz`,
passed in by the driver), in the order open_clip's SimpleTokenizer builds its
vocabulary, so nothing is downloaded.

    python bench/peer_infinity_model.py OUT_DIR BPE_GZ
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer
from transformers.models.clip.tokenization_clip import bytes_to_unicode


def main() -> None:
    out, bpe = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    if (out / "config.json").exists() and (out / "vocab.json").exists():
        print(f"model ready: {out}")
        return
    with gzip.open(bpe) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab += [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (out / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    )
    tokenizer = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"))
    tokenizer.save_pretrained(out)
    config = CLIPConfig(
        text_config={
            "hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8,
            "num_hidden_layers": 12, "max_position_embeddings": 77, "vocab_size": len(vocab),
        },
        vision_config={
            "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
            "num_hidden_layers": 12, "image_size": 224, "patch_size": 32,
        },
        projection_dim=512,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(out)
    CLIPImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    ).save_pretrained(out)
    print(f"wrote random-weight CLIP ViT-B/32 to {out} (vocab {len(vocab)})")


if __name__ == "__main__":
    main()
