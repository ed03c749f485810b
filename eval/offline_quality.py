"""Held-out quality of the committed offline models (brute-force cosine search).

    python eval/offline_quality.py [--n-scenes 1000] [--caption-scenes 500] [--strict]

Scenes come from a seed disjoint from the training seeds. Bars: colour+shape
precision@10 >= 0.9, with size/position >= 0.5, single-object caption accuracy >= 0.8.
"""

from __future__ import annotations

import argparse
import time

import torch

from offline_training import inference
from offline_training.quality import print_bars

BARS = {"colour_shape": 0.9, "with_size_or_position": 0.5, "captions_single_object": 0.8}


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--n-scenes", type=int, default=1000)
    p.add_argument("--attr-queries", type=int, default=200)
    p.add_argument("--caption-scenes", type=int, default=500)
    p.add_argument("--seed", type=int, default=inference.HELD_OUT_SEED)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-blip", action="store_true")
    p.add_argument("--strict", action="store_true", help="exit 1 when a bar is missed")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.time()
    clip = inference.load_clip()
    res = inference.evaluate_clip(clip, args.n_scenes, args.seed, args.attr_queries)
    metrics = {
        "colour_shape": res["colour_shape"]["precision"],
        "with_size_or_position": res["with_size_or_position"]["precision"],
    }
    print(f"held-out scenes: {args.n_scenes} (seed {args.seed})")
    for key in ("colour_shape", "with_size_or_position"):
        r = res[key]
        worst = sorted(zip(r["per_query"], r["queries"], strict=True))[:3]
        print(
            f"text->image precision@10 [{key}]: {r['precision']:.3f} over {r['n_queries']} queries"
        )
        print("   worst: " + "; ".join(f"{q!r} {v:.2f}" for v, q in worst))
    print(f"(CLIP eval {time.time() - t0:.0f}s)")

    if not args.skip_blip:
        t0 = time.time()
        blip = inference.load_blip()
        single = inference.evaluate_blip(blip, args.caption_scenes, args.seed + 1, n_objects=1)
        multi = inference.evaluate_blip(
            blip, args.caption_scenes // 2, args.seed + 2, n_objects=None
        )
        metrics["captions_single_object"] = single["accuracy"]
        print(
            f"captions, single-object scenes: names colour+shape {single['accuracy']:.3f} "
            f"(exact caption {single['exact']:.3f}) over {single['n_scenes']}"
        )
        print(
            f"captions, 1-3 object scenes: names every colour+shape {multi['accuracy']:.3f} "
            f"(exact caption {multi['exact']:.3f}) over {multi['n_scenes']}"
        )
        for truth, pred in multi["examples"][:5]:
            print(f"   true: {truth}\n   pred: {pred}")
        print(f"(BLIP eval {time.time() - t0:.0f}s)")

    ok = print_bars(
        (key, value >= BARS[key], f"{value:.3f} (bar {BARS[key]})")
        for key, value in metrics.items()
    )
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    raise SystemExit(main())
