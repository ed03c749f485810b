"""Infinity and our embedder, the same JPEG, the same concurrent clients.

Started by bench/peer_infinity.sh (which installs Infinity in its own venv).
Builds a random-weight Hugging Face CLIP ViT-B/32 for Infinity
(bench/peer_infinity_model.py, run with the Infinity venv's python), starts
`infinity_emb v2` on it (CPU, float32: the only dtype it runs there) and our
embedder (ViT-B-32 random weights, the default runtime) in this process, then
for each client count runs a window against each server in turn, rounds
interleaved: every client sends one JPEG per call and waits for the answer.
Clients run in their own process for both servers: gRPC for ours (bench/
grpc_clients.py), HTTP POST /embeddings (modality image, base64 data URI) for
Infinity. Printed side by side: images/s (best, median), p50/p99 latency,
and ours / Infinity (median of the per-round ratios). The target of issue 15:
>= 4x Infinity at 8 and at 32 clients, with lower p99.

    bench/peer_infinity.sh [--clients 1,8,32] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from bench.embedder_throughput import make_jpegs
from bench.grpc_clients import ClientProcess, ClientWindow


async def _http_window(
    url: str, model: str, image: bytes, clients: int, seconds: float
) -> ClientWindow:
    import aiohttp

    uri = "data:image/jpeg;base64," + base64.b64encode(image).decode()
    body = {"model": model, "input": [uri], "modality": "image"}
    latencies: list[float] = []
    done = 0
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body) as r:  # warm-up, and fail fast
            r.raise_for_status()
            await r.read()
        cpu0 = sum(os.times()[:2])
        started = time.perf_counter()
        deadline = started + seconds

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with session.post(url, json=body) as r:
                    r.raise_for_status()
                    await r.read()
                latencies.append((time.perf_counter() - t0) * 1000)
                done += 1

        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return ClientWindow(done, elapsed, latencies, sum(os.times()[:2]) - cpu0)


def _http_worker(conn: Connection, url: str, model: str, image: bytes) -> None:
    while (msg := conn.recv()) is not None:
        clients, seconds = msg
        conn.send(asyncio.run(_http_window(url, model, image, clients, seconds)))


class HttpClients:
    def __init__(self, url: str, model: str, image: bytes) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_http_worker, args=(child, url, model, image), daemon=True)
        self._proc.start()

    def run(self, clients: int, seconds: float) -> ClientWindow:
        self._conn.send((clients, seconds))
        result: ClientWindow = self._conn.recv()
        return result

    def close(self) -> None:
        self._conn.send(None)
        self._proc.join(10)


@dataclass
class Side:
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def start_infinity(args: argparse.Namespace, model_dir: Path) -> subprocess.Popen[bytes]:
    exe = Path(args.infinity_python).parent / "infinity_emb"
    env = dict(os.environ, DO_NOT_TRACK="1", INFINITY_ANONYMOUS_USAGE_STATS="0")
    env["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)
    cmd = [
        str(exe), "v2", "--model-id", str(model_dir), "--served-model-name", "clip",
        "--host", "127.0.0.1", "--port", str(args.infinity_port), "--engine", "torch",
        "--device", "cpu", "--batch-size", str(args.batch), "--no-bettertransformer",
    ]  # fmt: skip
    log = open(args.workdir / "infinity.log", "wb")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    import urllib.request

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"Infinity exited ({proc.returncode}); see its log")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"Infinity not healthy after {timeout_s:.0f} s")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--infinity-python", required=True)
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32, help="max batch of both servers")
    ap.add_argument("--runtime", default="auto", help="our embedder's runtime")
    ap.add_argument("--infinity-port", type=int, default=7997)
    ap.add_argument("--workdir", type=Path, default=Path.home() / ".cache/imgsearch-bench")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    from open_clip.tokenizer import default_bpe

    model_dir = args.workdir / "clip-vit-b32-random"
    subprocess.run(
        [args.infinity_python, str(Path(__file__).with_name("peer_infinity_model.py")),
         str(model_dir), default_bpe()], check=True,
    )  # fmt: skip
    image = make_jpegs(1)[0]  # the same 256x256 JPEG for both

    proc = start_infinity(args, model_dir)
    base = f"http://127.0.0.1:{args.infinity_port}"
    try:
        wait_http(f"{base}/health", proc, 900)
        from embedder_service.server import start_embedder_server
        from embedder_service.settings import EmbedderSettings

        settings = EmbedderSettings(
            model="ViT-B-32", pretrained="", runtime=args.runtime, host="127.0.0.1", port=0,
            metrics_port=-1, max_batch_size=args.batch,
        )  # fmt: skip
        server = await start_embedder_server(settings)
        await server.wait_ready()
        info = server.runtime.model.info
        print(
            f"ours: ViT-B-32 random, {info.runtime} ({info.precision}); Infinity "
            f"(infinity-emb, torch engine, float32 on CPU): HF CLIP ViT-B/32 random; "
            f"max batch {args.batch} both; {os.cpu_count()} CPUs (shared machine)",
            flush=True,
        )
        ours_clients = ClientProcess(f"127.0.0.1:{server.port}", [image])
        inf_clients = HttpClients(f"{base}/embeddings", "clip", image)
        counts = [int(c) for c in args.clients.split(",")]
        ours = {c: Side() for c in counts}
        theirs = {c: Side() for c in counts}
        ratios: dict[int, list[float]] = {c: [] for c in counts}
        await asyncio.to_thread(ours_clients.run, 1, 1, 1.0)
        for n in range(args.rounds):
            for c in counts:
                a = await asyncio.to_thread(ours_clients.run, c, 1, args.seconds)
                b = await asyncio.to_thread(inf_clients.run, c, args.seconds)
                for side, w in ((ours[c], a), (theirs[c], b)):
                    side.rates.append(w.rate)
                    side.latencies.extend(w.latencies_ms)
                ratios[c].append(a.rate / b.rate)
                print(f"round {n + 1}, {c} clients: ours {a.rate:.1f}, Infinity {b.rate:.1f} img/s",
                      flush=True)  # fmt: skip
        ours_clients.close()
        inf_clients.close()
        await server.stop(1)
    finally:
        proc.terminate()
        proc.wait(30)

    print(f"\n{'clients':>7} | {'ours img/s best/med':>20}{'p50':>7}{'p99':>7} | "
          f"{'Infinity img/s best/med':>24}{'p50':>7}{'p99':>7} | {'ours/Inf':>8}{'p99 lower':>10}")  # fmt: skip
    for c in counts:
        o, t = ours[c], theirs[c]
        op50, op99 = np.percentile(o.latencies, [50, 99])
        tp50, tp99 = np.percentile(t.latencies, [50, 99])
        print(
            f"{c:>7} | {max(o.rates):>9.1f} /{statistics.median(o.rates):>8.1f}{op50:>7.0f}{op99:>7.0f} | "
            f"{max(t.rates):>12.1f} /{statistics.median(t.rates):>9.1f}{tp50:>7.0f}{tp99:>7.0f} | "
            f"{statistics.median(ratios[c]):>8.2f}{'yes' if op99 < tp99 else 'no':>10}"
        )
    print("latencies in ms; ours/Inf = median of per-round ratios; target >= 4 at 8 and 32 clients")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
