"""Search latency with re-ranking, and what a BLIP-base-sized matcher would cost.

Part 1 — an embedded gateway (offline-tiny CLIP, Qdrant Edge, offline-tiny
matcher in-process) holding `--scenes` scene files with thumbnails: Search
p50/p99 without re-ranking and with `rerank` 50 and 200, measured in the same
run, so the ratios say what re-ranking adds.

Part 2 — the cost per (image, text) pair of `BlipForImageTextRetrieval` with the
BLIP-base configuration (ViT-B/16 at 384 px, 12-layer BERT text encoder with
cross-attention; random weights, since nothing can be downloaded here) on this
CPU, for a batch of pairs sharing one text (what a re-rank sends); and from its
measured FLOP rate, what 50 and 200 candidates cost here and what a GPU would do.

    python bench/rerank_latency.py [--scenes 600] [--queries 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from offline_training import scenes


def _pct(xs: list[float]) -> str:
    a = np.array(xs) * 1000
    return f"p50 {np.percentile(a, 50):7.1f} ms  p99 {np.percentile(a, 99):7.1f} ms"


async def search_latency(n_scenes: int, n_queries: int, folder: Path) -> dict[str, list[float]]:
    from search_gateway.assemble import build_core
    from search_gateway.core import SearchQuery
    from search_gateway.ingest import IngestItem
    from search_gateway.rerank import RerankOptions
    from search_gateway.settings import EmbedderLink, GatewaySettings, RerankLink
    from search_gateway.thumbnails import make_thumbnail

    files = folder / "files"
    files.mkdir()
    data = scenes.generate_dataset(n_scenes, 424242)
    for i, s in enumerate(data):
        s.image.save(files / f"{i:05d}.jpg", quality=92)
    settings = GatewaySettings(
        data_dir=str(folder / "data"),
        collection="bench",
        embedder=EmbedderLink(model="offline-tiny", pretrained="", device="cpu"),
        captions=False,
        rerank=RerankLink(model="offline-tiny", timeout_s=300.0),  # measure, never fall back
    )
    core = await build_core(settings, read_roots=[files])
    try:

        async def items() -> AsyncIterator[IngestItem]:
            for i in range(n_scenes):
                p = files / f"{i:05d}.jpg"
                yield IngestItem(path=str(p), uri=str(p))

        outcomes = [o async for o in core.ingest(items())]
        assert core.reranker is not None and core.reranker.thumbnails is not None
        for o, s in zip(outcomes, data, strict=True):
            if core.reranker.thumbnails.get(o.id) is None:
                core.reranker.thumbnails.put(o.id, make_thumbnail(s.image))
        rng = __import__("random").Random(7)
        texts = [
            scenes.mentions_text(scenes.sample_mentions(rng.choice(data).objects, rng))
            for _ in range(n_queries)
        ]
        # Warm both models (first calls load weights).
        await core.search_reranked(SearchQuery(text=texts[0], k=10), RerankOptions(10))
        out: dict[str, list[float]] = {"vector": [], "rerank 50": [], "rerank 200": []}
        for text in texts:
            for name in out:
                q = SearchQuery(text=text, k=10)
                t0 = time.perf_counter()
                if name == "vector":
                    await core.search(q)
                else:
                    await core.search_reranked(q, RerankOptions(int(name.split()[1]), strict=True))
                out[name].append(time.perf_counter() - t0)
        return out
    finally:
        await core.close()


def blip_base_flops_per_pair(config: object, text_tokens: int) -> float:
    """Forward FLOPs of one pair: ViT over all patches + text encoder with cross-attention."""
    v = config.vision_config  # type: ignore[attr-defined]
    t = config.text_config  # type: ignore[attr-defined]
    n = (v.image_size // v.patch_size) ** 2 + 1
    h, ff = v.hidden_size, v.intermediate_size
    vision = v.num_hidden_layers * (2 * n * (4 * h * h + 2 * h * ff) + 4 * n * n * h)
    th, tf = t.hidden_size, t.intermediate_size
    cross = 2 * text_tokens * 2 * th * th + 2 * n * 2 * th * t.encoder_hidden_size
    cross += 4 * text_tokens * n * th
    text = t.num_hidden_layers * (
        2 * text_tokens * (4 * th * th + 2 * th * tf) + 4 * text_tokens**2 * th + cross
    )
    return float(vision + text)


def blip_base_pair_cost(batch: int, repeats: int) -> tuple[float, float]:
    """(seconds per pair, GFLOP per pair) of BLIP-base ITM with random weights."""
    from transformers import BlipConfig, BlipForImageTextRetrieval

    config = BlipConfig()  # the base sizes: ViT-B/16 384 px, BERT-base text
    model = BlipForImageTextRetrieval(config).eval()
    vision: Any = config.vision_config
    size = vision.image_size
    tokens = 12
    pixels = torch.randn(batch, 3, size, size)
    ids = torch.randint(1000, 2000, (batch, tokens))
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        model(input_ids=ids[:1], attention_mask=mask[:1], pixel_values=pixels[:1])  # warm
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
            times.append(time.perf_counter() - t0)
    per_pair = float(np.median(times)) / batch
    return per_pair, blip_base_flops_per_pair(config, tokens) / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=600)
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--base-batch", type=int, default=4)
    ap.add_argument("--base-repeats", type=int, default=3)
    ap.add_argument("--gpu-tflops", type=float, default=200.0,
                    help="sustained fp16/bf16 dense TFLOP/s assumed for the GPU estimate "
                         "(H100/H200-class at ~20-30%% of peak on a ViT-B)")  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads {args.threads}; CPU shared with other jobs unless said otherwise")

    with tempfile.TemporaryDirectory(prefix="imgsearch-rerank-bench-") as tmp:
        lat = asyncio.run(search_latency(args.scenes, args.queries, Path(tmp)))
    print(f"\nPart 1: Search, {args.scenes} points, {args.queries} queries, k=10, offline-tiny")
    base = float(np.percentile(lat["vector"], 50))
    for name, xs in lat.items():
        print(f"  {name:10s} {_pct(xs)}   p50 x{np.percentile(xs, 50) / base:5.1f} of vector")
    per_tiny = (np.percentile(lat["rerank 200"], 50) - np.percentile(lat["rerank 50"], 50)) / 150
    print(f"  marginal cost per re-ranked candidate (tiny, 50->200): {per_tiny * 1000:.2f} ms")

    per_pair, gflop = blip_base_pair_cost(args.base_batch, args.base_repeats)
    cpu_gflops = gflop / per_pair
    print("\nPart 2: BLIP-base-sized ITM (random weights), CPU float32")
    print(f"  {gflop:.1f} GFLOP per pair (model estimate); measured {per_pair * 1000:.0f} ms "
          f"per pair in batches of {args.base_batch} -> {cpu_gflops:.0f} GFLOP/s here")  # fmt: skip
    print(f"  ratio BLIP-base / offline-tiny per candidate: x{per_pair / max(per_tiny, 1e-6):.0f}")
    for n in (50, 200):
        gpu_s = n * gflop / (args.gpu_tflops * 1000)
        print(f"  rerank {n:3d}: CPU ~{n * per_pair:6.1f} s;  GPU at {args.gpu_tflops:.0f} "
              f"TFLOP/s sustained ~{gpu_s * 1000:6.1f} ms (x{n * per_pair / gpu_s:,.0f})")  # fmt: skip
    print("  (GPU figure is an estimate from the measured FLOP count, not measured here: "
          "no GPU in this run)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
