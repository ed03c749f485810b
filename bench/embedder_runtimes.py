"""Embedder runtimes side by side: eager float32 vs each fast runtime.

ViT-B-32 with random weights (no download). For every runtime: the time to
SERVING (load + warm-up, which includes compiling), images/s of the model core
in-process (pre-processed tensors, batch 1/8/32), images/s through the real
gRPC service (one client sending JPEG batches of 1/8/32), the ratio to eager,
the share of the bf16 matmul peak, and cosine to the float32 vectors. Then the
JPEG decode time with and without draft mode (one thread).

    python bench/embedder_runtimes.py [--runtimes eager,bf16,bf16-compile] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time

import grpc
import numpy as np
import torch
from PIL import Image

from embedder_service.backends import EAGER, offered_runtimes
from embedder_service.model import ClipEmbedder
from embedder_service.server import start_embedder_server
from embedder_service.settings import EmbedderSettings
from imgsearch.images import decode_rgb
from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc

GFLOP_PER_IMAGE = 8.7  # ViT-B-32 image tower at 224 px (FlopCounterMode)
BF16_PEAK_GFLOPS = 800.0  # measured bf16 matmul peak of this 2-core EPYC
BATCHES = (1, 8, 32)


def make_jpegs(n: int, side: int = 256) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        arr = rng.integers(0, 255, (side // 8, side // 8, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).resize((side, side)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def core_rate(model: ClipEmbedder, pixels: list[torch.Tensor], batch: int, seconds: float) -> float:
    """Images/s of encode_image_batch alone (decode excluded)."""
    chunk = pixels[:batch]
    model.encode_image_batch(chunk)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.encode_image_batch(chunk)
        done += batch
    return done / (time.perf_counter() - started)


async def service_rate(
    stub: embedder_pb2_grpc.EmbedderStub, images: list[bytes], batch: int, seconds: float
) -> float:
    """Images/s for one client sending batches of `batch` JPEGs."""
    request = embedder_pb2.EmbedImagesRequest(images=images[:batch])
    await stub.EmbedImages(request)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        await stub.EmbedImages(request)
        done += batch
    return done / (time.perf_counter() - started)


async def run_runtime(
    args: argparse.Namespace, runtime: str, images: list[bytes]
) -> tuple[dict[str, float], np.ndarray]:
    settings = EmbedderSettings(
        model=args.model, pretrained="", runtime=runtime, host="127.0.0.1", port=0,
        metrics_port=-1, max_batch_size=max(BATCHES),
    )  # fmt: skip
    started = time.perf_counter()
    server = await start_embedder_server(settings)
    await server.wait_ready()
    row: dict[str, float] = {"ready_s": time.perf_counter() - started}
    model = server.runtime.model
    print(f"{runtime}: {model.info.precision}, SERVING after {row['ready_s']:.1f} s", flush=True)
    pixels = [model.preprocess_image(b) for b in images[: max(BATCHES)]]
    for b in BATCHES:
        row[f"core{b}"] = await asyncio.to_thread(core_rate, model, pixels, b, args.seconds)
    opts = [("grpc.max_send_message_length", 256 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=opts) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)
        for b in BATCHES:
            row[f"svc{b}"] = await service_rate(stub, images, b, args.seconds)
    vectors = await asyncio.to_thread(model.encode_image_batch, pixels[:16])
    await server.stop(1)
    print("  " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
    return row, vectors


def decode_times(repeats: int = 5) -> list[tuple[str, float, float]]:
    """ms per decode of a large JPEG, full size vs draft (224 px), one thread."""
    rng = np.random.default_rng(1)
    out = []
    for w, h in ((1920, 1080), (4000, 3000)):
        small = rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(small).resize((w, h), Image.BILINEAR).save(buf, "JPEG", quality=90)
        data = buf.getvalue()
        timings = []
        for min_side in (None, 224):
            decode_rgb(data, min_side=min_side)
            started = time.perf_counter()
            for _ in range(repeats):
                decode_rgb(data, min_side=min_side)
            timings.append((time.perf_counter() - started) / repeats * 1000)
        out.append((f"{w}x{h}", timings[0], timings[1]))
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--runtimes", default=",".join(offered_runtimes("cpu")))
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    if EAGER not in runtimes:
        runtimes.insert(0, EAGER)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, runtimes {runtimes}")
    images = make_jpegs(max(BATCHES))
    rows: dict[str, dict[str, float]] = {}
    vectors: dict[str, np.ndarray] = {}
    for runtime in runtimes:
        rows[runtime], vectors[runtime] = await run_runtime(args, runtime, images)

    ref = rows[EAGER]
    print(f"\n{args.model}, random weights; images/s (x eager float32)")
    head = "".join(f"{'core b' + str(b):>16}" for b in BATCHES)
    head += "".join(f"{'service b' + str(b):>16}" for b in BATCHES)
    print(f"{'runtime':<14}{'ready s':>8}{head}{'peak% b32':>10}{'min cos':>9}")
    for runtime, row in rows.items():
        cells = "".join(
            f"{row[k]:>8.1f} ({row[k] / ref[k]:>4.1f}x)"
            for k in [f"core{b}" for b in BATCHES] + [f"svc{b}" for b in BATCHES]
        )
        peak = row["core32"] * GFLOP_PER_IMAGE / BF16_PEAK_GFLOPS * 100
        cos = float(np.min(np.sum(vectors[runtime] * vectors[EAGER], axis=1)))
        print(f"{runtime:<14}{row['ready_s']:>8.1f}{cells}{peak:>9.0f}%{cos:>9.5f}")
    print(
        f"peak% = core images/s at batch 32 x {GFLOP_PER_IMAGE} GFLOP / "
        f"{BF16_PEAK_GFLOPS:.0f} GFLOP/s (bf16 matmul peak)"
    )
    print("\nJPEG decode, one thread, ms per image: full size vs draft (min side 224)")
    for size, full, draft in decode_times():
        print(f"  {size:<10} full {full:7.1f}   draft {draft:6.1f}   ({full / draft:.1f}x)")


if __name__ == "__main__":
    asyncio.run(main())
