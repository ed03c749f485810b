"""The search gateway end to end with tiny local models: embedded mode and the
full service suite (embedder + captioner + gateway over real gRPC on
loopback), and the two compared."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from imgsearch.errors import FailedPrecondition, ImgsearchError, InvalidInput, NotFound
from search_gateway import domain as d
from search_gateway.core import SearchQuery
from search_gateway.gallery import write_gallery
from search_gateway.ingest import IngestItem, IngestStatus
from search_gateway.settings import GatewaySettings
from tests.conftest import encode_image, pattern
from tests.gateway_harness import (
    PARIS,
    Models,
    catalogue,
    embedded,
    ingest_all,
    point_id,
    suite,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from tests.tiny_models import build_tiny_blip, build_tiny_clip

    root = tmp_path_factory.mktemp("gateway_models")
    config, checkpoint = build_tiny_clip(root / "clip", name="tiny-clip-gateway")
    return Models(config, checkpoint, build_tiny_blip(root / "blip"))


def image_tree(root: Path) -> dict[str, bytes]:
    """A folder tree: 6 images in two levels, a broken file, a copy of one image."""
    files = {}
    for i in range(6):
        rel = f"{'sub/' if i % 2 else ''}img{i}.jpg"
        files[rel] = encode_image(pattern(i))
    files["sub/deeper/copy_of_img0.jpg"] = files["img0.jpg"]
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "broken.jpg").write_bytes(b"this is a text file named .jpg")
    return files


class _CountingEmbedder:
    """Wraps an Embedder to count image embeddings (model work)."""

    def __init__(self, inner):  # type: ignore[no-untyped-def]
        self.inner = inner
        self.images = 0

    async def identity(self):  # type: ignore[no-untyped-def]
        return await self.inner.identity()

    async def embed_images(self, images, timeout=None):  # type: ignore[no-untyped-def]
        self.images += len(images)
        return await self.inner.embed_images(images, timeout)

    async def embed_texts(self, texts, timeout=None):  # type: ignore[no-untyped-def]
        return await self.inner.embed_texts(texts, timeout)

    async def close(self) -> None:
        await self.inner.close()


async def test_index_tree_reindex_and_duplicates_embedded(models: Models, tmp_path: Path) -> None:
    from search_gateway.cli import find_images

    root = tmp_path / "photos"
    image_tree(root)
    paths = [str(p) for p in find_images(root)]
    assert len(paths) == 8 and any(p.endswith("broken.jpg") for p in paths)
    async with embedded(models, tmp_path / "data", read_roots=[root]) as core:
        counting = _CountingEmbedder(core.embedder)
        core.ingest_pipeline.embedder = counting
        items = [IngestItem(path=p, with_captions=True) for p in paths]
        first = await ingest_all(core, items)
        by_name = {Path(o.uri).name: o for o in first}
        assert [o.index for o in first] == list(range(8))
        assert by_name["broken.jpg"].status is IngestStatus.FAILED
        assert "not a recognised image" in by_name["broken.jpg"].reason
        assert by_name["broken.jpg"].error_code == "INVALID_ARGUMENT"
        copy = by_name["copy_of_img0.jpg"]
        assert copy.status is IngestStatus.DUPLICATE
        assert copy.duplicate_of == by_name["img0.jpg"].id
        assert sum(o.status is IngestStatus.ADDED for o in first) == 6
        assert counting.images == 6  # the copy cost no model work
        stats = await core.stats()
        assert stats.count == 6 and stats.captioned_count == 6
        hits, _ = await core.get([by_name["img0.jpg"].id])
        assert sorted(Path(p).name for p in hits[0].payload["paths"]) == [
            "copy_of_img0.jpg",
            "img0.jpg",
        ]
        assert hits[0].caption and hits[0].payload["caption_model"]

        # Re-indexing the same folder: no model work, nothing added.
        again = await ingest_all(core, items)
        assert counting.images == 6
        assert [o.status for o in again].count(IngestStatus.ALREADY_PRESENT) == 7
        assert (await core.stats()).count == 6

        # The same content at a new path is recorded on the existing point.
        shutil.copy(root / "img1.jpg" if (root / "img1.jpg").exists() else root / "sub/img1.jpg",
                    root / "moved.jpg")  # fmt: skip
        [moved] = await ingest_all(core, [IngestItem(path=str(root / "moved.jpg"))])
        assert moved.status is IngestStatus.DUPLICATE and counting.images == 6


async def test_paths_outside_roots_are_refused(models: Models, tmp_path: Path) -> None:
    root = tmp_path / "allowed"
    root.mkdir()
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(encode_image(pattern(1)))
    (root / "link.jpg").symlink_to(secret)
    async with embedded(models, tmp_path / "data", read_roots=[root]) as core:
        outcomes = await ingest_all(
            core,
            [
                IngestItem(path=str(secret)),
                IngestItem(path=str(root / ".." / "secret.jpg")),
                IngestItem(path=str(root / "link.jpg")),
                IngestItem(path=str(root / "missing.jpg")),
            ],
        )
    codes = [o.error_code for o in outcomes]
    assert codes == ["PERMISSION_DENIED"] * 3 + ["NOT_FOUND"]


def _expected(cat: list, predicate) -> set[str]:  # type: ignore[no-untyped-def]
    return {point_id(data) for data, meta in cat if predicate(meta)}


def _ts(meta: dict) -> datetime:  # type: ignore[type-arg]
    return datetime.fromisoformat(meta["timestamp"].replace("Z", "+00:00"))


FILTER_CASES = [
    ("keyword", d.Filter(must=(d.Match("site", "north"),)), lambda m: m["site"] == "north"),
    ("integer", d.Filter(must=(d.Match("camera_id", 2),)), lambda m: m["camera_id"] == 2),
    (
        "match-any",
        d.Filter(must=(d.MatchAny("site", ("north", "east")),)),
        lambda m: m["site"] in ("north", "east"),
    ),
    ("list contains", d.Filter(must=(d.Match("tags", "a"),)), lambda m: "a" in m["tags"]),
    (
        "numeric range",
        d.Filter(must=(d.Range("altitude", gte=30.0, lt=80.0),)),
        lambda m: 30 <= m["altitude"] < 80,
    ),
    (
        "datetime range",
        d.Filter(
            must=(
                d.DatetimeRange(
                    "timestamp",
                    gte=datetime(2024, 5, 3, tzinfo=timezone.utc),
                    lt=datetime(2024, 5, 7, tzinfo=timezone.utc),
                ),
            )
        ),
        lambda m: (
            datetime(2024, 5, 3, tzinfo=timezone.utc)
            <= _ts(m)
            < datetime(2024, 5, 7, tzinfo=timezone.utc)
        ),
    ),
    (
        "geo radius",
        d.Filter(must=(d.GeoRadius("location", PARIS["lat"], PARIS["lon"], 50_000),)),
        lambda m: m["location"] == PARIS,
    ),
    (
        "should + must_not",
        d.Filter(
            should=(d.Match("camera_id", 0), d.Match("camera_id", 1)),
            must_not=(d.Match("tags", "b"),),
        ),
        lambda m: m["camera_id"] in (0, 1) and "b" not in m["tags"],
    ),
]


async def _filter_results(api, cat) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    results = {}
    for name, flt, _ in FILTER_CASES:
        hits = await api.search(SearchQuery(text="a picture", k=50, filter=flt))
        results[name] = {h.id for h in hits}
    return results


async def test_filters_search_by_image_delete_embedded(models: Models, tmp_path: Path) -> None:
    cat = catalogue()
    async with embedded(models, tmp_path / "data") as core:
        items = [
            IngestItem(data=data, uri=f"mem://{i}", metadata=meta)
            for i, (data, meta) in enumerate(cat)
        ]
        assert {o.status for o in await ingest_all(core, items)} == {IngestStatus.ADDED}
        results = await _filter_results(core, cat)
        for name, _, predicate in FILTER_CASES:
            expected = _expected(cat, predicate)
            assert expected, name
            assert results[name] == expected, name

        # Search by an image returns that image first; "more like this" excludes it.
        data = cat[5][0]
        hits = await core.search(SearchQuery(image=data, k=3))
        assert hits[0].id == point_id(data) and hits[0].score == pytest.approx(1.0, abs=1e-4)
        more = await core.search(SearchQuery(point_id=point_id(data), k=3))
        assert point_id(data) not in {h.id for h in more} and len(more) == 3
        with pytest.raises(NotFound):
            await core.search(SearchQuery(point_id="00000000-0000-0000-0000-000000000000"))

        # Offset paginates the same ranking.
        page = await core.search(SearchQuery(text="x", k=4))
        page2 = await core.search(SearchQuery(text="x", k=2, offset=2))
        assert [h.id for h in page[2:]] == [h.id for h in page2]

        # Bad queries are INVALID_ARGUMENT with a reason.
        for bad in (
            SearchQuery(text="  "),
            SearchQuery(text="x", k=0),
            SearchQuery(text="x", k=5000),
            SearchQuery(image=b"junk"),
            SearchQuery(text="x", filter=d.Filter(must=(d.Range("altitude"),))),
        ):
            with pytest.raises(InvalidInput):
                await core.search(bad)

        # Delete by id, then by filter; counts are exact.
        assert await core.delete(ids=[point_id(cat[0][0])]) == 1
        assert await core.delete(ids=[point_id(cat[0][0])]) == 0
        deleted = await core.delete(filter=d.Filter(must=(d.Match("site", "east"),)))
        assert deleted == 4
        assert (await core.stats()).count == 12 - 1 - 4
        hits, missing = await core.get([point_id(cat[0][0]), point_id(cat[1][0])])
        assert [h.id for h in hits] == [point_id(cat[1][0])] and len(missing) == 1


async def test_near_duplicates_marked_when_asked(models: Models, tmp_path: Path) -> None:
    base = pattern(42, (128, 96))
    near = encode_image(base, quality=70)
    orig = encode_image(base, quality=95)
    other = encode_image(pattern(7))
    async with embedded(models, tmp_path / "data") as core:
        out = await ingest_all(
            core,
            [
                IngestItem(data=orig, uri="a.jpg", near_duplicate_threshold=0.98),
                IngestItem(data=near, uri="b.jpg", near_duplicate_threshold=0.98),
                IngestItem(data=other, uri="c.jpg", near_duplicate_threshold=0.98),
            ],
        )
        assert out[0].status is IngestStatus.ADDED
        assert out[1].status is IngestStatus.DUPLICATE and out[1].duplicate_of == out[0].id
        assert out[2].status is IngestStatus.ADDED
        flt = d.Filter(must_not=(d.Match("duplicate_of", out[0].id),))
        hits = await core.search(SearchQuery(image=orig, k=10, filter=flt))
        assert out[1].id not in {h.id for h in hits}  # bursts can be filtered out


async def test_model_mismatch_is_refused(models: Models, tmp_path: Path) -> None:
    from tests.tiny_models import build_tiny_clip

    async with embedded(models, tmp_path / "data") as core:
        await ingest_all(core, [IngestItem(data=encode_image(pattern(1)), uri="x")])
    other_config, other_ckpt = build_tiny_clip(tmp_path / "other", name="other-tiny-clip", seed=3)
    other = Models(other_config, other_ckpt, models.blip_dir)
    async with embedded(other, tmp_path / "data") as core:
        with pytest.raises(FailedPrecondition, match="tiny-clip-gateway"):
            await core.search(SearchQuery(text="x"))
        with pytest.raises(FailedPrecondition, match="other-tiny-clip"):
            await ingest_all(core, [IngestItem(data=encode_image(pattern(2)), uri="y")])


class _GalleryParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, str]] = []
        self.images = 0
        self.query = ""
        self._in_query = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self.figures.append({k: v or "" for k, v in a.items()})
        if tag == "img" and (a.get("src") or "").startswith("data:image/"):
            self.images += 1
        self._in_query = tag == "q"

    def handle_endtag(self, tag: str) -> None:
        self._in_query = False

    def handle_data(self, data: str) -> None:
        if self._in_query:
            self.query += data


async def test_gallery_lists_the_hits(models: Models, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    image_tree(root)
    from search_gateway.cli import find_images

    async with embedded(models, tmp_path / "data", read_roots=[root]) as core:
        await ingest_all(core, [IngestItem(path=str(p)) for p in find_images(root)])
        hits = await core.search(SearchQuery(text="man in <red> jacket", k=4))
    out = write_gallery(tmp_path / "results.html", "man in <red> jacket", hits)
    parser = _GalleryParser()
    parser.feed(out.read_text())
    assert parser.query == "man in <red> jacket"
    assert [f["data-id"] for f in parser.figures] == [h.id for h in hits]
    assert parser.images == len(hits) == 4


async def test_suite_matches_embedded(models: Models, tmp_path: Path) -> None:
    """The same data through the service suite gives the same answers."""
    cat = catalogue()
    items = [
        IngestItem(data=data, uri=f"mem://{i}", metadata=meta, with_captions=True)
        for i, (data, meta) in enumerate(cat)
    ]
    queries = [
        SearchQuery(text="a red circle", k=5),
        SearchQuery(image=cat[3][0], k=4),
        SearchQuery(point_id=point_id(cat[2][0]), k=3),
        SearchQuery(text="a", k=5, filter=d.Filter(must=(d.Match("site", "south"),))),
    ]
    async with embedded(models, tmp_path / "embedded") as core:
        local_out = await ingest_all(core, items)
        local_hits = [await core.search(q) for q in queries]
        local_filters = await _filter_results(core, cat)
        local_stats = await core.stats()
    async with suite(models, tmp_path / "suite") as s:
        remote_out = await ingest_all(s.gateway, items)
        remote_hits = [await s.gateway.search(q) for q in queries]
        remote_filters = await _filter_results(s.gateway, cat)
        remote_stats = await s.gateway.stats()
        # Errors keep their status across the wire.
        with pytest.raises(ImgsearchError) as err:
            await s.gateway.search(SearchQuery(text="x", k=0))
        assert err.value.status_name == "INVALID_ARGUMENT"
        assert (await s.gateway.delete(ids=[point_id(cat[0][0])])) == 1
    assert [(o.status, o.id) for o in local_out] == [(o.status, o.id) for o in remote_out]
    for lh, rh in zip(local_hits, remote_hits, strict=True):
        assert [h.id for h in lh] == [h.id for h in rh]
        assert [h.caption for h in lh] == [h.caption for h in rh]
        for a, b in zip(lh, rh, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-4)
    assert local_filters == remote_filters
    assert (local_stats.count, local_stats.captioned_count) == (12, 12)
    assert (remote_stats.count, remote_stats.captioned_count) == (12, 12)
    assert local_stats.model == remote_stats.model


async def test_caption_and_hybrid_modes(models: Models, tmp_path: Path) -> None:
    cat = catalogue(6)
    async with embedded(models, tmp_path / "data") as core:
        out = await ingest_all(
            core,
            [
                IngestItem(data=data, uri=f"m{i}", with_captions=True)
                for i, (data, _) in enumerate(cat)
            ],
        )
        hits, _ = await core.get([o.id for o in out])
        caption = hits[0].caption
        word = caption.split()[0]
        by_caption = await core.search(SearchQuery(text=caption, k=3, mode="caption"))
        assert by_caption and by_caption[0].caption == caption
        hybrid = await core.search(SearchQuery(text=word, k=6, mode="hybrid"))
        assert hybrid
        text_filter = d.Filter(must=(d.TextMatch("caption", word),))
        filtered = await core.search(SearchQuery(text="x", k=10, filter=text_filter))
        assert filtered and all(word in h.caption.split() for h in filtered)
        with pytest.raises(InvalidInput):
            await core.search(SearchQuery(image=cat[0][0], mode="caption"))


def test_settings_default_to_embedded() -> None:
    s = GatewaySettings()
    assert s.qdrant_url is None and s.embedder_address is None and s.captioner_address is None
