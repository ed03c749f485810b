"""Embedder throughput: in-process vs through gRPC, side by side in one run.

ViT-B-32 with random weights (no download) on this machine's device. Every
round measures, one window after another: the in-process wrapper at batch B
(JPEG bytes in, vectors out: decode then model, what an embedded gateway
does), the model core alone at batch B (pre-decoded tensors), the gRPC
service with one client sending batches of B, and the service with 1, 8 and
32 concurrent clients sending one image each (dynamic batching at work). The
clients run in their own process (bench/grpc_clients.py), so they do not
share the server's event loop and GIL. Rounds interleave, so a burst of
outside load on a shared machine lands on every path alike.

Printed per path: best and median window (images/s), p50/p99 latency per
call, the mean model batch, the server process's CPU use (cores busy / cores)
and the ratio to in-process batch B: the median of the per-round ratios
(each window against the in-process window of its own round) and median /
median. The target of issue 15: 32 single-image clients >= 0.85x in-process
batch 32, mean batch >= 0.75x the max batch size.

    python bench/embedder_throughput.py [--runtime auto] [--batch 32] [--seconds 5] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from bench.grpc_clients import ClientProcess
from embedder_service.model import ClipEmbedder
from embedder_service.server import EmbedderServer, start_embedder_server
from embedder_service.settings import EmbedderSettings


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


def core(model: ClipEmbedder, pixels: list[torch.Tensor], seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.encode_image_batch(pixels)
        done += len(pixels)
    return done / (time.perf_counter() - started)


@dataclass
class PathStats:
    rates: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    items: int = 0
    batches: int = 0
    cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--pretrained", default="", help="'' = random weights (no download)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runtime", default="auto")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=None, help="default: the setting's")
    ap.add_argument("--clients", default="1,8,32", help="single-image client counts")
    ap.add_argument("--seconds", type=float, default=5.0, help="per window")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument(
        "--no-ab", action="store_true",
        help="skip the A/B window: the most clients again with the fill wait off (the old batcher)",
    )  # fmt: skip
    args = ap.parse_args()

    images = make_jpegs(max(64, args.batch))
    extra = {} if args.max_wait_ms is None else {"max_wait_ms": args.max_wait_ms}
    settings = EmbedderSettings(
        model=args.model, pretrained=args.pretrained, device=args.device, runtime=args.runtime,
        host="127.0.0.1", port=0, metrics_port=-1, max_batch_size=args.batch, **extra,
    )  # fmt: skip
    server: EmbedderServer = await start_embedder_server(settings)
    await server.wait_ready()
    model = server.runtime.model
    runtime = server.runtime
    info = model.info
    ncpu = os.cpu_count() or 1
    print(
        f"model {info.model} ({info.pretrained or 'random'}) on {info.device}, runtime "
        f"{info.runtime} ({info.precision}), torch threads {torch.get_num_threads()}, {ncpu} CPUs, "
        f"max batch {args.batch}, max_wait {settings.max_wait_ms} ms, "
        f"fill wait {settings.max_fill_wait_ms} ms"
    )
    pixels = [model.preprocess_image(b) for b in images[: args.batch]]
    await asyncio.to_thread(in_process, model, images, args.batch, 1.0)  # warm-up
    clients = ClientProcess(f"127.0.0.1:{server.port}", images)
    await asyncio.to_thread(clients.run, 1, args.batch, 1.0)  # warm-up (and spawn)

    ref_name = f"in-process, batch {args.batch}"
    paths: dict[str, PathStats] = defaultdict(PathStats)
    counts = [int(x) for x in args.clients.split(",")]
    service = [(f"service, 1 client x batch {args.batch}", 1, args.batch, True)] + [
        (f"service, {c} clients x 1 image", c, 1, True) for c in counts
    ]
    if not args.no_ab:
        service.append(("  same, fill wait off (before)", counts[-1], 1, False))
    batcher = runtime.image_batcher
    fill_wait = batcher.max_fill_wait_s
    for n in range(args.rounds):
        cpu0, t0 = _cpu_s(), time.perf_counter()
        ref = await asyncio.to_thread(in_process, model, images, args.batch, args.seconds)
        cpu = (_cpu_s() - cpu0) / (time.perf_counter() - t0) / ncpu
        paths[ref_name].rates.append(ref)
        paths[ref_name].ratios.append(1.0)
        paths[ref_name].cpu.append(cpu)
        rate = await asyncio.to_thread(core, model, pixels, args.seconds)
        paths[f"model core, batch {args.batch}"].rates.append(rate)
        paths[f"model core, batch {args.batch}"].ratios.append(rate / ref)
        line = [f"in-process {ref:.1f}", f"core {rate:.1f}"]
        for name, n_clients, per_call, fill in service:
            batcher.max_fill_wait_s = fill_wait if fill else batcher.max_wait_s
            items0, batches0 = runtime.items_served, runtime.model_batches
            cpu0 = _cpu_s()
            got = await asyncio.to_thread(clients.run, n_clients, per_call, args.seconds)
            p = paths[name]
            p.cpu.append((_cpu_s() - cpu0) / got.seconds / ncpu)
            p.client_cpu.append(got.client_cpu_s / got.seconds / ncpu)
            p.rates.append(got.rate)
            p.ratios.append(got.rate / ref)
            p.latencies.extend(got.latencies_ms)
            p.items += runtime.items_served - items0
            p.batches += runtime.model_batches - batches0
            line.append(f"{n_clients}x{per_call}{'' if fill else ' (no fill)'} {got.rate:.1f}")
        print(f"round {n + 1}: " + ", ".join(line), flush=True)
    clients.close()
    await server.stop(1)

    print(
        f"\n{'path':<32}{'best':>8}{'median':>8}{'x ref (paired med)':>20}{'med/med':>8}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'mean batch':>11}{'server CPU':>11}{'client CPU':>11}"
    )
    ref_med = statistics.median(paths[ref_name].rates)
    for name, p in paths.items():
        lat = np.array(p.latencies) if p.latencies else None
        p50 = f"{np.percentile(lat, 50):>8.0f}" if lat is not None else f"{'':>8}"
        p99 = f"{np.percentile(lat, 99):>8.0f}" if lat is not None else f"{'':>8}"
        mean_batch = f"{p.items / p.batches:>11.1f}" if p.batches else f"{'':>11}"
        cpu = f"{statistics.median(p.cpu):>10.0%}" if p.cpu else f"{'':>10}"
        ccpu = f"{statistics.median(p.client_cpu):>10.0%}" if p.client_cpu else f"{'':>10}"
        print(
            f"{name:<32}{max(p.rates):>8.1f}{statistics.median(p.rates):>8.1f}"
            f"{statistics.median(p.ratios):>20.2f}{statistics.median(p.rates) / ref_med:>8.2f}"
            f"{p50}{p99}{mean_batch} {cpu} {ccpu}"
        )
    target = service[len(counts)][0]
    last = paths[target]
    print(
        f"targets: {target} >= 0.85x in-process batch {args.batch} "
        f"(paired median {statistics.median(last.ratios):.2f}); mean batch >= "
        f"{0.75 * args.batch:.0f} (got {last.items / max(1, last.batches):.1f}). "
        f"CPU columns: process CPU time / wall / {ncpu} CPUs (the machine may be shared)."
    )


if __name__ == "__main__":
    asyncio.run(main())
