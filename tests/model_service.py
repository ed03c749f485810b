"""What the embedder and captioner service tests share: both services are
built on the same serving toolkit, so they must fail bad calls the same way and
go through the same NOT_SERVING -> SERVING start-up."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from caption_service.server import CaptionServer, start_caption_server
from caption_service.settings import CaptionerSettings
from imgsearch.v1 import captioner_pb2_grpc
from tests.conftest import encode_image, pattern

INVALID = grpc.StatusCode.INVALID_ARGUMENT
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def captioner_settings(model: Path, **values: object) -> CaptionerSettings:
    """Settings for a captioner on loopback (any port, no metrics, 2 MiB requests,
    a short batching wait); `values` set the rest or override these."""
    base: dict[str, object] = dict(
        model=str(model),
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        max_request_bytes=2 * 1024 * 1024,
        max_wait_ms=50,
    )
    return CaptionerSettings(**(base | values))  # type: ignore[arg-type]


@asynccontextmanager
async def caption_server(settings: CaptionerSettings) -> AsyncIterator[CaptionServer]:
    """A started captioner, SERVING, stopped on exit."""
    srv = await start_caption_server(settings)
    await srv.wait_ready()
    yield srv
    await srv.stop(grace_s=1)


@asynccontextmanager
async def captioner_stub(server: CaptionServer) -> AsyncIterator[captioner_pb2_grpc.CaptionerStub]:
    """A stub on a loopback channel to `server`, closed on exit."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield captioner_pb2_grpc.CaptionerStub(channel)


async def rpc_error(call: object) -> tuple[grpc.StatusCode, str]:
    """The status and details of a call that must fail."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    raise AssertionError("call succeeded but should have failed")


async def check_image_batch_errors(send: Callable[[list[bytes]], object]) -> None:
    """The request-level image checks every model service makes: an empty batch,
    an undecodable image and a truncated JPEG are INVALID_ARGUMENT naming the image."""
    good = encode_image(pattern(1))
    truncated_jpeg = encode_image(pattern(2, (640, 480)), quality=95)
    truncated_jpeg = truncated_jpeg[: len(truncated_jpeg) // 2]
    code, msg = await rpc_error(send([]))
    assert code == INVALID and "empty batch" in msg
    code, msg = await rpc_error(send([good, b"not an image at all"]))
    assert code == INVALID and msg.startswith("image[1]:")
    code, msg = await rpc_error(send([good, good, truncated_jpeg]))
    assert code == INVALID and msg.startswith("image[2]:") and "truncated" in msg.lower()


async def check_health(channel: grpc.aio.Channel, service: str, *, serving: bool) -> None:
    """While the model loads, the named service is NOT_SERVING; once it is
    loaded, both the server as a whole ("") and the named service are SERVING."""
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", service) if serving else (service,):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == (SERVING if serving else NOT_SERVING), name


class GatedLoad:
    """Mixin for a model class: it loads only when the test sets ``gate``, so a
    test can observe the service while it is still NOT_SERVING."""

    gate: ClassVar[threading.Event]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.gate = threading.Event()

    def _load(self) -> None:
        assert self.gate.wait(30)
        super()._load()  # type: ignore[misc]
