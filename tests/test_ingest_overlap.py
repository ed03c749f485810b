"""Overlapped ingest (issue 15 item 4) gives the same results as batch after
batch: exact copies in adjacent batches are merged as paths, not stored twice,
and near-duplicate marking sees the previous batch. The embedder is slowed so
that batch N+1 is surely read and looked up while batch N is being embedded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from search_gateway.core import GatewayCore
from search_gateway.ingest import IngestItem, IngestStatus
from tests.conftest import encode_image, pattern
from tests.gateway_harness import Models, gateway_settings, ingest_all


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from tests.tiny_models import build_tiny_blip, build_tiny_clip

    root = tmp_path_factory.mktemp("overlap_models")
    config, checkpoint = build_tiny_clip(root / "clip", name="tiny-clip-overlap")
    return Models(config, checkpoint, build_tiny_blip(root / "blip"))


class _SlowEmbedder:
    """The real embedder, held back so that batches overlap; counts images."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner, self.delay_s, self.images = inner, delay_s, 0

    async def identity(self) -> Any:
        return await self.inner.identity()

    async def embed_images(self, images: Any, timeout: float | None = None) -> Any:
        self.images += len(images)
        await asyncio.sleep(self.delay_s)
        return await self.inner.embed_images(images, timeout)

    async def embed_texts(self, texts: Any, timeout: float | None = None) -> Any:
        return await self.inner.embed_texts(texts, timeout)

    async def close(self) -> None:
        await self.inner.close()


@contextlib.asynccontextmanager
async def slow_core(
    models: Models, data_dir: Path, batch_size: int, overlap: bool
) -> AsyncIterator[tuple[GatewayCore, _SlowEmbedder]]:
    from search_gateway.assemble import build_core

    core = await build_core(
        gateway_settings(models, data_dir, ingest_batch_size=batch_size), with_captioner=False
    )
    slow = _SlowEmbedder(core.embedder, 0.3)
    core.ingest_pipeline.embedder = slow
    core.ingest_pipeline.overlap = overlap
    try:
        yield core, slow
    finally:
        await core.close()


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "sequential"])
async def test_copies_in_adjacent_batches_are_merged(
    models: Models, tmp_path: Path, overlap: bool
) -> None:
    a, b, c, e = (encode_image(pattern(i)) for i in (1, 2, 3, 4))
    items = [
        IngestItem(data=a, uri="a1.jpg"),  # batch 0
        IngestItem(data=b, uri="b.jpg"),
        IngestItem(data=a, uri="a2.jpg"),  # batch 1: a copy of batch 0's new image
        IngestItem(data=c, uri="c.jpg"),
        IngestItem(data=a, uri="a1.jpg"),  # batch 2: the same uri again
        IngestItem(data=e, uri="e.jpg"),
    ]
    async with slow_core(models, tmp_path / "data", 2, overlap) as (core, slow):
        out = await ingest_all(core, items)
        assert [o.index for o in out] == list(range(6))
        assert [o.status for o in out] == [
            IngestStatus.ADDED,
            IngestStatus.ADDED,
            IngestStatus.DUPLICATE,
            IngestStatus.ADDED,
            IngestStatus.ALREADY_PRESENT,
            IngestStatus.ADDED,
        ]
        assert out[2].duplicate_of == out[0].id == out[2].id == out[4].id
        assert slow.images == 4  # the copies cost no model work
        [point], _ = await core.get([out[0].id])
        assert point.payload["paths"] == ["a1.jpg", "a2.jpg"]  # merged, not overwritten
        assert (await core.stats()).count == 4

        # A copy of a stored image in the next stream: recorded, still no model work.
        [again] = await ingest_all(core, [IngestItem(data=b, uri="b-copy.jpg")])
        assert again.status is IngestStatus.DUPLICATE and slow.images == 4


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "sequential"])
async def test_near_duplicates_see_the_previous_batch(
    models: Models, tmp_path: Path, overlap: bool
) -> None:
    base = pattern(42, (128, 96))
    orig, near = encode_image(base, quality=95), encode_image(base, quality=70)
    other = encode_image(pattern(7))
    items = [
        IngestItem(data=orig, uri="a.jpg", near_duplicate_threshold=0.98),  # batch 0
        IngestItem(data=near, uri="b.jpg", near_duplicate_threshold=0.98),  # batch 1
        IngestItem(data=other, uri="c.jpg", near_duplicate_threshold=0.98),  # batch 2
    ]
    async with slow_core(models, tmp_path / "data", 1, overlap) as (core, slow):
        out = await ingest_all(core, items)
    assert [o.status for o in out] == [
        IngestStatus.ADDED,
        IngestStatus.DUPLICATE,
        IngestStatus.ADDED,
    ]
    assert out[1].duplicate_of == out[0].id
    assert slow.images == 3


async def test_a_failed_batch_fails_its_copies_in_the_next(models: Models, tmp_path: Path) -> None:
    """A copy waiting on an image whose write failed shares that failure."""
    a = encode_image(pattern(5))
    async with slow_core(models, tmp_path / "data", 1, True) as (core, _slow):
        from imgsearch.errors import Unavailable

        async def refusing(points: Any) -> None:  # the store refuses writes for a while
            raise Unavailable("store down for this test")

        core.store.upsert = refusing  # type: ignore[method-assign]
        out = await ingest_all(
            core, [IngestItem(data=a, uri="x.jpg"), IngestItem(data=a, uri="y.jpg")]
        )
        assert [(o.status, o.error_code) for o in out] == [
            (IngestStatus.FAILED, "UNAVAILABLE"),
            (IngestStatus.FAILED, "UNAVAILABLE"),
        ]
        del core.store.upsert  # the real one again
        out = await ingest_all(
            core, [IngestItem(data=a, uri="x.jpg"), IngestItem(data=a, uri="y.jpg")]
        )
        assert [o.status for o in out] == [IngestStatus.ADDED, IngestStatus.DUPLICATE]


@pytest.mark.parametrize("error", [RuntimeError("client went away"), asyncio.CancelledError()])
async def test_a_broken_stream_ends_the_run_never_hangs(
    models: Models, tmp_path: Path, error: BaseException
) -> None:
    """The request stream failing mid-way (after whole batches were sent)
    surfaces to the caller with the overlapped steps torn down."""
    images = [encode_image(pattern(60 + i)) for i in range(3)]

    async def broken() -> AsyncIterator[IngestItem]:
        for i, data in enumerate(images):
            yield IngestItem(data=data, uri=f"{i}.jpg")
            await asyncio.sleep(0.1)  # one image per batch
        raise error

    async with slow_core(models, tmp_path / "data", 1, True) as (core, _slow):
        seen = []

        async def consume() -> None:
            async for outcome in core.ingest(broken()):
                seen.append(outcome)

        with pytest.raises(type(error)):
            await asyncio.wait_for(consume(), timeout=60)
        assert all(o.status is IngestStatus.ADDED for o in seen)
        assert (await core.stats()).count >= len(seen)
