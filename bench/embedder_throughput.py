"""Embedder throughput: in-process vs through gRPC, side by side in one run.

ViT-B-32 with random weights (no download) on this machine's device. Prints
images/s for: the in-process wrapper at batch B, the gRPC service with one
client sending batches of B, and the service with 1, 8 and 32 concurrent
clients sending one image each (dynamic batching at work), plus the ratios the
model-services issue targets (service >= 0.9x in-process; 32 single-image
clients >= 0.8x in-process batch B).

    python bench/embedder_throughput.py [--model ViT-B-32] [--batch 32] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time

import grpc
import numpy as np
from PIL import Image

from embedder_service.model import ClipEmbedder
from embedder_service.server import start_embedder_server
from embedder_service.settings import EmbedderSettings
from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc


def make_jpegs(n: int, side: int = 256) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        arr = rng.integers(0, 255, (side // 8, side // 8, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).resize((side, side)).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def in_process(model: ClipEmbedder, images: list[bytes], batch: int, seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.embed_images(images[:batch], batch_size=batch)
        done += batch
    return done / (time.perf_counter() - started)


async def through_service(
    stub: embedder_pb2_grpc.EmbedderStub, images: list[bytes], per_call: int, clients: int,
    seconds: float,
) -> float:  # fmt: skip
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < deadline:
            chunk = [images[(i + j) % len(images)] for j in range(per_call)]
            await stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=chunk))
            done += per_call
            i += per_call

    started = time.perf_counter()
    await asyncio.gather(*(client(c * 7) for c in range(clients)))
    return done / (time.perf_counter() - started)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--pretrained", default="", help="'' = random weights (no download)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()

    images = make_jpegs(max(64, args.batch))
    settings = EmbedderSettings(
        model=args.model, pretrained=args.pretrained, device=args.device,
        precision=args.precision, host="127.0.0.1", port=0, metrics_port=-1,
        max_batch_size=args.batch, max_wait_ms=5,
    )  # fmt: skip
    server = await start_embedder_server(settings)
    await server.wait_ready()
    model = server.runtime.model
    info = model.info
    print(f"model {info.model} ({info.pretrained or 'random'}) on {info.device} {info.precision}")
    await asyncio.to_thread(in_process, model, images, args.batch, 2.0)  # warm-up
    rows: list[tuple[str, float]] = []
    ref = await asyncio.to_thread(in_process, model, images, args.batch, args.seconds)
    rows.append((f"in-process, batch {args.batch}", ref))
    opts = [("grpc.max_send_message_length", 256 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=opts) as ch:
        stub = embedder_pb2_grpc.EmbedderStub(ch)
        await through_service(stub, images, args.batch, 1, 2.0)  # warm-up
        rows.append(
            (f"service, 1 client x batch {args.batch}",
             await through_service(stub, images, args.batch, 1, args.seconds))
        )  # fmt: skip
        for clients in (1, 8, 32):
            rows.append(
                (f"service, {clients} clients x 1 image",
                 await through_service(stub, images, 1, clients, args.seconds))
            )  # fmt: skip
    await server.stop(1)
    print(f"{'path':<34} {'images/s':>9} {'x in-process':>13}")
    for name, rate in rows:
        print(f"{name:<34} {rate:>9.1f} {rate / ref:>13.2f}")
    print(
        f"targets: service batch >= 0.90 (got {rows[1][1] / ref:.2f}); "
        f"32 single-image clients >= 0.80 (got {rows[-1][1] / ref:.2f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
