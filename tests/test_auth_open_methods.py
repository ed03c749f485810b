"""Only health and reflection are open: matched by full method name, so a
future RPC called `Check` (or `Watch`) on one of our services still needs a
key. Real gRPC server on loopback, a real generic handler for that RPC."""

from __future__ import annotations

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from imgsearch.serving.auth import OPEN_METHODS, ApiKeys, bearer, is_open
from imgsearch.serving.server import ServiceBinding, create_server

KEY = "k-open-methods-test"
FUTURE_SERVICE = "imgsearch.v1.FutureService"


def _add_future_service(_servicer: object, server: aio.Server) -> None:
    async def echo(request: bytes, context: aio.ServicerContext) -> bytes:
        return request

    handlers = {
        name: grpc.unary_unary_rpc_method_handler(echo) for name in ("Check", "Watch", "Other")
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(FUTURE_SERVICE, handlers),)
    )


def test_open_methods_are_full_names() -> None:
    assert all(m.startswith("/grpc.") and m.count("/") == 2 for m in OPEN_METHODS)
    assert is_open("/grpc.health.v1.Health/Check")
    assert not is_open("Check")
    assert not is_open(f"/{FUTURE_SERVICE}/Check")


@pytest.mark.parametrize("method", ["Check", "Watch", "Other"])
async def test_a_future_rpc_named_like_a_probe_needs_a_key(method: str) -> None:
    running = await create_server(
        "127.0.0.1:0",
        [ServiceBinding(object(), _add_future_service, FUTURE_SERVICE)],
        max_message_bytes=1 << 20,
        api_keys=ApiKeys.single(KEY),
    )
    try:
        async with aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            call = channel.unary_unary(f"/{FUTURE_SERVICE}/{method}")
            with pytest.raises(aio.AioRpcError) as err:
                await call(b"ping", timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert await call(b"ping", timeout=10, metadata=bearer(KEY)) == b"ping"
            # The real probe stays open without a key.
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await running.server.stop(0)
