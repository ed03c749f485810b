"""Quality of the offline models through the real pipeline (embedded gateway).

    python eval/pipeline_quality.py [--n-scenes 1000] [--caption-scenes 500]

Bars (issue 4): colour+shape precision@10 >= 0.9; with size/position >= 0.5;
single-object captions name colour and shape >= 0.8; filters never violated.
"""

from __future__ import annotations

import argparse
import sys
import time

from offline_training.inference import HELD_OUT_SEED
from offline_training.pipeline_eval import evaluate_pipeline
from offline_training.quality import print_bars

BARS = {"colour_shape": 0.9, "with_size_or_position": 0.5, "captions_single_object": 0.8}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-scenes", type=int, default=1000)
    ap.add_argument("--attr-queries", type=int, default=200)
    ap.add_argument("--caption-scenes", type=int, default=500)
    ap.add_argument("--seed", type=int, default=HELD_OUT_SEED)
    args = ap.parse_args()
    started = time.time()
    r = evaluate_pipeline(args.n_scenes, args.seed, args.attr_queries, args.caption_scenes)
    print(f"held-out scenes: {args.n_scenes} (seed {args.seed}), through GatewayCore (embedded)")
    print(f"text->image precision@10, colour+shape ({r['colour_shape_queries']} queries): "
          f"{r['colour_shape']:.3f}")  # fmt: skip
    print(f"text->image precision@10, + size/position ({r['with_size_or_position_queries']} "
          f"queries): {r['with_size_or_position']:.3f}")  # fmt: skip
    print(f"captions name colour+shape, {args.caption_scenes} single-object scenes: "
          f"{r['captions_single_object']:.3f}")  # fmt: skip
    print(f"filtered hits violating the filter: {r['filter_violations']}")
    for truth, pred in r["caption_examples"]:
        print(f"   true: {truth}\n   pred: {pred}")
    ok = r["filter_violations"] == 0
    ok &= print_bars((key, r[key] >= bar, f"{r[key]:.3f} (bar {bar})") for key, bar in BARS.items())
    print(f"({time.time() - started:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
