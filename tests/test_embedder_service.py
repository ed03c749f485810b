"""The CLIP embedder over real gRPC on loopback, with a tiny local model."""

from __future__ import annotations

import asyncio
import os
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from embedder_service.model import ClipEmbedder
from embedder_service.server import EmbedderServer, start_embedder_server
from embedder_service.settings import EmbedderSettings
from imgsearch import vectors
from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc
from tests.conftest import decompression_bomb_png, encode_image, pattern
from tests.model_service import GatedLoad, check_health, check_image_batch_errors, rpc_error
from tests.service_process import serve_then_sigterm

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def settings_for(tiny_clip: tuple[Path, Path], **overrides: object) -> EmbedderSettings:
    config, checkpoint = tiny_clip
    values = dict(
        model=str(config), pretrained=str(checkpoint), host="127.0.0.1", port=0, metrics_port=-1
    )
    values.update(overrides)
    return EmbedderSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def server(tiny_clip: tuple[Path, Path]) -> AsyncIterator[EmbedderServer]:
    srv = await start_embedder_server(settings_for(tiny_clip, max_request_bytes=2 * 1024 * 1024))
    await srv.wait_ready()
    yield srv
    await srv.stop(grace_s=1)


@pytest.fixture
async def stub(server: EmbedderServer) -> AsyncIterator[embedder_pb2_grpc.EmbedderStub]:
    async with grpc.aio.insecure_channel(
        f"127.0.0.1:{server.port}",
        options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
    ) as channel:
        yield embedder_pb2_grpc.EmbedderStub(channel)


async def test_vectors_are_unit_norm_and_match_in_process(
    stub: embedder_pb2_grpc.EmbedderStub, server: EmbedderServer
) -> None:
    images = [encode_image(pattern(i)) for i in range(5)]
    info = await stub.Info(embedder_pb2.InfoRequest())
    reply = await stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=images))
    got = vectors.decode_rows(list(reply.vectors), info.dimension)
    assert reply.dimension == info.dimension == got.shape[1]
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)

    local = ClipEmbedder(server.runtime.model.model_name, server.runtime.model.pretrained)
    expected = np.stack(local.embed_images(images).vectors)  # type: ignore[arg-type]
    assert np.abs(got - expected).max() < 1e-5
    assert len({v.tobytes() for v in got}) == 5  # distinct images, distinct vectors

    texts = ["a red circle", "a photo of a dog"]
    treply = await stub.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=texts))
    tgot = vectors.decode_rows(list(treply.vectors), info.dimension)
    texpected, _ = local.embed_texts(texts)
    assert np.abs(tgot - texpected).max() < 1e-5
    np.testing.assert_allclose(np.linalg.norm(tgot, axis=1), 1.0, atol=1e-5)


async def test_concurrent_single_image_requests_are_batched(
    stub: embedder_pb2_grpc.EmbedderStub, server: EmbedderServer
) -> None:
    images = [encode_image(pattern(100 + i)) for i in range(32)]
    expected = np.stack(server.runtime.model.embed_images(images).vectors)  # type: ignore[arg-type]
    before = await stub.Info(embedder_pb2.InfoRequest())
    replies = await asyncio.gather(
        *(stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=[img])) for img in images)
    )
    after = await stub.Info(embedder_pb2.InfoRequest())
    for i, reply in enumerate(replies):
        got = vectors.decode(reply.vectors[0], before.dimension)
        assert np.abs(got - expected[i]).max() < 1e-5, f"request {i} got another image's vector"
    served = after.items_served - before.items_served
    batches = after.model_batches - before.model_batches
    assert served == 32
    assert batches < 32, f"32 requests took {batches} model batches: no coalescing"


async def test_long_text_is_truncated_and_flagged(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    reply = await stub.EmbedTexts(
        embedder_pb2.EmbedTextsRequest(texts=["short", "many words " * 50, "x" * 100_000])
    )
    assert list(reply.truncated) == [False, True, True]
    assert all(len(v) == reply.dimension * 4 for v in reply.vectors)


async def test_error_statuses(stub: embedder_pb2_grpc.EmbedderStub) -> None:
    good = encode_image(pattern(1))
    req = embedder_pb2.EmbedImagesRequest

    await check_image_batch_errors(lambda images: stub.EmbedImages(req(images=images)))
    code, msg = await rpc_error(stub.EmbedImages(req(images=[decompression_bomb_png()])))
    assert code == INVALID and "image[0]: too large" in msg
    code, msg = await rpc_error(stub.EmbedImages(req(images=[b""])))
    assert code == INVALID and "image[0]: empty file" in msg
    code, msg = await rpc_error(stub.EmbedImages(req(images=[good] * 513)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit is 512" in msg
    code, _ = await rpc_error(stub.EmbedImages(req(images=[b"\xff" * (3 * 1024 * 1024)])))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED  # over max_request_bytes (2 MiB here)
    code, msg = await rpc_error(stub.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=["ok", "  "])))
    assert code == INVALID and "text[1]" in msg
    code, _ = await rpc_error(stub.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=[])))
    assert code == INVALID

    # The server is still healthy and answers correctly after all that.
    reply = await stub.EmbedImages(req(images=[good]))
    assert len(reply.vectors[0]) == reply.dimension * 4


async def test_partial_results_keep_the_good_images(
    stub: embedder_pb2_grpc.EmbedderStub, server: EmbedderServer
) -> None:
    good = [encode_image(pattern(i)) for i in (7, 8)]
    reply = await stub.EmbedImages(
        embedder_pb2.EmbedImagesRequest(images=[good[0], b"junk", good[1]], partial_results=True)
    )
    assert [e.index for e in reply.errors] == [1]
    assert reply.vectors[1] == b""
    expected = server.runtime.model.embed_images(good).vectors
    assert np.abs(vectors.decode(reply.vectors[2], reply.dimension) - expected[1]).max() < 1e-5


async def test_bad_image_does_not_spoil_concurrent_requests(
    stub: embedder_pb2_grpc.EmbedderStub,
) -> None:
    good = encode_image(pattern(3))
    calls = [
        stub.EmbedImages(embedder_pb2.EmbedImagesRequest(images=[good if i % 2 else b"bad"]))
        for i in range(16)
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    for i, r in enumerate(results):
        if i % 2:
            assert isinstance(r, embedder_pb2.EmbedImagesResponse)
        else:
            assert isinstance(r, grpc.aio.AioRpcError) and r.code() == INVALID


class _GatedEmbedder(GatedLoad, ClipEmbedder):
    """Loads only when the test says so, to observe NOT_SERVING."""


async def test_health_goes_not_serving_to_serving(tiny_clip: tuple[Path, Path]) -> None:
    settings = settings_for(tiny_clip, metrics_port=0)
    gated = _GatedEmbedder(settings.model, settings.pretrained)
    srv = await start_embedder_server(settings, model=gated)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            await check_health(channel, "imgsearch.v1.Embedder", serving=False)
            code, _ = await rpc_error(
                embedder_pb2_grpc.EmbedderStub(channel).EmbedTexts(
                    embedder_pb2.EmbedTextsRequest(texts=["hi"])
                )
            )
            assert code == grpc.StatusCode.UNAVAILABLE
            _GatedEmbedder.gate.set()
            await srv.wait_ready()
            await check_health(channel, "imgsearch.v1.Embedder", serving=True)
            await embedder_pb2_grpc.EmbedderStub(channel).EmbedTexts(
                embedder_pb2.EmbedTextsRequest(texts=["hi"])
            )
        # The Prometheus exporter shows what an operator scales by.
        assert srv.metrics_port
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics").read()
        )
        text = body.decode()
        assert 'imgsearch_embedder_requests_total{code="OK",method="EmbedTexts"}' in text
        assert "imgsearch_embedder_batch_size_bucket" in text
        assert "imgsearch_embedder_queue_depth" in text
    finally:
        await srv.stop(grace_s=1)


def test_sigterm_drains_and_exits_cleanly(tiny_clip: tuple[Path, Path], tmp_path: Path) -> None:
    """`python -m embedder_service` serves, then exits 0 on SIGTERM."""
    config, checkpoint = tiny_clip
    env = dict(os.environ, IMGSEARCH_EMBEDDER_MODEL=str(config))
    rest = serve_then_sigterm(
        ["-m", "embedder_service", "--pretrained", str(checkpoint),
         "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1"],
        env, "embedder SERVING",
    )  # fmt: skip
    assert "shutting down" in rest and "stopped" in rest


async def test_concurrent_texts_with_a_fast_tokenizer() -> None:
    """offline-tiny's tokenizer is a Hugging Face fast tokenizer, which breaks
    when two threads use it at once; the embedder must serialise it."""
    srv = await start_embedder_server(
        EmbedderSettings(model="offline-tiny", pretrained="", host="127.0.0.1", port=0, metrics_port=-1)
    )
    await srv.wait_ready()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            texts = [f"a {c} {s}" for c in ("red", "blue", "green", "yellow") for s in ("circle", "square", "star", "triangle")]
            replies = await asyncio.gather(
                *(stub.EmbedTexts(embedder_pb2.EmbedTextsRequest(texts=[t] * 3)) for t in texts * 4)
            )
        assert all(len(r.vectors) == 3 for r in replies)
    finally:
        await srv.stop(1)


async def test_server_reflection_lists_the_services(server: EmbedderServer) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    def list_services() -> list[str]:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            return list(ProtoReflectionDescriptorDatabase(channel).get_services())

    services = await asyncio.to_thread(list_services)
    assert "imgsearch.v1.Embedder" in services and "grpc.health.v1.Health" in services
