"""Train the tiny offline CLIP on generated scenes (CPU, about half an hour).

Batches are drawn fresh from the scene generator, each image with two captions
(mostly short queries naming one object, sometimes the full caption). Many captions
in a batch are true for several images ("a red circle"), so the contrastive loss uses
soft multi-positive targets over every compatible (image, text) pair instead of the
diagonal only. Images go through the exact eval transform open_clip returns for the
registered model, so inference through open_clip sees what training saw.

    python -m offline_training.train_clip --out offline_models/weights/clip --steps 900 --seed 1
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F

from offline_models import registry
from offline_training import scenes, vocab
from offline_training.training import TrainingRun, training_parser

_ATTR_VALUES: dict[str, tuple[str, ...]] = {
    "colour": tuple(scenes.COLOURS),
    "shape": scenes.SHAPES,
    "size": scenes.SIZES,
    "position": scenes.POSITIONS,
}
_MAX_OBJECTS = 3


def encode_objects(objects_per_scene: Sequence[Sequence[scenes.SceneObject]]) -> torch.Tensor:
    """[N, 3, 4] attribute indices; missing objects are -9 (match nothing)."""
    out = torch.full((len(objects_per_scene), _MAX_OBJECTS, 4), -9, dtype=torch.long)
    for i, objs in enumerate(objects_per_scene):
        for j, o in enumerate(objs):
            for a, key in enumerate(scenes.ATTRIBUTES):
                out[i, j, a] = _ATTR_VALUES[key].index(getattr(o, key))
    return out


def encode_mentions(
    mentions_per_text: Sequence[Sequence[dict[str, str]]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """[T, 3, 4] attribute indices with -1 = unspecified, plus [T, 3] validity mask."""
    out = torch.full((len(mentions_per_text), _MAX_OBJECTS, 4), -1, dtype=torch.long)
    valid = torch.zeros((len(mentions_per_text), _MAX_OBJECTS), dtype=torch.bool)
    for i, ms in enumerate(mentions_per_text):
        for j, m in enumerate(ms):
            valid[i, j] = True
            for a, key in enumerate(scenes.ATTRIBUTES):
                if key in m:
                    out[i, j, a] = _ATTR_VALUES[key].index(m[key])
    return out, valid


def compatibility(
    mentions: torch.Tensor, valid: torch.Tensor, objects: torch.Tensor
) -> torch.Tensor:
    """[T, N] bool: text t is true of image n (each mention matched by some object)."""
    m = mentions[:, :, None, None, :]  # T,M,1,1,A
    o = objects[None, None, :, :, :]  # 1,1,N,O,A
    attr_ok = (m == -1) | (m == o)
    obj_ok = attr_ok.all(-1) & (objects[None, None, :, :, 0] >= 0)  # T,M,N,O
    mention_ok = obj_ok.any(-1) | ~valid[:, :, None]  # T,M,N
    return mention_ok.all(1)


def multi_positive_loss(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy with uniform soft targets over all positives.

    ``logits``/``positives`` are [images, texts]; every row and column has a positive.
    """
    pos = positives.float()
    t_img = pos / pos.sum(1, keepdim=True)
    t_txt = pos.t() / pos.t().sum(1, keepdim=True)
    loss_i = -(t_img * F.log_softmax(logits, dim=1)).sum(1).mean()
    loss_t = -(t_txt * F.log_softmax(logits.t(), dim=1)).sum(1).mean()
    return (loss_i + loss_t) / 2


def make_batch(
    rng: random.Random, batch_size: int, texts_per_image: int
) -> tuple[list[scenes.Scene], list[str], torch.Tensor, torch.Tensor]:
    """Fresh scenes, their captions, and the [images, texts] positive mask."""
    batch = [scenes.generate_scene(rng) for _ in range(batch_size)]
    mentions: list[list[dict[str, str]]] = []
    texts: list[str] = []
    for _ in range(texts_per_image):
        for s in batch:
            ms = scenes.sample_mentions(s.objects, rng)
            mentions.append(ms)
            texts.append(scenes.mentions_text(ms, rng))
    m, valid = encode_mentions(mentions)
    objects = encode_objects([s.objects for s in batch])
    pos = compatibility(m, valid, objects).t()
    return batch, texts, pos, objects


class AttributeHeads(torch.nn.Module):
    """Training-only probe: per position, predict colour/shape/size (or empty) from the
    normalised image embedding. Direct supervision from the generator's ground truth
    teaches the small image tower far faster than the contrastive signal alone; the
    heads are not saved, so the checkpoint stays a plain open_clip state dict."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.sizes = [len(_ATTR_VALUES[k]) + 1 for k in ("colour", "shape", "size")]
        self.n_pos = len(scenes.POSITIONS)
        self.proj = torch.nn.Linear(embed_dim, self.n_pos * sum(self.sizes))

    def loss(self, emb: torch.Tensor, objects: torch.Tensor) -> torch.Tensor:
        """``objects`` is encode_objects(...): [N, 3, 4] (colour, shape, size, position)."""
        n = emb.shape[0]
        targets = torch.zeros(n, self.n_pos, 3, dtype=torch.long)  # 0 = empty
        for j in range(objects.shape[1]):
            o = objects[:, j]
            present = o[:, 0] >= 0
            rows = torch.nonzero(present).squeeze(1)
            targets[rows, o[rows, 3], :] = o[rows, :3] + 1
        logits = self.proj(emb * 10).view(n, self.n_pos, sum(self.sizes))
        parts = torch.split(logits, self.sizes, dim=-1)
        total = sum(
            F.cross_entropy(part.reshape(-1, part.shape[-1]), targets[:, :, a].reshape(-1))
            for a, part in enumerate(parts)
        )
        return cast(torch.Tensor, total) / len(parts)


def save_fp16(model: torch.nn.Module, path: Path) -> None:
    """Half-precision safetensors checkpoint (open_clip's loader upcasts on load)."""
    from safetensors.torch import save_file

    state = {
        k: (v.half() if v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(path))


def main(argv: Sequence[str] | None = None) -> None:
    p = training_parser(
        __doc__,
        out=registry.CLIP_DIR,
        steps=900,
        seed=1,
        batch_size=192,
        lr=2e-3,
        log_every=10,
        init_help="continue from a saved checkpoint",
    )
    p.add_argument("--texts-per-image", type=int, default=2)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--aux-weight", type=float, default=1.0, help="attribute-probe loss weight")
    args = p.parse_args(argv)

    import open_clip

    run = TrainingRun(args)
    tok_dir = args.out / registry.TOKENIZER_SUBDIR
    vocab.save_tokenizer(tok_dir)
    name = registry.register_config(tok_dir)
    pretrained = str(args.init) if args.init else None
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
    tokenizer = open_clip.get_tokenizer(name)
    n_params = sum(q.numel() for q in model.parameters())
    print(f"model {name}: {n_params / 1e6:.2f}M params; preprocess {preprocess}", flush=True)

    heads = AttributeHeads(model.text_projection.shape[1])
    decay = [q for n, q in model.named_parameters() if q.ndim >= 2 and "embedding" not in n]
    no_decay = [
        q for n, q in model.named_parameters() if not (q.ndim >= 2 and "embedding" not in n)
    ]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
            {"params": list(heads.parameters()), "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    model.train()
    for step, lr in run.steps(opt):
        batch, texts, pos, objects = make_batch(run.rng, args.batch_size, args.texts_per_image)
        images = torch.stack([preprocess(s.image) for s in batch])
        tokens = tokenizer(texts)
        img_f = model.encode_image(images, normalize=True)
        txt_f = model.encode_text(tokens, normalize=True)
        logits = model.logit_scale.exp() * img_f @ txt_f.t()
        contrastive = multi_positive_loss(logits, pos)
        aux = heads.loss(img_f, objects)
        loss = contrastive + args.aux_weight * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        ema_loss = run.track(loss.item())
        if run.log_due(step):
            with torch.no_grad():
                top = logits.argmax(0)  # best image per text
                acc = pos[top, torch.arange(pos.shape[1])].float().mean().item()
            print(
                f"step {step:5d} loss {loss.item():.4f} ema {ema_loss:.4f} "
                f"aux {aux.item():.3f} t2i-acc {acc:.3f} "
                f"lr {lr:.2e} scale {model.logit_scale.exp().item():.1f} "
                f"{run.pace(step)}",
                flush=True,
            )
    ckpt = registry.clip_checkpoint_path(args.out)
    save_fp16(model, ckpt)
    info = run.save_info(n_params, model_name=name)
    print(f"saved {ckpt} ({ckpt.stat().st_size / 1e6:.1f} MB); {json.dumps(info)}", flush=True)


if __name__ == "__main__":
    main()
