"""What the training scripts share, so every model is trained under the same
rules: the common flags, seeding, the step loop under two budgets (linear
warmup, then cosine decay that ends with the step budget or the wall-time
budget, whichever comes first), the progress line and train_info.json."""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def training_parser(
    doc: str | None,
    *,
    out: Path,
    steps: int,
    seed: int,
    batch_size: int,
    lr: float,
    log_every: int,
    init_help: str,
) -> argparse.ArgumentParser:
    """A parser with the flags every training script takes; the script adds its own."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=out)
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--seed", type=int, default=seed)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument(
        "--max-minutes",
        type=float,
        default=40.0,
        help="cosine schedule also ends by this wall time",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-every", type=int, default=log_every)
    p.add_argument("--init", type=Path, default=None, help=init_help)
    return p


def lr_at(progress: float, step: int, base_lr: float, warmup: int) -> float:
    """Linear warmup then cosine decay on ``progress`` in [0, 1]."""
    warm = min(1.0, (step + 1) / max(1, warmup))
    return base_lr * warm * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class TrainingRun:
    """One run's bookkeeping around the script's own model and loss."""

    def __init__(self, args: argparse.Namespace) -> None:
        """Threads and seeds from the flags (a run is reproducible from them)."""
        self.args = args
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.rng = random.Random(args.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        self.step = 0
        self.ema_loss: float | None = None

    def steps(self, opt: torch.optim.Optimizer) -> Iterator[tuple[int, float]]:
        """Each step with its learning rate, already set on ``opt``; ends early,
        saying so, when the wall-time budget is spent."""
        args = self.args
        self.started = time.time()
        max_s = args.max_minutes * 60
        for step in range(args.steps):
            self.step = step
            progress = max(step / args.steps, (time.time() - self.started) / max_s)
            if progress >= 1.0:
                print(f"stopping at step {step}: wall-time budget reached", flush=True)
                return
            lr = lr_at(progress, step, args.lr, args.warmup)
            for g in opt.param_groups:
                g["lr"] = lr
            yield step, lr

    def track(self, loss: float) -> float:
        """The loss's moving average (0.9 decay), for a readable progress line."""
        self.ema_loss = loss if self.ema_loss is None else 0.9 * self.ema_loss + 0.1 * loss
        return self.ema_loss

    def log_due(self, step: int) -> bool:
        return step % self.args.log_every == 0 or step == self.args.steps - 1

    def pace(self, step: int) -> str:
        el = time.time() - self.started
        return f"{(step + 1) / el:.3f} steps/s elapsed {el / 60:.1f} min"

    def save_info(self, params: int, **first: Any) -> dict[str, Any]:
        """Writes <out>/train_info.json (``first`` leads it) and returns it."""
        info = {
            **first,
            "params": params,
            "steps_run": self.step + 1,
            "wall_minutes": round((time.time() - self.started) / 60, 2),
            "final_ema_loss": self.ema_loss,
            "args": {k: str(v) for k, v in vars(self.args).items()},
        }
        (self.args.out / "train_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
        return info
