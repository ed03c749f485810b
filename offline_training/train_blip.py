"""Train the tiny offline BLIP captioner on generated scenes (CPU, about half an hour).

The decoder is taught the full true caption (every object with size, colour, shape
and position) so the captions stored next to each image name everything in it.
Inputs follow BLIP's conventions: the decoder starts from ``bos_token_id`` ([DEC],
which ``generate`` also uses) and stops at ``sep_token_id`` ([SEP]).

    python -m offline_training.train_blip --out offline_models/weights/blip --steps 2000 --seed 2

Continue from a checkpoint with ``--init <copy of weights/blip>`` (new seed, lower lr).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch

from offline_models import registry
from offline_training import scenes, vocab
from offline_training.training import TrainingRun, training_parser

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
    p = training_parser(
        __doc__,
        out=registry.BLIP_DIR,
        steps=2000,
        seed=2,
        batch_size=64,
        lr=1e-3,
        log_every=25,
        init_help="continue from a saved model directory (e.g. a copy of weights/blip) "
        "instead of random weights; --hidden and the layer counts are then ignored",
    )
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--text-layers", type=int, default=3)
    args = p.parse_args(argv)

    run = TrainingRun(args)
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
    for step, lr in run.steps(opt):
        batch = [scenes.generate_scene(run.rng) for _ in range(args.batch_size)]
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
        ema = run.track(out.loss.item())
        if run.log_due(step):
            print(
                f"step {step:5d} loss {out.loss.item():.4f} ema {ema:.4f} lr {lr:.2e} "
                f"{run.pace(step)}",
                flush=True,
            )
    model.eval()  # kept fp32 (~15 MB): fp16 weights would make CPU inference load in fp16
    model.save_pretrained(str(args.out), safe_serialization=True)
    processor.save_pretrained(str(args.out))
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    info = run.save_info(n_params)
    print(f"saved {args.out}; {json.dumps(info)}", flush=True)


if __name__ == "__main__":
    main()
