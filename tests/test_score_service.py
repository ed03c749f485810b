"""The captioner's Score RPC (image-text matching) over real gRPC on loopback,
with the committed offline-tiny matcher and a tiny random captioner beside it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from caption_service.matching import BlipMatcher
from caption_service.server import CaptionServer, start_caption_server
from caption_service.settings import CaptionerSettings
from imgsearch.v1 import captioner_pb2, captioner_pb2_grpc
from offline_training import itm_texts, scenes
from tests.conftest import decompression_bomb_png, encode_image
from tests.model_service import caption_server, captioner_settings, captioner_stub

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_models import build_tiny_blip

    return build_tiny_blip(tmp_path_factory.mktemp("tiny_blip"))


@pytest.fixture(scope="module")
def matcher() -> BlipMatcher:
    m = BlipMatcher("offline-tiny", device="cpu")
    m.load()
    return m


def settings_for(tiny_blip: Path, **overrides: object) -> CaptionerSettings:
    values: dict[str, object] = dict(
        score_model="offline-tiny",
        max_score_images_per_request=8,
        max_score_text_chars=200,
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


def scene_jpegs(n: int, seed: int, n_objects: int | None = None) -> list[scenes.Scene]:
    return scenes.generate_dataset(n, seed, n_objects)


async def test_score_matches_in_process_and_prefers_true_texts(
    stub: captioner_pb2_grpc.CaptionerStub, matcher: BlipMatcher
) -> None:
    """Served scores equal the in-process model's; the true caption of a scene
    beats the same objects with colours swapped, for most two-object scenes."""
    wins, total = 0, 0
    for scene in scene_jpegs(12, 777, n_objects=2):
        a, b = scene.objects
        swapped = [
            scenes.SceneObject(a.shape, b.colour, a.size, a.position),
            scenes.SceneObject(b.shape, a.colour, b.size, b.position),
        ]
        if a.colour == b.colour:
            continue
        data = encode_image(scene.image)
        texts = [scene.caption, scenes.caption_for(swapped)]
        replies = [
            await stub.Score(captioner_pb2.ScoreRequest(text=t, images=[data])) for t in texts
        ]
        assert replies[0].model == "offline-tiny"
        served = [r.scores[0] for r in replies]
        local = [matcher.score_images(t, [data])[0][0] for t in texts]
        assert served == pytest.approx(local, abs=1e-4)
        assert all(0.0 <= s <= 1.0 for s in served)
        wins += served[0] > served[1]
        total += 1
    assert total >= 8 and wins >= 0.75 * total, (wins, total)


async def test_concurrent_requests_share_batches(
    stub: captioner_pb2_grpc.CaptionerStub, server: CaptionServer
) -> None:
    """Pairs of different requests (different texts) go through shared model batches."""
    rng = random.Random(5)
    images = [encode_image(s.image) for s in scene_jpegs(4, 31)]
    texts = [itm_texts.true_statement(scenes.random_objects(rng), rng).text() for _ in range(6)]
    scorer = server.runtime.scorer
    assert scorer is not None
    before = scorer.model_batches
    replies = await asyncio.gather(
        *(stub.Score(captioner_pb2.ScoreRequest(text=t, images=images)) for t in texts)
    )
    assert all(len(r.scores) == 4 for r in replies)
    batches = scorer.model_batches - before
    assert batches < len(texts), f"{len(texts)} requests ran in {batches} batches"
    info = await stub.Info(captioner_pb2.CaptionerInfoRequest())
    assert info.score_model == "offline-tiny"
    assert info.pairs_scored >= 24 and info.max_score_text_chars == 200


async def test_score_errors(stub: captioner_pb2_grpc.CaptionerStub) -> None:
    good = encode_image(scene_jpegs(1, 3)[0].image)
    cases: list[tuple[captioner_pb2.ScoreRequest, grpc.StatusCode, str]] = [
        (captioner_pb2.ScoreRequest(text="  ", images=[good]), INVALID, "empty"),
        (captioner_pb2.ScoreRequest(text="a red circle"), INVALID, "empty batch"),
        (captioner_pb2.ScoreRequest(text="x" * 201, images=[good]), INVALID, "limit is 200"),
        (
            captioner_pb2.ScoreRequest(text="a red circle", images=[good] * 9),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "limit is 8",
        ),
        (
            captioner_pb2.ScoreRequest(text="a red circle", images=[good, b"not an image"]),
            INVALID,
            "image[1]",
        ),
        (
            captioner_pb2.ScoreRequest(text="a red circle", images=[decompression_bomb_png()]),
            INVALID,
            "image[0]",
        ),
    ]
    for req, code, needle in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Score(req)
            pytest.fail(f"no error for the case {needle!r}")
        assert err.value.code() == code, (needle, err.value.details())
        assert needle in (err.value.details() or ""), err.value.details()


async def test_partial_results_keep_good_images(stub: captioner_pb2_grpc.CaptionerStub) -> None:
    good = encode_image(scene_jpegs(1, 4)[0].image)
    reply = await stub.Score(
        captioner_pb2.ScoreRequest(
            text="a red circle", images=[good, b"junk", good], partial_results=True
        )
    )
    assert [e.index for e in reply.errors] == [1]
    assert reply.scores[1] == 0.0
    assert reply.scores[0] == pytest.approx(reply.scores[2], abs=1e-6) and reply.scores[0] > 0


async def test_without_score_model_score_is_failed_precondition(tiny_blip: Path) -> None:
    """A captioner configured without a matcher keeps captioning; Score says why not."""
    srv = await start_caption_server(settings_for(tiny_blip, score_model=""))
    await srv.wait_ready()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            stub = captioner_pb2_grpc.CaptionerStub(channel)
            good = encode_image(scene_jpegs(1, 4)[0].image)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Score(captioner_pb2.ScoreRequest(text="a red circle", images=[good]))
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "no image-text matching model" in (err.value.details() or "")
            caption = await stub.Caption(
                captioner_pb2.CaptionRequest(
                    images=[good], options=captioner_pb2.CaptionOptions(max_new_tokens=3)
                )
            )
            assert len(caption.captions) == 1
            info = await stub.Info(captioner_pb2.CaptionerInfoRequest())
            assert info.score_model == "" and info.pairs_scored == 0
    finally:
        await srv.stop(grace_s=1)
