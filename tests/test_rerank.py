"""Search re-ranking in the gateway: the committed offline-tiny CLIP and matcher,
an embedded gateway ingesting scene files by path, thumbnails in the thumbnail
store; and the whole chain over gRPC (gateway -> captioner Score RPC)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest

from imgsearch.errors import DeadlineExceeded, FailedPrecondition, InvalidInput, Unavailable
from offline_training.rerank_eval import relational_scenes
from search_gateway import domain as d
from search_gateway.core import GatewayCore, SearchQuery
from search_gateway.ingest import IngestItem
from search_gateway.model_clients.base import ScoreBatch, Scorer
from search_gateway.model_clients.remote import RemoteScorer
from search_gateway.rerank import Reranker, RerankOptions
from search_gateway.settings import GatewaySettings
from search_gateway.thumbnails import ThumbnailStore, make_thumbnail

TENANTS = ("t1", "t2")
CAMERAS = ("cam-a", "cam-b")
QUERY = "a purple star left of a red square"


def settings_for(data_dir: Path, **extra: object) -> GatewaySettings:
    values: dict[str, object] = dict(
        data_dir=str(data_dir),
        collection="rerank",
        model="offline-tiny",
        pretrained="",
        captions=False,
        rerank={"model": "offline-tiny", "vector_weight": 0.0},  # order by P(match) alone
        device="cpu",
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
    )
    values.update(extra)
    return GatewaySettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("scenes")
    labelled, _ = relational_scenes(4)
    paths = []
    for i, ls in enumerate(labelled):
        path = folder / f"{i:03d}.jpg"
        ls.scene.image.save(path, quality=92)
        paths.append(path)
    return paths


async def _ingest(core: GatewayCore, paths: Sequence[Path], thumbs: bool = True) -> list[str]:
    """Ingests by path, alternating tenants and cameras; stores thumbnails."""
    ids: list[str] = []
    store = core.reranker.thumbnails if core.reranker else None
    for t, tenant in enumerate(TENANTS):
        mine = [(i, p) for i, p in enumerate(paths) if i % 2 == t]

        async def items(mine: list[tuple[int, Path]] = mine) -> AsyncIterator[IngestItem]:
            for i, p in mine:
                meta = {"camera_id": CAMERAS[(i // 2) % 2]}
                yield IngestItem(path=str(p), uri=str(p), metadata=meta)

        outcomes = [o async for o in core.ingest(items(), tenant=tenant)]
        assert all(o.id for o in outcomes), outcomes
        for o, (_, p) in zip(outcomes, mine, strict=True):
            if thumbs and store is not None and store.get(o.id) is None:
                from PIL import Image

                with Image.open(p) as img:
                    store.put(o.id, make_thumbnail(img))
            ids.append(o.id)
    return ids


@pytest.fixture
async def core(tmp_path: Path, scene_files: list[Path]) -> AsyncIterator[GatewayCore]:
    from search_gateway.assemble import build_core

    core = await build_core(settings_for(tmp_path), read_roots=[scene_files[0].parent])
    await _ingest(core, scene_files)
    try:
        yield core
    finally:
        await core.close()


async def test_rerank_orders_by_match_and_keeps_both_scores(core: GatewayCore) -> None:
    q = SearchQuery(text=QUERY, k=10)
    plain = {h.id: h.score for h in await core.search(SearchQuery(text=QUERY, k=30), tenant="t1")}
    res = await core.search_reranked(q, RerankOptions(30), tenant="t1")
    assert res.reranked and res.model == "offline-tiny" and res.note == ""
    assert len(res.hits) == 10
    scores = [h.rerank_score for h in res.hits]
    assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    for h in res.hits:  # the vector score is still the vector score
        assert h.score == pytest.approx(plain[h.id])
    # Paging walks the same re-ranked list.
    page2 = await core.search_reranked(
        SearchQuery(text=QUERY, k=5, offset=5), RerankOptions(30), tenant="t1"
    )
    assert [h.id for h in page2.hits] == [h.id for h in res.hits[5:10]]


async def test_tenancy_and_filters_apply_before_rerank(core: GatewayCore) -> None:
    flt = d.Filter(must=(d.Match("camera_id", "cam-b"),))
    res = await core.search_reranked(
        SearchQuery(text=QUERY, k=10, filter=flt), RerankOptions(200), tenant="t2"
    )
    assert res.reranked and res.hits
    for h in res.hits:
        assert h.payload["camera_id"] == "cam-b"
        assert h.payload[d.TENANT] == "t2"


async def test_thumbnails_are_scored_when_files_are_gone(
    tmp_path: Path, scene_files: list[Path]
) -> None:
    """Re-ranking reads thumbnails, so moved originals do not matter; with neither
    a thumbnail nor a readable file there is nothing to score."""
    from search_gateway.assemble import build_core

    folder = tmp_path / "moved"
    folder.mkdir()
    copies = []
    for p in scene_files[:12]:
        copies.append(folder / p.name)
        copies[-1].write_bytes(p.read_bytes())
    core = await build_core(settings_for(tmp_path / "data"), read_roots=[folder])
    try:
        ids = await _ingest(core, copies)
        for p in copies:
            p.unlink()
        q = SearchQuery(text=QUERY, k=4)
        res = await core.search_reranked(q, RerankOptions(12), tenant="t1")
        assert res.reranked and res.note == "" and all(h.rerank_score is not None for h in res.hits)
        assert core.reranker is not None and core.reranker.thumbnails is not None
        core.reranker.thumbnails.delete(ids)
        res = await core.search_reranked(q, RerankOptions(12), tenant="t1")
        assert not res.reranked and "no candidate has a stored thumbnail" in res.note
        assert all(h.rerank_score is None for h in res.hits)
        with pytest.raises(FailedPrecondition):
            await core.search_reranked(q, RerankOptions(12, strict=True), tenant="t1")
    finally:
        await core.close()


async def test_missing_thumbnail_falls_back_to_original_file(
    tmp_path: Path, scene_files: list[Path]
) -> None:
    from search_gateway.assemble import build_core

    core = await build_core(settings_for(tmp_path), read_roots=[scene_files[0].parent])
    try:
        ids = await _ingest(core, scene_files[:8], thumbs=False)
        assert core.reranker is not None and core.reranker.thumbnails is not None
        core.reranker.thumbnails.delete(ids)  # as if ingested before thumbnails existed
        res = await core.search_reranked(SearchQuery(text=QUERY, k=3), RerankOptions(8), None)
        assert res.reranked and "4 scored from original files" not in res.note
        assert "8 scored from original files (no thumbnail)" in res.note
    finally:
        await core.close()


async def test_scorer_absent_down_or_slow_gives_vector_order(core: GatewayCore) -> None:
    assert core.reranker is not None
    q = SearchQuery(text=QUERY, k=5)
    vector_order = [h.id for h in await core.search(q, tenant="t1")]
    thumbs = core.reranker.thumbnails
    real = core.reranker.scorer
    assert real is not None

    class SlowScorer:
        """The real scorer behind a delay (a scorer under load)."""

        async def score(
            self, text: str, images: Sequence[bytes], timeout: float | None = None
        ) -> ScoreBatch:
            await asyncio.sleep(8.0)
            return await real.score(text, images, timeout)

        async def close(self) -> None:
            return None

    down = RemoteScorer("127.0.0.1:1", timeout_s=2.0)
    cases: list[tuple[Scorer | None, type[Exception], str, float | None]] = [
        (None, FailedPrecondition, "no re-rank scorer configured", None),
        (down, Unavailable, "unavailable", None),
        (SlowScorer(), DeadlineExceeded, "did not answer", 2.0),
    ]
    try:
        for scorer, strict_error, note, timeout in cases:
            core.reranker = Reranker(scorer, thumbs, max_seconds=5.0)
            started = time.monotonic()
            res = await core.search_reranked(q, RerankOptions(20), timeout, tenant="t1")
            assert time.monotonic() - started < 4.0  # never waits for the slow scorer
            assert not res.reranked and note in res.note, res.note
            assert [h.id for h in res.hits] == vector_order
            assert all(h.rerank_score is None for h in res.hits)
            with pytest.raises(strict_error):
                await core.search_reranked(q, RerankOptions(20, strict=True), timeout, "t1")
    finally:
        await down.close()


async def test_rerank_request_limits(core: GatewayCore) -> None:
    bad = [
        (SearchQuery(text=QUERY, k=10, offset=45), RerankOptions(50), "offset + k"),
        (SearchQuery(text=QUERY, k=10), RerankOptions(201), "1..200"),
        (
            SearchQuery(point_id="00000000-0000-0000-0000-000000000000", k=3),
            RerankOptions(),
            "text",
        ),
    ]
    for q, opts, needle in bad:
        with pytest.raises(InvalidInput) as err:
            await core.search_reranked(q, opts, tenant="t1")
        assert needle in str(err.value)


async def test_rerank_over_grpc(tmp_path: Path, scene_files: list[Path]) -> None:
    """Gateway server -> captioner service Score RPC; the response carries both
    scores and the re-rank flag; a captioner without a matcher = not re-ranked."""
    from caption_service.server import start_caption_server
    from caption_service.settings import CaptionerSettings
    from search_gateway.remote_api import RemoteError, RemoteGateway
    from search_gateway.server import start_gateway_server
    from tests.tiny_models import build_tiny_blip

    blip = build_tiny_blip(tmp_path / "blip")
    loopback = {"host": "127.0.0.1", "port": 0, "metrics_port": -1}
    # One after the other: transformers' from_pretrained is not safe to run in
    # two threads at once (its meta-device init is process-global).
    with_itm = await start_caption_server(
        CaptionerSettings(model=str(blip), score_model="offline-tiny", **loopback)  # type: ignore[arg-type]
    )
    await with_itm.wait_ready()
    without = await start_caption_server(CaptionerSettings(model=str(blip), **loopback))  # type: ignore[arg-type]
    await without.wait_ready()
    roots = str(scene_files[0].parent)
    servers = []
    try:
        for cap, name in ((with_itm, "a"), (without, "b")):
            settings = settings_for(
                tmp_path / name,
                captioner_address=f"127.0.0.1:{cap.port}",
                rerank={"model": ""},
                read_roots=roots,
            )
            servers.append(await start_gateway_server(settings))
        for gw, reranked in zip(servers, (True, False), strict=True):
            client = RemoteGateway(f"127.0.0.1:{gw.port}")
            try:

                async def items() -> AsyncIterator[IngestItem]:
                    for p in scene_files[:12]:
                        yield IngestItem(path=str(p), uri=str(p))

                outcomes = [o async for o in client.ingest(items())]
                assert len(outcomes) == 12 and all(o.id for o in outcomes)
                res = await client.search_reranked(SearchQuery(text=QUERY, k=5), RerankOptions(12))
                assert res.reranked is reranked, res.note
                if reranked:
                    assert res.model == "offline-tiny"
                    assert all(h.rerank_score is not None for h in res.hits)
                else:
                    assert "no image-text matching model" in res.note
                    with pytest.raises(RemoteError) as err:
                        await client.search_reranked(
                            SearchQuery(text=QUERY, k=5), RerankOptions(12, strict=True)
                        )
                    assert err.value.status_name == grpc.StatusCode.FAILED_PRECONDITION.name
                plain = await client.search(SearchQuery(text=QUERY, k=5))
                assert all(h.rerank_score is None for h in plain)
            finally:
                await client.close()
    finally:
        for gw in servers:
            await gw.stop(1)
        await with_itm.stop(1)
        await without.stop(1)


def test_gallery_shows_both_scores() -> None:
    from search_gateway.core import Hit
    from search_gateway.gallery import render_gallery

    page = render_gallery(
        "q", [Hit("a", 0.31, "/nowhere/a.jpg", "", {}, 0.97), Hit("b", 0.30, "/b.jpg", "", {})]
    )
    assert "vector 0.310 &middot; match 0.970" in page
    assert 'data-rerank-score="0.9700"' in page
    assert page.count("data-rerank-score") == 1  # hit b was not scored


@pytest.mark.slow
async def test_cli_rerank_prints_both_scores(tmp_path: Path, scene_files: list[Path]) -> None:
    """`imgsearch query ... --rerank N` as a user runs it (embedded, in-process matcher)."""
    import json
    import os

    from tests.cli_process import run_imgsearch

    folder = tmp_path / "photos"
    folder.mkdir()
    for p in scene_files[:10]:
        (folder / p.name).write_bytes(p.read_bytes())
    env = dict(
        os.environ,
        IMGSEARCH_MODEL="offline-tiny",
        IMGSEARCH_PRETRAINED="",
        IMGSEARCH_DATA_DIR=str(tmp_path / "data"),
        IMGSEARCH_DEVICE="cpu",
    )

    async def imgsearch(*args: str) -> tuple[int, str, str]:
        return await run_imgsearch(env, *args, timeout_s=240)

    code, out, err = await imgsearch("index", str(folder))
    assert code == 0, err
    # Until camera's ingest stage stores thumbnails (TEAM.md), store the ones
    # `index` did not; re-ranking reads nothing else (the query has no read roots).
    code, out, err = await imgsearch("query", QUERY, "-k", "10", "--json")
    assert code == 0, err
    thumbs = ThumbnailStore.under(tmp_path / "data", "images")
    for hit in json.loads(out)["hits"]:
        if thumbs.get(hit["id"]) is None:
            from PIL import Image

            with Image.open(hit["path"]) as img:
                thumbs.put(hit["id"], make_thumbnail(img))
    html = tmp_path / "g.html"
    code, out, err = await imgsearch(
        "query", QUERY, "-k", "3", "--rerank", "10", "--rerank-model", "offline-tiny",
        "--json", "--html", str(html),
    )  # fmt: skip
    assert code == 0, err
    assert "re-ranked (10 candidates, offline-tiny)" in err
    hits = json.loads(out)["hits"]
    assert len(hits) == 3 and all("rerank_score" in h and "score" in h for h in hits)
    assert "&middot; match" in html.read_text(encoding="utf-8")
    # Without a matcher, strict: the command fails and says why (non-strict
    # fallbacks are covered in-process above).
    code, out, err = await imgsearch("query", QUERY, "-k", "3", "--rerank", "--rerank-strict")
    assert code != 0 and "no re-rank scorer configured" in err


def test_fused_order_breaks_near_ties_with_the_vector_score() -> None:
    from search_gateway.core import Hit
    from search_gateway.rerank import fused_order

    hits = [
        Hit("a", 0.9, "", "", {}, 0.50),
        Hit("b", 0.8, "", "", {}),  # no image: after the scored ones
        Hit("c", 0.7, "", "", {}, 0.60),
        Hit("d", 0.6, "", "", {}, 0.60),
    ]
    assert fused_order(hits, 0.0) == [2, 3, 0, 1]  # by P(match); tie c/d in vector order
    assert fused_order(hits, 0.1) == [2, 0, 3, 1]  # c .6+.033, a .5+.1 = d .6+0: vector order
    assert fused_order(hits, 5.0) == [0, 2, 3, 1]  # vector order among the scored


def test_r_precision_sees_distractors_that_p_at_10_does_not() -> None:
    """Three true scenes ranked 4-6 behind three swapped distractors: P@10 (divided by
    min(10, relevant)) says 1.0, R-precision says 0.0 — the relational bars use both."""
    from offline_training.quality import precision_at_k
    from offline_training.rerank_eval import r_precision

    ranked = [False, False, False, True, True, True, False, False, False]
    assert precision_at_k(ranked, 3) == 1.0
    assert r_precision(ranked, 3) == 0.0
    assert r_precision([True, False, True, True], 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        r_precision([False], 0)
