"""Train the tiny offline BLIP captioner on generated scenes (CPU, about half an hour).

The decoder is taught the full true caption (every object with size, colour, shape
and position) so the captions stored next to each image name everything in it.
Inputs follow BLIP's conventions: the decoder starts from ``bos_token_id`` ([DEC],
which ``generate`` also uses) and stops at ``sep_token_id`` ([SEP]).

    python -m offline_training.train_blip --out offline_models/weights/blip --steps 2000 --seed 2

Continue from a checkpoint with ``--init <copy of weights/blip>`` (new seed, lower lr).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch

from offline_models import registry
from offline_training import scenes, vocab

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def build_processor(tokenizer_dir: Path):
    """BlipProcessor = BlipImageProcessor at the scene resolution + the word tokenizer."""
    from transformers import AutoTokenizer, BlipImageProcessor, BlipProcessor

    image_processor = BlipImageProcessor(
        size={"height": scenes.IMAGE_SIZE, "width": scenes.IMAGE_SIZE},
        image_mean=OPENAI_MEAN,
        image_std=OPENAI_STD,
        do_resize=True,
        do_rescale=True,
        do_normalize=True,
        do_convert_rgb=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_model(vocab_size: int, hidden: int, vision_layers: int, text_layers: int):
    """Small BlipForConditionalGeneration whose special ids match the word tokenizer."""
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipTextConfig,
        BlipVisionConfig,
    )

    heads = hidden // 32
    vision = BlipVisionConfig(
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        projection_dim=128,
        num_hidden_layers=vision_layers,
        num_attention_heads=heads,
        image_size=scenes.IMAGE_SIZE,
        patch_size=8,
        initializer_range=0.02,
    )
    sep = vocab.token_id(vocab.SEP)
    text = BlipTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        encoder_hidden_size=hidden,
        intermediate_size=hidden * 4,
        projection_dim=128,
        num_hidden_layers=text_layers,
        num_attention_heads=heads,
        max_position_embeddings=40,
        bos_token_id=vocab.token_id(vocab.DEC),
        eos_token_id=sep,
        sep_token_id=sep,
        pad_token_id=vocab.token_id(vocab.PAD),
        label_smoothing=0.0,
    )
    config = BlipConfig(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        projection_dim=128,
        image_text_hidden_size=128,
    )
    return BlipForConditionalGeneration(config)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=registry.BLIP_DIR)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--text-layers", type=int, default=3)
    p.add_argument(
        "--max-minutes",
        type=float,
        default=40.0,
        help="cosine schedule also ends by this wall time",
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="continue from a saved model directory (e.g. a copy of weights/blip) "
        "instead of random weights; --hidden and the layer counts are then ignored",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-every", type=int, default=25)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    tok_dir = args.out / "_tokenizer_build"
    vocab.save_tokenizer(tok_dir)
    processor = build_processor(tok_dir)
    tokenizer = processor.tokenizer
    if args.init is not None:
        from transformers import BlipForConditionalGeneration

        model = BlipForConditionalGeneration.from_pretrained(str(args.init))
        vocab_size = cast(Any, model.config.text_config).vocab_size
        if vocab_size != len(tokenizer):
            raise SystemExit(
                f"--init {args.init} has vocab {vocab_size}, "
                f"the generator's tokenizer has {len(tokenizer)}"
            )
    else:
        model = build_model(len(tokenizer), args.hidden, args.vision_layers, args.text_layers)
    n_params = sum(q.numel() for q in model.parameters())
    print(f"BLIP: {n_params / 1e6:.2f}M params", flush=True)
    text_config: Any = model.config.text_config  # a BlipTextConfig; typed as a union
    bos = text_config.bos_token_id
    pad = text_config.pad_token_id

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05, betas=(0.9, 0.98))
    model.train()
    start, max_s, ema, step = time.time(), args.max_minutes * 60, None, 0
    for step in range(args.steps):
        progress = max(step / args.steps, (time.time() - start) / max_s)
        if progress >= 1.0:
            print(f"stopping at step {step}: wall-time budget reached", flush=True)
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        for g in opt.param_groups:
            g["lr"] = lr
        batch = [scenes.generate_scene(rng) for _ in range(args.batch_size)]
        enc = processor(
            images=[s.image for s in batch],
            text=[s.caption for s in batch],
            padding="longest",
            return_tensors="pt",
        )
        input_ids = enc["input_ids"].clone()
        input_ids[:, 0] = bos  # generate() starts from [DEC]; train the same way
        labels = input_ids.masked_fill(input_ids == pad, -100)
        out = model(
            pixel_values=enc["pixel_values"],
            input_ids=input_ids,
            attention_mask=enc["attention_mask"],
            labels=labels,
        )
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = out.loss.item() if ema is None else 0.9 * ema + 0.1 * out.loss.item()
        if step % args.log_every == 0 or step == args.steps - 1:
            el = time.time() - start
            print(
                f"step {step:5d} loss {out.loss.item():.4f} ema {ema:.4f} lr {lr:.2e} "
                f"{(step + 1) / el:.3f} steps/s elapsed {el / 60:.1f} min",
                flush=True,
            )
    model.eval()  # kept fp32 (~15 MB): fp16 weights would make CPU inference load in fp16
    model.save_pretrained(str(args.out), safe_serialization=True)
    processor.save_pretrained(str(args.out))
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    info = {
        "params": n_params,
        "steps_run": step + 1,
        "wall_minutes": round((time.time() - start) / 60, 2),
        "final_ema_loss": ema,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    (args.out / "train_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    print(f"saved {args.out}; {json.dumps(info)}", flush=True)


if __name__ == "__main__":
    main()
