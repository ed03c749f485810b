"""Train the tiny offline image-text matching model (BLIP ITM head) on generated scenes.

The re-ranker has to tell apart exactly what a CLIP vector blurs: positions, sizes,
and which colour belongs to which shape. Each training image therefore comes with
several texts, most of them near misses built from the scene's own objects
(attributes swapped between objects, one attribute changed, relations flipped), and
every label is checked against the ground truth (``offline_training.itm_texts``).

The model is a real ``BlipForImageTextRetrieval`` (the class of
``Salesforce/blip-itm-base-coco``) so the service loads both through the same code.
Its vision tower and text encoder start from the committed tiny BLIP captioner
(same shapes; the captioner's text decoder is a BERT with cross-attention, the ITM
encoder is the same stack run bidirectionally), which converges far faster than
random weights on a shared 2-core CPU.

    nice -n 10 python -m offline_training.train_itm --out offline_models/weights/itm \
        --max-minutes 57 --threads 1

The output directory is rewritten (fp16, atomically per file) every
``--checkpoint-minutes`` so a run can be stopped early and still leave a model.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from offline_models import registry
from offline_training import itm_texts, scenes, vocab
from offline_training.train_blip import build_processor

ITM_DIR = registry.WEIGHTS_DIR / "itm"
VALIDATION_SEED = 900_101


def build_tokenizer_dir(directory: Path) -> Path:
    """The scene word tokenizer plus the relation words (``above``, ``below``), saved."""
    from tokenizers import AddedToken

    tok = vocab.build_tokenizer()
    tok.add_tokens(
        [AddedToken(w, single_word=True, normalized=True) for w in itm_texts.EXTRA_WORDS]
    )
    tok.save_pretrained(str(directory))
    return directory


def build_model(captioner_dir: Path, vocab_size: int, text_layers: int) -> Any:
    """``BlipForImageTextRetrieval`` with the captioner's config, its vision tower and
    its text stack copied in (extra text layers start as copies of the last one)."""
    from safetensors.torch import load_file
    from transformers import BlipConfig, BlipForImageTextRetrieval

    config = BlipConfig.from_pretrained(str(captioner_dir))
    text_config: Any = config.text_config
    text_config.vocab_size = vocab_size
    src_layers = text_config.num_hidden_layers
    text_config.num_hidden_layers = text_layers
    config.architectures = ["BlipForImageTextRetrieval"]
    model = BlipForImageTextRetrieval(config)
    src = load_file(str(captioner_dir / "model.safetensors"))
    own = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    for key, value in src.items():
        if key.startswith("vision_model."):
            new[key] = value
        elif key.startswith("text_decoder.bert."):
            new["text_encoder." + key[len("text_decoder.bert.") :]] = value
    for i in range(src_layers, text_layers):  # deeper encoder: copy the last layer
        prefix = f"text_encoder.encoder.layer.{src_layers - 1}."
        for key in list(new):
            if key.startswith(prefix):
                new[f"text_encoder.encoder.layer.{i}." + key[len(prefix) :]] = new[key].clone()
    emb = "text_encoder.embeddings.word_embeddings.weight"
    rows = own[emb].clone()
    rows[: new[emb].shape[0]] = new[emb]
    new[emb] = rows
    missing, unexpected = model.load_state_dict(new, strict=False)
    assert not unexpected, unexpected
    print(f"initialised from {captioner_dir}; fresh: {sorted(missing)}", flush=True)
    return model


def jpeg_roundtrip(image: Image.Image, rng: random.Random) -> Image.Image:
    """Search re-ranks stored JPEG/WebP thumbnails, so train on compressed pixels too."""
    buf = io.BytesIO()
    side = rng.choice((64, 64, 128, 384))
    img = image if side == 64 else image.resize((side, side), Image.Resampling.BICUBIC)
    img.save(buf, format="JPEG" if rng.random() < 0.6 else "WEBP", quality=rng.randint(70, 95))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def itm_logits(model: Any, enc: dict[str, torch.Tensor], image_index: torch.Tensor) -> torch.Tensor:
    """The ITM forward with each image encoded once for all its texts."""
    image_embeds = model.vision_model(pixel_values=enc["pixel_values"]).last_hidden_state
    image_embeds = image_embeds[image_index]
    atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long)
    out = model.text_encoder(
        input_ids=enc["input_ids"],
        attention_mask=enc["attention_mask"],
        encoder_hidden_states=image_embeds,
        encoder_attention_mask=atts,
    ).last_hidden_state
    return model.itm_head(out[:, 0, :])


def make_batch(
    processor: Any, rng: random.Random, n_images: int, n_texts: int, jpeg_p: float
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    images, texts, labels, index = [], [], [], []
    for i in range(n_images):
        scene = scenes.generate_scene(rng)
        img = jpeg_roundtrip(scene.image, rng) if rng.random() < jpeg_p else scene.image
        images.append(img)
        for text, label in itm_texts.training_pairs(scene.objects, rng, n_texts):
            texts.append(text)
            labels.append(label)
            index.append(i)
    pix = processor(images=images, return_tensors="pt")["pixel_values"]
    tok = processor.tokenizer(texts, padding="longest", return_tensors="pt")
    enc = {
        "pixel_values": pix,
        "input_ids": tok["input_ids"],
        "attention_mask": tok["attention_mask"],
    }
    return enc, torch.tensor(labels), torch.tensor(index)


def evaluate(
    model: Any, batch: tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]
) -> dict[str, float]:
    enc, labels, index = batch
    model.eval()
    with torch.no_grad():
        pred = itm_logits(model, enc, index).argmax(-1)
    model.train()
    pos, neg = labels == 1, labels == 0
    return {
        "acc": float((pred == labels).float().mean()),
        "acc_pos": float((pred[pos] == 1).float().mean()),
        "acc_neg": float((pred[neg] == 0).float().mean()),
    }


def save(model: Any, processor: Any, out: Path, info: dict[str, Any]) -> None:
    """fp16 weights + processor + train_info, each file replaced atomically."""
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    half = {k: v.detach().to(torch.float16).clone() for k, v in model.state_dict().items()}
    model.config.dtype = "float16"
    model.save_pretrained(str(tmp), state_dict=half, safe_serialization=True)
    processor.save_pretrained(str(tmp))
    (tmp / "train_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    for f in tmp.iterdir():
        f.chmod(0o644)
        os.replace(f, out / f.name)
    tmp.rmdir()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=ITM_DIR)
    p.add_argument("--captioner", type=Path, default=registry.BLIP_DIR)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--batch-images", type=int, default=24)
    p.add_argument("--texts-per-image", type=int, default=8)
    p.add_argument("--text-layers", type=int, default=3)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument(
        "--freeze-vision-layers",
        type=int,
        default=2,
        help="keep the captioner's patch embedding and first N vision layers fixed "
        "(they already see colour, shape and place; saves their backward pass)",
    )
    p.add_argument("--jpeg-p", type=float, default=0.5)
    p.add_argument("--max-minutes", type=float, default=57.0)
    p.add_argument("--checkpoint-minutes", type=float, default=8.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log-every", type=int, default=25)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    tok_dir = build_tokenizer_dir(args.out.parent / f".{args.out.name}.tok")
    processor = build_processor(tok_dir)
    shutil.rmtree(tok_dir)
    model = build_model(args.captioner, len(processor.tokenizer), args.text_layers)
    n_params = sum(q.numel() for q in model.parameters())
    vision = model.vision_model
    frozen = [vision.embeddings, *vision.encoder.layers[: args.freeze_vision_layers]]
    for module in frozen:
        module.requires_grad_(False)
    trainable = [q for q in model.parameters() if q.requires_grad]
    print(f"trainable {sum(q.numel() for q in trainable) / 1e6:.2f}M", flush=True)
    print(f"ITM: {n_params / 1e6:.2f}M params, vocab {len(processor.tokenizer)}", flush=True)
    val = make_batch(processor, random.Random(VALIDATION_SEED), 96, 4, 0.5)
    print(f"val before: {evaluate(model, val)}", flush=True)

    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.05, betas=(0.9, 0.98))
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    start, max_s = time.time(), args.max_minutes * 60
    last_ckpt, ema, step = start, None, 0

    def info() -> dict[str, Any]:
        return {
            "params": n_params,
            "steps_run": step + 1,
            "wall_minutes": round((time.time() - start) / 60, 2),
            "final_ema_loss": ema,
            "validation": evaluate(model, val),
            "args": {k: str(v) for k, v in vars(args).items()},
        }

    for step in range(args.steps):
        progress = max(step / args.steps, (time.time() - start) / max_s)
        if progress >= 1.0:
            print(f"stopping at step {step}: wall-time budget reached", flush=True)
            break
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * progress))
        for g in opt.param_groups:
            g["lr"] = lr
        enc, labels, index = make_batch(
            processor, rng, args.batch_images, args.texts_per_image, args.jpeg_p
        )
        loss = loss_fn(itm_logits(model, enc, index), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % args.log_every == 0:
            el = time.time() - start
            print(
                f"step {step:5d} loss {loss.item():.4f} ema {ema:.4f} lr {lr:.2e} "
                f"{(step + 1) / el:.3f} steps/s elapsed {el / 60:.1f} min",
                flush=True,
            )
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            i = info()
            save(model, processor, args.out, i)
            last_ckpt = time.time()
            print(f"checkpoint at step {step}: {i['validation']}", flush=True)
    final = info()
    save(model, processor, args.out, final)
    print(f"saved {args.out}; {json.dumps(final)}", flush=True)


if __name__ == "__main__":
    main()
