"""Embedder runtimes side by side: eager float32 vs each fast runtime.

ViT-B-32 with random weights (no download). For every runtime: the time to
SERVING (load + warm-up, which includes compiling), images/s of the model core
in-process (pre-processed tensors, batch 1/8/32), images/s through the real
gRPC service (one client sending JPEG batches of 1/8/32; each runtime's best of
--rounds interleaved rounds, as the machine is shared), the ratio to eager,
and cosine to the float32 vectors. Then the matmul ceiling (bench/ceiling.py):
the tower's own GEMMs replayed in each runtime's dtype, sampled in a window
right before every batch-32 core window, all through the run; each runtime's
share of it against the best and the median ceiling window, and the median of
the paired ratios (core window / the ceiling window just before it), which is
the figure least moved by outside load. Then the JPEG decode time with and
without draft mode (one thread).

    python bench/embedder_runtimes.py [--runtimes eager,bf16,bf16-compile] [--seconds 3] [--rounds 3]
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

from bench.ceiling import GemmCeiling, Windows
from bench.embedder_throughput import make_jpegs
from embedder_service.backends import EAGER, offered_runtimes
from embedder_service.model import ClipEmbedder
from embedder_service.runtime_fused import fusable
from embedder_service.server import EmbedderServer, start_embedder_server
from embedder_service.settings import EmbedderSettings
from imgsearch.images import decode_rgb
from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc

BATCHES = (1, 8, 32)
CEILING_BATCH = 32


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


def ceiling_key(server: EmbedderServer) -> tuple[torch.dtype, str]:
    """The dtype a runtime multiplies in and the matmul call it makes."""
    backend = server.runtime.model._backend
    return backend.dtype, "onednn" if backend.fused else "linear"


async def start(args: argparse.Namespace, runtime: str) -> tuple[EmbedderServer, float]:
    """A server for one runtime, SERVING; returns it and the seconds that took."""
    settings = EmbedderSettings(
        model=args.model, pretrained="", runtime=runtime, host="127.0.0.1", port=0,
        metrics_port=-1, max_batch_size=max(BATCHES),
    )  # fmt: skip
    torch.manual_seed(0)  # the same random weights for every runtime
    started = time.perf_counter()
    server = await start_embedder_server(settings)
    await server.wait_ready()
    ready_s = time.perf_counter() - started
    info = server.runtime.model.info
    print(f"{runtime}: {info.precision}, SERVING after {ready_s:.1f} s", flush=True)
    return server, ready_s


async def measure(
    server: EmbedderServer, images: list[bytes], seconds: float, ceiling: GemmCeiling
) -> dict[str, float]:
    """Core and service images/s at each batch size, for one server; a ceiling
    window of its dtype runs right before its batch-32 core window."""
    model = server.runtime.model
    pixels = [model.preprocess_image(b) for b in images[: max(BATCHES)]]
    row: dict[str, float] = {}
    for b in BATCHES:
        if b == CEILING_BATCH:
            row["ceiling"] = await asyncio.to_thread(ceiling.sample, seconds)
        row[f"core{b}"] = await asyncio.to_thread(core_rate, model, pixels, b, seconds)
    opts = [("grpc.max_send_message_length", 256 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=opts) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)
        for b in BATCHES:
            row[f"svc{b}"] = await service_rate(stub, images, b, seconds)
    return row


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
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="each runtime keeps its best round")
    args = ap.parse_args()
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    if EAGER not in runtimes:
        runtimes.insert(0, EAGER)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, runtimes {runtimes}")
    images = make_jpegs(max(BATCHES))
    servers: dict[str, EmbedderServer] = {}
    ready: dict[str, float] = {}
    for runtime in runtimes:
        servers[runtime], ready[runtime] = await start(args, runtime)
    # The machine is shared: runtimes are measured in turn, round after round,
    # and each keeps its best round, so a burst of outside load does not land
    # on one runtime only.
    # One ceiling per (dtype, matmul call), from the first server of that kind.
    ceilings: dict[tuple[torch.dtype, str], GemmCeiling] = {}
    # Both calls for every dtype (where oneDNN's fused linear exists), so the
    # table shows what the addmm path itself leaves on the table.
    calls = ["linear"] + (["onednn"] if fusable() is None else [])
    for server in servers.values():
        model = server.runtime.model
        for call in calls:
            key = (model._backend.dtype, call)
            if key not in ceilings:
                ceilings[key] = GemmCeiling.for_model(
                    model._model.visual, CEILING_BATCH, model.info.image_size, key[0], call=call
                )
    rows: dict[str, dict[str, float]] = {r: {} for r in runtimes}
    core32 = {r: Windows() for r in runtimes}
    paired = {r: Windows() for r in runtimes}
    for n in range(args.rounds):
        for runtime, server in servers.items():
            ceiling = ceilings[ceiling_key(server)]
            got = await measure(server, images, args.seconds, ceiling)
            print(f"round {n + 1} {runtime}: " + ", ".join(f"{k} {v:.1f}" for k, v in got.items()))
            core32[runtime].add(got[f"core{CEILING_BATCH}"])
            paired[runtime].add(got[f"core{CEILING_BATCH}"] / got["ceiling"])
            for k, v in got.items():
                rows[runtime][k] = max(v, rows[runtime].get(k, 0.0))
        # Ceilings no runtime uses get one window a round too.
        used = {ceiling_key(s) for s in servers.values()}
        for key, ceiling in ceilings.items():
            if key not in used:
                await asyncio.to_thread(ceiling.sample, args.seconds)
    vectors: dict[str, np.ndarray] = {}
    for runtime, server in servers.items():
        model = server.runtime.model
        pixels = [model.preprocess_image(b) for b in images[:16]]
        vectors[runtime] = model.encode_image_batch(pixels)
        await server.stop(1)

    ref = rows[EAGER]
    print(f"\n{args.model}, random weights; images/s (x eager float32)")
    head = "".join(f"{'core b' + str(b):>16}" for b in BATCHES)
    head += "".join(f"{'service b' + str(b):>16}" for b in BATCHES)
    print(f"{'runtime':<14}{'ready s':>8}{head}{'min cos':>9}")
    for runtime, row in rows.items():
        cells = "".join(
            f"{row[k]:>8.1f} ({row[k] / ref[k]:>4.1f}x)"
            for k in [f"core{b}" for b in BATCHES] + [f"svc{b}" for b in BATCHES]
        )
        cos = float(np.min(np.sum(vectors[runtime] * vectors[EAGER], axis=1)))
        print(f"{runtime:<14}{ready[runtime]:>8.1f}{cells}{cos:>9.5f}")
    print(
        f"\nshare of the matmul ceiling at batch {CEILING_BATCH} (core windows vs ceiling windows)"
    )
    for ceiling in ceilings.values():
        print("  " + ceiling.summary())
    print(
        f"{'runtime':<14}{'core best':>10}{'core med':>10}{'best/best':>10}{'med/med':>9}"
        f"{'med/best':>9}{'paired med':>11}{'paired best':>12}"
    )
    for runtime, server in servers.items():
        w = ceilings[ceiling_key(server)].windows
        c, p = core32[runtime], paired[runtime]
        print(
            f"{runtime:<14}{c.best:>10.1f}{c.median:>10.1f}{c.best / w.best:>10.2f}"
            f"{c.median / w.median:>9.2f}{c.median / w.best:>9.2f}{p.median:>11.2f}{p.best:>12.2f}"
        )
    f32_key, b16_key = (torch.float32, "linear"), (torch.bfloat16, "linear")
    if f32_key in ceilings and b16_key in ceilings:
        f32, b16 = ceilings[f32_key].windows, ceilings[b16_key].windows
        print(
            f"bf16 / float32 ceiling: best {b16.best / f32.best:.2f}, median "
            f"{b16.median / f32.median:.2f} (the most a bf16 path gains over float32 here)"
        )
    print("\nJPEG decode, one thread, ms per image: full size vs draft (min side 224)")
    for size, full, draft in decode_times():
        print(f"  {size:<10} full {full:7.1f}   draft {draft:6.1f}   ({full / draft:.1f}x)")


if __name__ == "__main__":
    asyncio.run(main())
