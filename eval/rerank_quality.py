"""Re-ranking quality through the real pipeline (files -> gateway -> store -> search).

    python eval/rerank_quality.py [--n-scenes 600] [--attr-queries 80] [--groups 16]

Bars (issue 16): size/position precision@10 >= 0.95 re-ranked; relational queries:
re-ranking at least halves vector-only error (1 - precision); colour+shape
precision@10 does not drop. Also reports hybrid (vector + caption terms).
"""

from __future__ import annotations

import argparse
import sys
import time

from offline_training.quality import print_bars
from offline_training.rerank_eval import VALIDATION_SEEDS, check_bars, evaluate_rerank


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-scenes", type=int, default=600)
    ap.add_argument("--attr-queries", type=int, default=80)
    ap.add_argument("--groups", type=int, default=16)
    ap.add_argument("--candidates", type=int, default=50)
    ap.add_argument(
        "--validation",
        action="store_true",
        help="use the validation seeds (to choose rerank.vector_weight), not the held-out ones",
    )
    ap.add_argument("--vector-weight", type=float, default=None, help="default: the gateway's")
    args = ap.parse_args()
    started = time.time()
    seeds = (
        {"seed": VALIDATION_SEEDS[0], "relational_seed": VALIDATION_SEEDS[1]}
        if args.validation
        else {}
    )
    r = evaluate_rerank(
        args.n_scenes,
        args.attr_queries,
        args.groups,
        args.candidates,
        vector_weight=args.vector_weight,
        **seeds,  # type: ignore[arg-type]
    )
    print("seeds:", "validation" if args.validation else "held-out")
    print(f"{r['n_points']} points ingested by path in {r['ingest_s']:.0f} s "
          f"(thumbnails written by the eval: {r['thumbnails_written_by_eval']}); "
          f"re-rank candidates {r['candidates']}")  # fmt: skip
    print(f"{'query set':32s} {'vector':>7s} {'hybrid':>7s} {'rerank':>7s} {'hyb+rr':>7s}")
    for name in ("colour_shape", "with_size_or_position", "relational_binding",
                 "relational_relation"):  # fmt: skip
        cells = [r.get(f"{name}/{how}") for how in ("vector", "hybrid", "rerank", "hybrid+rerank")]
        shown = " ".join(f"{c:7.3f}" if c is not None else f"{'-':>7s}" for c in cells)
        print(f"{name + ' (' + str(r[name + '/queries']) + ')':32s} {shown}")
    print("R-precision (precision at each query's number of true scenes):")
    for name in ("colour_shape", "with_size_or_position", "relational_binding",
                 "relational_relation"):  # fmt: skip
        cells = [
            r.get(f"{name}/{how}/R") for how in ("vector", "hybrid", "rerank", "hybrid+rerank")
        ]
        shown = " ".join(f"{c:7.3f}" if c is not None else f"{'-':>7s}" for c in cells)
        print(f"{name + ' (' + str(r[name + '/queries']) + ')':32s} {shown}")
    print(
        f"fused order P(match) + w x scaled vector score (configured w = {r['vector_weight']:g}), "
        "P@10/R-precision:"
    )
    for name in ("colour_shape", "with_size_or_position", "relational_binding",
                 "relational_relation"):  # fmt: skip
        cells = " ".join(
            f"w={w:g}: {r[f'{name}/rerank@{w:g}']:.3f}/{r[f'{name}/rerank@{w:g}/R']:.3f}"
            for w in r["weights"]
        )
        print(f"  {name:28s} {cells}")
    print(f"candidate search + scoring per query: p50 {r['rerank_search_p50_s'] * 1000:.0f} ms, "
          f"p99 {r['rerank_search_p99_s'] * 1000:.0f} ms")  # fmt: skip
    print("examples:", "; ".join(r["examples"]))
    ok = print_bars(check_bars(r))
    print(f"({time.time() - started:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
