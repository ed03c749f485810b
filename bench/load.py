"""Load test of the full suite on loopback: concurrent searchers and ingesters
for a fixed time against embedder + gateway running as separate processes.

Prints requests/s, p50/p99 latency per kind, the error count (must be 0) and
the gateway's resident memory before and after (growth must stay under
--max-growth-mb). Exits non-zero when either bar is missed.

    python bench/load.py [--seconds 60] [--searchers 8] [--ingesters 2] [--model offline-tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
from PIL import Image

from imgsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

_DRAINS: list[asyncio.Future[None]] = []  # keep the log readers alive
WORDS = ["red", "blue", "green", "circle", "square", "star", "small", "large", "left", "right"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def random_jpeg(rng: random.Random) -> bytes:
    arr = np.random.default_rng(rng.getrandbits(32)).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).resize((320, 240)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


async def start(
    cmd: list[str], env: dict[str, str], marker: str
) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(*cmd, env=env, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 300)).decode()
        if not line:
            raise RuntimeError(f"{cmd[2]} exited before it was ready")
        if marker in line:
            _DRAINS.append(asyncio.ensure_future(_drain(proc.stderr)))
            return proc, line


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--searchers", type=int, default=8)
    ap.add_argument("--ingesters", type=int, default=2)
    ap.add_argument("--model", default="offline-tiny")
    ap.add_argument("--pretrained", default="")
    ap.add_argument("--max-growth-mb", type=float, default=64)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="imgsearch-load-")
    env = dict(os.environ, IMGSEARCH_LOG_LEVEL="INFO")
    emb_port, gw_port = 50151, 50150
    emb, _ = await start(
        [sys.executable, "-m", "embedder_service", "--model", args.model, "--pretrained",
         args.pretrained, "--host", "127.0.0.1", "--port", str(emb_port), "--metrics-port", "-1"],
        env, "embedder SERVING",
    )  # fmt: skip
    gw_env = dict(env, IMGSEARCH_DATA_DIR=tmp, IMGSEARCH_CAPTIONS="false", IMGSEARCH_EMBEDDER_ADDRESS=f"127.0.0.1:{emb_port}",
                  IMGSEARCH_HOST="127.0.0.1", IMGSEARCH_PORT=str(gw_port), IMGSEARCH_METRICS_PORT="-1")  # fmt: skip
    gw, _ = await start([sys.executable, "-m", "search_gateway"], gw_env, "gateway listening on")
    lat: dict[str, list[float]] = {"search": [], "ingest-batch": []}
    errors: list[str] = []
    rng = random.Random(0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw_port}") as ch:
            stub = gateway_pb2_grpc.SearchGatewayStub(ch)
            seed = [
                gateway_pb2.IngestRequest(data=random_jpeg(rng), uri=f"seed/{i}")
                for i in range(200)
            ]
            [r async for r in stub.Ingest(iter(seed))]
            await stub.Search(gateway_pb2.SearchRequest(text="warm up", k=10))
            rss_before = rss_mb(gw.pid)
            deadline = time.monotonic() + args.seconds

            async def searcher(n: int) -> None:
                r = random.Random(n)
                while time.monotonic() < deadline:
                    text = " ".join(r.choice(WORDS) for _ in range(3))
                    req = gateway_pb2.SearchRequest(text=text, k=10)
                    if r.random() < 0.5:
                        req.filter.must.add().match.CopyFrom(
                            gateway_pb2.Match(key="camera_id", keyword=f"cam-{r.randint(0, 3)}")
                        )
                    t = time.perf_counter()
                    try:
                        await stub.Search(req, timeout=30)
                        lat["search"].append(time.perf_counter() - t)
                    except grpc.aio.AioRpcError as err:
                        errors.append(f"search: {err.code().name} {err.details()}")

            async def ingester(n: int) -> None:
                r = random.Random(1000 + n)
                count = 0
                while time.monotonic() < deadline:
                    batch = [
                        gateway_pb2.IngestRequest(
                            data=random_jpeg(r), uri=f"load/{n}/{count + i}",
                            metadata={"camera_id": common_pb2.Value(string_value=f"cam-{i % 4}")},
                        )
                        for i in range(8)
                    ]  # fmt: skip
                    count += 8
                    t = time.perf_counter()
                    try:
                        results = [x async for x in stub.Ingest(iter(batch), timeout=60)]
                        lat["ingest-batch"].append(time.perf_counter() - t)
                        errors.extend(
                            f"ingest: {x.reason}"
                            for x in results
                            if x.status == gateway_pb2.INGEST_STATUS_FAILED
                        )
                    except grpc.aio.AioRpcError as err:
                        errors.append(f"ingest: {err.code().name} {err.details()}")

            started = time.monotonic()
            await asyncio.gather(*(searcher(i) for i in range(args.searchers)),
                                 *(ingester(i) for i in range(args.ingesters)))  # fmt: skip
            elapsed = time.monotonic() - started
            stats = await stub.Stats(gateway_pb2.StatsRequest())
            rss_after = rss_mb(gw.pid)
    finally:
        for proc in (gw, emb):
            proc.terminate()
            await proc.wait()

    print(
        f"{args.seconds:.0f} s, {args.searchers} searchers + {args.ingesters} ingesters (8 images per stream), model {args.model}"
    )
    print(f"{'kind':<14} {'count':>7} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, values in lat.items():
        ms = np.array(values) * 1000 if values else np.array([float("nan")])
        print(f"{kind:<14} {len(values):>7} {len(values) / elapsed:>7.1f} {np.percentile(ms, 50):>8.1f} {np.percentile(ms, 99):>8.1f}")  # fmt: skip
    print(f"points stored: {stats.count}; errors: {len(errors)}")
    for e in errors[:10]:
        print("  ", e)
    growth = rss_after - rss_before
    print(f"gateway RSS: {rss_before:.0f} MB before, {rss_after:.0f} MB after (growth {growth:+.0f} MB, bound {args.max_growth_mb:.0f} MB)")  # fmt: skip
    return 0 if not errors and growth <= args.max_growth_mb else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
