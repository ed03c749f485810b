"""Concurrent Embedder clients in their own process, for the throughput benches.

The clients must not share the server's event loop and GIL: in one process,
32 clients' Python (building requests, parsing replies) runs on the loop that
also serves the RPCs and competes with the inference thread for the GIL, so
the bench would measure itself. Here a spawned worker process keeps one
channel and, per command, runs N clients for a fixed time and sends back the
images done and every call's latency. (On a 2-core box the worker still uses
CPU; benches report its share.)
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

import grpc


@dataclass
class ClientWindow:
    """What one window of N clients did."""

    images: int
    seconds: float
    latencies_ms: list[float]
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.images / self.seconds


async def _drive(
    target: str, images: list[bytes], clients: int, per_call: int, seconds: float
) -> ClientWindow:
    from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc

    opts = [("grpc.max_send_message_length", 256 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(target, options=opts) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)
        await stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=images[:per_call]))
        done = 0
        latencies: list[float] = []
        cpu0 = sum(os.times()[:2])
        started = time.perf_counter()
        deadline = started + seconds

        async def client(offset: int) -> None:
            nonlocal done
            i = offset
            while time.perf_counter() < deadline:
                chunk = [images[(i + j) % len(images)] for j in range(per_call)]
                t0 = time.perf_counter()
                await stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=chunk))
                latencies.append((time.perf_counter() - t0) * 1000)
                done += per_call
                i += per_call

        await asyncio.gather(*(client(c * 7) for c in range(clients)))
        elapsed = time.perf_counter() - started
        return ClientWindow(done, elapsed, latencies, sum(os.times()[:2]) - cpu0)


def _worker(conn: Connection, target: str, images: list[bytes]) -> None:
    while True:
        msg = conn.recv()
        if msg is None:
            return
        clients, per_call, seconds = msg
        conn.send(asyncio.run(_drive(target, images, clients, per_call, seconds)))


class ClientProcess:
    """A spawned process that runs client windows against `target` on request."""

    def __init__(self, target: str, images: list[bytes]) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, args=(child, target, images), daemon=True)
        self._proc.start()

    def run(self, clients: int, per_call: int, seconds: float) -> ClientWindow:
        self._conn.send((clients, per_call, seconds))
        result: ClientWindow = self._conn.recv()
        return result

    def close(self) -> None:
        self._conn.send(None)
        self._proc.join(10)
