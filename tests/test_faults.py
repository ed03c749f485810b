"""Failing neighbours: model services and Qdrant going away, deadlines, and a
gateway killed mid-stream. Real servers on loopback, stopped and restarted
while work is in flight. Nothing acknowledged may be missing; re-runs converge."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from caption_service.server import start_caption_server
from caption_service.settings import CaptionerSettings
from embedder_service.model import ClipEmbedder
from embedder_service.server import start_embedder_server
from embedder_service.settings import EmbedderSettings
from imgsearch.errors import ImgsearchError
from imgsearch.v1 import gateway_pb2, gateway_pb2_grpc
from search_gateway.core import SearchQuery
from search_gateway.ingest import IngestItem, IngestStatus
from tests.conftest import encode_image, pattern
from tests.gateway_harness import Models, ingest_all, suite


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from tests.tiny_models import build_tiny_blip, build_tiny_clip

    root = tmp_path_factory.mktemp("fault_models")
    config, checkpoint = build_tiny_clip(root / "clip", name="tiny-clip-faults")
    return Models(config, checkpoint, build_tiny_blip(root / "blip"))


def images(start: int, n: int) -> list[bytes]:
    return [encode_image(pattern(start + i)) for i in range(n)]


async def until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def test_embedder_down_mid_stream_then_rerun(models: Models, tmp_path: Path) -> None:
    data = images(0, 24)
    async with suite(models, tmp_path / "data") as s:
        port = s.embedder.port

        async def stream() -> AsyncIterator[IngestItem]:
            for i, blob in enumerate(data):
                if i == 12:  # the embedder dies half-way through the stream
                    await s.embedder.stop(0)
                yield IngestItem(data=blob, uri=f"cam/{i}.jpg")

        started = time.monotonic()
        outcomes = [o async for o in s.gateway.ingest(stream())]
        assert time.monotonic() - started < 30, "retries must be bounded"
        assert len(outcomes) == 24
        added = [o for o in outcomes if o.status is IngestStatus.ADDED]
        failed = [o for o in outcomes if o.status is IngestStatus.FAILED]
        assert len(added) + len(failed) == 24 and failed
        assert {o.error_code for o in failed} == {"UNAVAILABLE"}
        # Acknowledged means stored; failed means not stored.
        found, missing = await s.gateway.get([o.id for o in outcomes])
        assert {h.id for h in found} == {o.id for o in added}
        assert set(missing) == {o.id for o in failed}

        # The embedder comes back on the same address; a re-run adds exactly the rest.
        s.embedder = await start_embedder_server(
            EmbedderSettings(model=str(models.clip_config), pretrained=str(models.clip_checkpoint),
                             host="127.0.0.1", port=port, metrics_port=-1)
        )  # fmt: skip
        await s.embedder.wait_ready()

        async def embedder_back() -> bool:
            try:
                await s.gateway.search(SearchQuery(text="x", k=1))
                return True
            except ImgsearchError:
                return False

        await until(embedder_back)
        rerun = await ingest_all(
            s.gateway, [IngestItem(data=b, uri=f"cam/{i}.jpg") for i, b in enumerate(data)]
        )
        by_status = {st: {o.id for o in rerun if o.status is st} for st in IngestStatus}
        assert by_status[IngestStatus.ADDED] == {o.id for o in failed}
        assert by_status[IngestStatus.ALREADY_PRESENT] == {o.id for o in added}
        assert (await s.gateway.stats()).count == 24


async def test_captioner_down_images_pending_then_filled(models: Models, tmp_path: Path) -> None:
    async with suite(
        models, tmp_path / "data", caption_mode="inline", caption_backfill_interval_s=0.3
    ) as s:
        port = s.captioner.port
        await s.captioner.stop(0)
        out = await ingest_all(
            s.gateway,
            [
                IngestItem(data=b, uri=f"p{i}", with_captions=True)
                for i, b in enumerate(images(50, 5))
            ],
        )
        # Indexed and searchable by vector; captions pending, not failed.
        assert [o.status for o in out] == [IngestStatus.ADDED] * 5
        assert all(o.caption_pending for o in out)
        stats = await s.gateway.stats()
        assert (stats.count, stats.caption_pending_count, stats.captioned_count) == (5, 5, 0)
        hits = await s.gateway.search(SearchQuery(image=images(50, 1)[0], k=1))
        assert hits[0].id == out[0].id

        # The captioner returns; the gateway's backfill fills the captions in.
        s.captioner = await start_caption_server(
            CaptionerSettings(
                model=str(models.blip_dir), host="127.0.0.1", port=port, metrics_port=-1
            )
        )
        await s.captioner.wait_ready()

        async def all_captioned() -> bool:
            st = await s.gateway.stats()
            return st.caption_pending_count == 0 and st.captioned_count == 5

        await until(all_captioned, timeout=60)
        found, _ = await s.gateway.get([o.id for o in out])
        assert all(h.caption and not h.payload["caption_pending"] for h in found)


async def test_strict_captions_refuse_instead(models: Models, tmp_path: Path) -> None:
    async with suite(models, tmp_path / "data", captions_required=True) as s:
        await s.captioner.stop(0)
        out = await ingest_all(
            s.gateway, [IngestItem(data=images(60, 1)[0], uri="x", with_captions=True)]
        )
        assert out[0].status is IngestStatus.FAILED and out[0].error_code == "UNAVAILABLE"
        assert (await s.gateway.stats()).count == 0


async def test_deferred_captions_fill_in_behind(models: Models, tmp_path: Path) -> None:
    async with suite(
        models, tmp_path / "data", caption_mode="deferred", caption_backfill_interval_s=0.3
    ) as s:
        out = await ingest_all(
            s.gateway,
            [
                IngestItem(data=b, uri=f"d{i}", with_captions=True)
                for i, b in enumerate(images(70, 4))
            ],
        )
        assert all(o.status is IngestStatus.ADDED and o.caption_pending for o in out)

        async def done() -> bool:
            return (await s.gateway.stats()).captioned_count == 4

        await until(done, timeout=60)
        spool = tmp_path / "data" / "caption_spool" / "images"
        assert list(spool.iterdir()) == []  # spooled copies are removed once captioned


async def test_qdrant_unreachable_is_unavailable(models: Models, tmp_path: Path) -> None:
    # A Qdrant server URL where nothing listens.
    async with suite(models, tmp_path / "data", qdrant_url="http://127.0.0.1:9") as s:
        with pytest.raises(ImgsearchError) as err:
            await s.gateway.search(SearchQuery(text="x", k=3))
        assert err.value.status_name == "UNAVAILABLE"
        with pytest.raises(ImgsearchError) as err:
            await ingest_all(s.gateway, [IngestItem(data=images(80, 1)[0], uri="q")])
        assert err.value.status_name == "UNAVAILABLE"  # nothing acknowledged


class _SlowTexts(ClipEmbedder):
    """Text embedding that takes 20 s: only a propagated deadline ends it early."""

    def encode_text_batch(self, tokens):  # type: ignore[no-untyped-def]
        time.sleep(3)
        return super().encode_text_batch(tokens)


async def test_deadline_propagates_to_model_services(models: Models, tmp_path: Path) -> None:
    from search_gateway.remote_api import RemoteGateway

    async with suite(models, tmp_path / "data") as s:
        # Swap the running embedder's model for a slow one.
        slow = _SlowTexts(str(models.clip_config), str(models.clip_checkpoint))
        slow.load()
        s.embedder.runtime.model = slow
        s.embedder.runtime._texts._run_batch = lambda items, _k: list(slow.encode_text_batch(items))
        hurried = RemoteGateway(f"127.0.0.1:{s.server.port}", timeout_s=1.0)
        try:
            started = time.monotonic()
            with pytest.raises(ImgsearchError) as err:
                await hurried.search(SearchQuery(text="x", k=3))
            assert err.value.status_name == "DEADLINE_EXCEEDED"
            assert time.monotonic() - started < 2.5
        finally:
            await hurried.close()
        # The embedder saw the gateway give up (its call was cancelled at the deadline).
        await asyncio.sleep(0.5)
        samples = {
            sample.labels["code"]
            for metric in s.embedder.metrics.requests.collect()
            for sample in metric.samples
            if sample.labels.get("method") == "EmbedTexts"
        }
        assert samples & {"CANCELLED", "DEADLINE_EXCEEDED"}, samples


async def test_gateway_killed_mid_stream_converges(models: Models, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        IMGSEARCH_MODEL=str(models.clip_config),
        IMGSEARCH_PRETRAINED=str(models.clip_checkpoint),
        IMGSEARCH_DATA_DIR=str(tmp_path / "data"),
        IMGSEARCH_HOST="127.0.0.1",
        IMGSEARCH_PORT="0",
        IMGSEARCH_METRICS_PORT="-1",
    )

    async def start_gateway() -> tuple[asyncio.subprocess.Process, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "search_gateway", env=env, stderr=asyncio.subprocess.PIPE
        )
        assert proc.stderr is not None
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), 120)).decode()
            assert line, "gateway exited before listening"
            if "gateway listening on" in line:
                return proc, line.rsplit(" ", 1)[-1].strip()

    data = images(100, 40)
    requests = [gateway_pb2.IngestRequest(data=b, uri=f"k/{i}.jpg") for i, b in enumerate(data)]
    proc, address = await start_gateway()
    acked: list[str] = []
    async with grpc.aio.insecure_channel(address) as ch:
        call = gateway_pb2_grpc.SearchGatewayStub(ch).Ingest(iter(requests))
        with pytest.raises(grpc.aio.AioRpcError):
            async for result in call:
                acked.append(result.id)
                if len(acked) == 10:
                    proc.send_signal(signal.SIGKILL)  # no drain, no goodbye
    await proc.wait()
    assert 10 <= len(acked) < 40

    proc, address = await start_gateway()
    try:
        async with grpc.aio.insecure_channel(address) as ch:
            stub = gateway_pb2_grpc.SearchGatewayStub(ch)
            results = [r async for r in stub.Ingest(iter(requests))]
            statuses = {r.status for r in results}
            assert statuses <= {
                gateway_pb2.INGEST_STATUS_ADDED,
                gateway_pb2.INGEST_STATUS_ALREADY_PRESENT,
            }
            # Everything acknowledged before the kill survived it.
            already = {
                r.id for r in results if r.status == gateway_pb2.INGEST_STATUS_ALREADY_PRESENT
            }
            assert set(acked) <= already
            stats = await stub.Stats(gateway_pb2.StatsRequest())
            assert stats.count == 40  # exactly one point per distinct image
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()


async def test_round_robin_over_every_embedder_address(models: Models, tmp_path: Path) -> None:
    """The gateway spreads calls over all resolved embedder addresses (what a
    headless Service gives it), instead of pinning one HTTP/2 connection."""
    second = await start_embedder_server(
        EmbedderSettings(model=str(models.clip_config), pretrained=str(models.clip_checkpoint),
                         host="127.0.0.1", port=0, metrics_port=-1)
    )  # fmt: skip
    await second.wait_ready()
    try:
        first = await start_embedder_server(
            EmbedderSettings(model=str(models.clip_config), pretrained=str(models.clip_checkpoint),
                             host="127.0.0.1", port=0, metrics_port=-1)
        )  # fmt: skip
        await first.wait_ready()
        from search_gateway.model_clients.remote import RemoteEmbedder

        both = RemoteEmbedder(f"ipv4:127.0.0.1:{first.port},127.0.0.1:{second.port}")
        try:
            for i in range(12):
                await both.embed_texts([f"query {i}"])
        finally:
            await both.close()
            await first.stop(0)
        assert first.runtime.items_served > 0 and second.runtime.items_served > 0
        assert first.runtime.items_served + second.runtime.items_served == 12
    finally:
        await second.stop(0)
