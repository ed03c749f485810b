"""The gateway's gRPC health says SERVING only once its collection is usable.

Real servers on loopback: an embedder that is not up yet when the gateway
starts, and a collection built by another model.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from embedder_service.server import start_embedder_server
from embedder_service.settings import EmbedderSettings
from imgsearch.v1 import gateway_pb2, gateway_pb2_grpc
from search_gateway import domain as d
from search_gateway.server import start_gateway_server
from search_gateway.store.edge_store import EdgeStore
from tests.gateway_harness import gateway_settings

SERVICE = "imgsearch.v1.SearchGateway"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _health(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    status: int = reply.status
    return status


async def _stats_code(channel: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        await gateway_pb2_grpc.SearchGatewayStub(channel).Stats(gateway_pb2.StatsRequest())
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def test_not_serving_until_the_embedder_is_up(
    tiny_clip: tuple[Path, Path], tmp_path: Path
) -> None:
    config, checkpoint = tiny_clip
    port = _free_port()  # the embedder will listen here, later
    settings = gateway_settings(
        _Models(config, checkpoint),
        tmp_path,
        embedder_address=f"127.0.0.1:{port}",
        embedder_timeout_s=2,
        captions=False,
    )
    gw = await start_gateway_server(settings)
    embedder = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            for service in ("", SERVICE):
                assert await _health(channel, service) == NOT_SERVING
            down = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            assert await _stats_code(channel) in down

            embedder = await start_embedder_server(
                EmbedderSettings(
                    model=str(config),
                    pretrained=str(checkpoint),
                    host="127.0.0.1",
                    port=port,
                    metrics_port=-1,
                )
            )
            await embedder.wait_ready()
            deadline = time.monotonic() + 60
            while await _health(channel, SERVICE) != SERVING:
                assert time.monotonic() < deadline, "gateway never turned SERVING"
                await asyncio.sleep(0.2)
            assert await _health(channel, "") == SERVING
            assert await _stats_code(channel) == grpc.StatusCode.OK
    finally:
        await gw.stop(1)
        if embedder is not None:
            await embedder.stop(1)


async def test_a_collection_of_another_model_stays_not_serving(
    tiny_clip: tuple[Path, Path], tmp_path: Path
) -> None:
    config, checkpoint = tiny_clip
    settings = gateway_settings(
        _Models(config, checkpoint), tmp_path, store_engine="edge", captions=False
    )
    other = EdgeStore.open_dir(tmp_path / "edge", settings.collection)
    other.open(d.CollectionSpec("another-model", "elsewhere", 3))
    other.close()
    gw = await start_gateway_server(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            assert await _stats_code(channel) == grpc.StatusCode.FAILED_PRECONDITION
            await asyncio.sleep(0.5)  # past the health task's first look
            for service in ("", SERVICE):
                assert await _health(channel, service) == NOT_SERVING
    finally:
        await gw.stop(1)


async def test_a_usable_collection_is_serving_at_once(
    tiny_clip: tuple[Path, Path], tmp_path: Path
) -> None:
    config, checkpoint = tiny_clip
    settings = gateway_settings(_Models(config, checkpoint), tmp_path, captions=False)
    gw = await start_gateway_server(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.port}") as channel:
            for service in ("", SERVICE):
                assert await _health(channel, service) == SERVING
    finally:
        await gw.stop(1)


class _Models:
    """The harness's Models with no captioner (these gateways run without one)."""

    def __init__(self, config: Path, checkpoint: Path) -> None:
        self.clip_config = config
        self.clip_checkpoint = checkpoint
        self.blip_dir = Path("/nonexistent-captioner")
