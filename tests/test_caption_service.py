"""The BLIP captioner over real gRPC on loopback, with a tiny local model."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from caption_service.model import BlipCaptioner, CaptionOptions
from caption_service.model_spec import resolve
from caption_service.server import CaptionServer, start_caption_server
from caption_service.settings import CaptionerSettings
from imgsearch.errors import InvalidInput
from imgsearch.v1 import captioner_pb2, captioner_pb2_grpc
from tests.conftest import decompression_bomb_png, encode_image, pattern
from tests.model_service import (
    GatedLoad,
    caption_server,
    captioner_settings,
    captioner_stub,
    check_health,
    check_image_batch_errors,
    rpc_error,
)
from tests.service_process import serve_then_sigterm

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
TOKENS = 6  # short captions keep generation on 2 CPU cores fast


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny BLIP in save_pretrained layout."""
    from tests.tiny_models import build_tiny_blip

    return build_tiny_blip(tmp_path_factory.mktemp("tiny_blip"))


@pytest.fixture(scope="module")
def local_captioner(tiny_blip: Path) -> BlipCaptioner:
    """The in-process wrapper the service results are compared with."""
    return BlipCaptioner(str(tiny_blip))


def settings_for(tiny_blip: Path, **overrides: object) -> CaptionerSettings:
    values: dict[str, object] = dict(
        max_items_per_request=16,
        max_new_tokens=TOKENS,
        max_new_tokens_limit=32,
        max_beams=4,
    )
    return captioner_settings(tiny_blip, **(values | overrides))


@pytest.fixture
async def server(tiny_blip: Path) -> AsyncIterator[CaptionServer]:
    async with caption_server(settings_for(tiny_blip)) as srv:
        yield srv


@pytest.fixture
async def stub(server: CaptionServer) -> AsyncIterator[captioner_pb2_grpc.CaptionerStub]:
    async with captioner_stub(server) as s:
        yield s


def request(images: list[bytes], **kwargs: object) -> captioner_pb2.CaptionRequest:
    options = kwargs.pop("options", None) or captioner_pb2.CaptionOptions()
    return captioner_pb2.CaptionRequest(images=images, options=options, **kwargs)  # type: ignore[arg-type]


async def test_captions_in_order_and_equal_to_in_process(
    stub: captioner_pb2_grpc.CaptionerStub, local_captioner: BlipCaptioner, tiny_blip: Path
) -> None:
    images = [encode_image(pattern(i)) for i in range(5)]
    reply = await stub.Caption(request(images))
    assert reply.model == tiny_blip.name
    assert len(reply.captions) == 5 and not reply.errors
    assert all(isinstance(c, str) and c for c in reply.captions)
    # Same batch composition in-process: one batch of 5, default options.
    expected = local_captioner.caption_images(images, CaptionOptions(max_new_tokens=TOKENS))
    assert list(reply.captions) == expected.captions
    assert len(set(reply.captions)) > 1, "the tiny model should describe images differently"
    # Order: each image alone gets the caption it got in the batch.
    alone = await stub.Caption(request([images[3]]))
    assert alone.captions[0] == reply.captions[3]


async def test_options_prefix_and_beams(
    stub: captioner_pb2_grpc.CaptionerStub, local_captioner: BlipCaptioner
) -> None:
    images = [encode_image(pattern(i)) for i in (10, 11)]
    options = captioner_pb2.CaptionOptions(max_new_tokens=4, num_beams=3, prefix=" A Photo of ")
    reply = await stub.Caption(request(images, options=options))
    for caption in reply.captions:
        assert caption.startswith("A Photo of ") and len(caption) > len("A Photo of ")
    local = local_captioner.caption_images(
        images, CaptionOptions(max_new_tokens=4, num_beams=3, prefix="A Photo of")
    )
    assert list(reply.captions) == local.captions
    # Longer budget, longer captions (the tiny model never stops early).
    short = await stub.Caption(
        request(images[:1], options=captioner_pb2.CaptionOptions(max_new_tokens=2))
    )
    long = await stub.Caption(
        request(images[:1], options=captioner_pb2.CaptionOptions(max_new_tokens=12))
    )
    assert len(short.captions[0].split()) < len(long.captions[0].split())


async def test_concurrent_single_image_requests_are_batched(
    stub: captioner_pb2_grpc.CaptionerStub, local_captioner: BlipCaptioner
) -> None:
    images = [encode_image(pattern(100 + i)) for i in range(8)]
    expected = [
        local_captioner.caption_images([img], CaptionOptions(max_new_tokens=TOKENS)).captions[0]
        for img in images
    ]
    before = await stub.Info(captioner_pb2.CaptionerInfoRequest())
    replies = await asyncio.gather(*(stub.Caption(request([img])) for img in images))
    after = await stub.Info(captioner_pb2.CaptionerInfoRequest())
    # A tiny model's greedy ties could flip with batch size, so compare mostly.
    same = sum(r.captions[0] == e for r, e in zip(replies, expected, strict=True))
    assert same >= 6, "requests got other images' captions"
    assert after.items_served - before.items_served == 8
    batches = after.model_batches - before.model_batches
    assert batches < 8, f"8 requests took {batches} model batches: no coalescing"
    assert after.max_batch_size == 8 and after.max_new_tokens_limit == 32 and after.max_beams == 4
    assert after.device == "cpu" and after.precision == "float32"


async def test_different_options_never_share_a_batch(
    server: CaptionServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent requests with other options are split by the batch key."""
    runtime = server.runtime
    model = runtime.model
    calls: list[tuple[int, CaptionOptions]] = []
    real = model.caption_batch

    def recording(pixels: list[object], options: CaptionOptions) -> list[str]:
        calls.append((len(pixels), options))
        return real(pixels, options)  # type: ignore[arg-type]

    monkeypatch.setattr(model, "caption_batch", recording)
    image = encode_image(pattern(5))
    plain = runtime.options(3, 0, "")
    prefixed = runtime.options(3, 0, "a dog")
    results = await asyncio.gather(
        *(runtime.caption_images([image], o, False) for o in (plain, prefixed, plain, prefixed))
    )
    assert 2 <= len(calls) <= 4 and sum(n for n, _ in calls) == 4
    assert {o for _, o in calls} == {plain, prefixed}
    assert results[0].captions == results[2].captions
    assert not results[0].captions[0].startswith("a dog ")
    assert results[1].captions[0].startswith("a dog ")
    assert results[1].captions == results[3].captions


async def test_error_statuses(stub: captioner_pb2_grpc.CaptionerStub) -> None:
    good = encode_image(pattern(1))
    opts = captioner_pb2.CaptionOptions

    await check_image_batch_errors(lambda images: stub.Caption(request(images)))
    code, msg = await rpc_error(stub.Caption(request([good, decompression_bomb_png()])))
    assert code == INVALID and "image[1]: too large" in msg
    code, msg = await rpc_error(stub.Caption(request([good] * 17)))
    assert code == EXHAUSTED and "limit is 16" in msg
    code, _ = await rpc_error(stub.Caption(request([b"\xff" * (3 * 1024 * 1024)])))
    assert code == EXHAUSTED  # over max_request_bytes (2 MiB here)
    code, msg = await rpc_error(stub.Caption(request([good], options=opts(max_new_tokens=33))))
    assert code == INVALID and "max_new_tokens" in msg
    code, msg = await rpc_error(stub.Caption(request([good], options=opts(num_beams=5))))
    assert code == INVALID and "num_beams" in msg
    code, msg = await rpc_error(stub.Caption(request([good], options=opts(prefix="x" * 301))))
    assert code == INVALID and "prefix" in msg
    # 40 words + 32 new tokens overflow the tiny model's 64 positions.
    code, msg = await rpc_error(
        stub.Caption(request([good], options=opts(max_new_tokens=32, prefix="a dog " * 20)))
    )
    assert code == INVALID and "positions" in msg

    # The server is still healthy and answers correctly after all that.
    reply = await stub.Caption(request([good]))
    assert reply.captions[0]


async def test_partial_results_keep_the_good_images(
    stub: captioner_pb2_grpc.CaptionerStub, local_captioner: BlipCaptioner
) -> None:
    good = [encode_image(pattern(i)) for i in (7, 8)]
    reply = await stub.Caption(
        request([good[0], b"junk", decompression_bomb_png(), good[1]], partial_results=True)
    )
    assert [e.index for e in reply.errors] == [1, 2]
    assert "too large" in reply.errors[1].reason
    assert reply.captions[1] == reply.captions[2] == ""
    expected = local_captioner.caption_images(good, CaptionOptions(max_new_tokens=TOKENS))
    assert [reply.captions[0], reply.captions[3]] == expected.captions


async def test_bad_image_does_not_spoil_concurrent_requests(
    stub: captioner_pb2_grpc.CaptionerStub,
) -> None:
    good = encode_image(pattern(3))
    calls = [stub.Caption(request([good if i % 2 else b"bad"])) for i in range(8)]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for i, r in enumerate(results):
        if i % 2:
            assert isinstance(r, captioner_pb2.CaptionResponse) and r.captions[0]
        else:
            assert isinstance(r, grpc.aio.AioRpcError) and r.code() == INVALID


class _GatedCaptioner(GatedLoad, BlipCaptioner):
    """Loads only when the test says so, to observe NOT_SERVING."""


async def test_health_goes_not_serving_to_serving(tiny_blip: Path) -> None:
    settings = settings_for(tiny_blip)
    srv = await start_caption_server(settings, model=_GatedCaptioner(settings.model))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            await check_health(channel, "imgsearch.v1.Captioner", serving=False)
            captioner = captioner_pb2_grpc.CaptionerStub(channel)
            code, _ = await rpc_error(captioner.Caption(request([encode_image(pattern(1))])))
            assert code == grpc.StatusCode.UNAVAILABLE
            code, _ = await rpc_error(captioner.Info(captioner_pb2.CaptionerInfoRequest()))
            assert code == grpc.StatusCode.UNAVAILABLE
            _GatedCaptioner.gate.set()
            await srv.wait_ready()
            await check_health(channel, "imgsearch.v1.Captioner", serving=True)
            reply2 = await captioner.Caption(request([encode_image(pattern(1))]))
            assert reply2.captions[0]
    finally:
        await srv.stop(grace_s=1)


def test_caption_options_validation_and_key() -> None:
    assert CaptionOptions(prefix="  a photo of ") == CaptionOptions(prefix="a photo of")
    assert hash(CaptionOptions(5, 2, "x")) == hash(CaptionOptions(5, 2, " x"))
    assert CaptionOptions.resolve(0, 0, "") == CaptionOptions(30, 1, "")
    for bad in ({"max_new_tokens": 0}, {"num_beams": 0}, {"prefix": "p" * 301}):
        with pytest.raises(InvalidInput):
            CaptionOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="over the limit 128"):
        CaptionOptions.resolve(129)
    with pytest.raises(InvalidInput, match="num_beams 9"):
        CaptionOptions.resolve(num_beams=9)


def test_in_process_reports_bad_images(local_captioner: BlipCaptioner) -> None:
    captions, errors = local_captioner.caption_images(
        [b"", encode_image(pattern(4))], CaptionOptions(max_new_tokens=3)
    )
    assert captions[0] == "" and captions[1] and list(errors) == [0]
    assert "empty file" in errors[0]


def test_model_spec_resolution(tiny_blip: Path, tmp_path: Path) -> None:
    assert resolve("Salesforce/blip-image-captioning-large").local is False
    local = resolve(str(tiny_blip))
    assert local.local and local.display == tiny_blip.name
    unloaded = BlipCaptioner(str(tiny_blip))
    assert unloaded.model_id == tiny_blip.name and not unloaded.loaded
    with pytest.raises(FileNotFoundError):
        resolve(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        resolve(str(tmp_path))


def test_sigterm_drains_and_exits_cleanly(tiny_blip: Path) -> None:
    """`python -m caption_service` serves, then exits 0 on SIGTERM."""
    env = dict(os.environ, IMGSEARCH_CAPTIONER_MODEL=str(tiny_blip))
    rest = serve_then_sigterm(
        ["-m", "caption_service", "--host", "127.0.0.1", "--port", "0",
         "--metrics-port", "-1", "--max-new-tokens", "4"],
        env, "captioner SERVING",
    )  # fmt: skip
    assert "shutting down" in rest and "stopped" in rest
