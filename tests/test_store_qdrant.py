"""QdrantStore against real qdrant-client: embedded on disk, and a server when QDRANT_URL is set.

The data set is 30 points in three tight clusters of random vectors (Paris,
London, New York) with known payloads, so every filter has a known answer.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from imgsearch.vectors import l2_normalise
from search_gateway import domain as d
from search_gateway.store import VectorStore, iter_points
from search_gateway.store.qdrant_store import QdrantStore

UTC = timezone.utc
DIM = 16
SPEC = d.CollectionSpec("ViT-T-test", "random", DIM)
N = 30
CITIES = [(48.85, 2.35), (51.50, -0.12), (40.71, -74.00)]  # Paris, London, New York
START = datetime(2024, 5, 1, tzinfo=UTC)
CAPTIONS = {
    0: "a man in a red jacket walking a dog",
    1: "a red car parked on the street",
    2: "a woman in a blue jacket",
    3: "a dog running on the beach",
    10: "a cat sleeping on a red sofa",
    12: "two dogs playing in the snow",
    21: "a man in a red jacket on a mountain",
    24: "a city street at night",
}


def _build_points() -> list[d.StoredPoint]:
    rng = np.random.default_rng(1234)
    centers = [l2_normalise(rng.normal(size=DIM)) for _ in CITIES]
    points = []
    for i in range(N):
        cluster = i // 10
        sha = f"{i:064x}"
        lat, lon = CITIES[cluster]
        payload: dict = {
            d.PATH: f"/imgs/{i:02d}.jpg",
            d.PATHS: [f"/imgs/{i:02d}.jpg"],
            d.SHA256: sha,
            d.WIDTH: 100 * (i + 1),
            d.HEIGHT: 50 * (i + 1),
            d.FORMAT: ("jpeg", "png", "webp")[i % 3],
            d.INGESTED_AT: "2024-07-01T00:00:00Z",
            # Keywords for the first 20 points, integers for the last 10.
            d.CAMERA_ID: f"cam-{i % 3}" if i < 20 else i % 3,
            d.TIMESTAMP: d.rfc3339(START + timedelta(days=i)),
            d.LOCATION: {"lat": lat + 0.001 * (i % 10), "lon": lon},
            d.TAGS: [f"cluster-{'abc'[cluster]}"]
            + (["even"] if i % 2 == 0 else [])
            + (["private"] if i % 5 == 0 else []),
        }
        if i in CAPTIONS:
            payload[d.CAPTION] = CAPTIONS[i]
            payload[d.CAPTION_MODEL] = "blip-test"
            payload[d.CAPTION_PENDING] = False
        else:
            payload[d.CAPTION_PENDING] = True
        vector = l2_normalise(centers[cluster] + 0.05 * rng.normal(size=DIM))
        points.append(d.StoredPoint(d.point_id_for(sha), payload, vector))
    return points


POINTS = _build_points()
IDS = [p.id for p in POINTS]
INDEX = {pid: i for i, pid in enumerate(IDS)}


def indexes(points: list[d.StoredPoint] | list[d.ScoredPoint]) -> list[int]:
    return [INDEX[p.id] for p in points]


# --- fixtures ---------------------------------------------------------------------


@dataclass
class Backend:
    """Makes stores on one storage: a tmp folder, or a fresh collection on a server."""

    kind: str
    tmp_path: Path
    collection: str = field(default_factory=lambda: f"imgsearch_test_{uuid.uuid4().hex[:12]}")

    def make(self) -> QdrantStore:
        if self.kind == "embedded":
            return QdrantStore.embedded(self.tmp_path / "qdrant", self.collection)
        return QdrantStore.server(
            os.environ["QDRANT_URL"], os.environ.get("QDRANT_API_KEY"), self.collection
        )

    def cleanup(self) -> None:
        if self.kind == "server":
            store = self.make()
            store._client.delete_collection(self.collection)  # test-only teardown
            store.close()


BACKENDS = ["embedded", "server"]


def _backend(kind: str, tmp_path: Path) -> Backend:
    if kind == "server" and not os.environ.get("QDRANT_URL"):
        pytest.skip("QDRANT_URL not set")
    return Backend(kind, tmp_path)


def _filled(backend: Backend) -> QdrantStore:
    s = backend.make()
    s.open(SPEC)
    s.upsert(POINTS)
    return s


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = _backend(request.param, tmp_path)
    yield b
    b.cleanup()


@pytest.fixture
def store(backend: Backend) -> Iterator[QdrantStore]:
    """A fresh filled store, for tests that write."""
    s = _filled(backend)
    yield s
    s.close()


@pytest.fixture(scope="module", params=BACKENDS)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QdrantStore]:
    """One filled store per backend for read-only tests (local upserts commit per point)."""
    b = _backend(request.param, tmp_path_factory.mktemp("shared"))
    s = _filled(b)
    yield s
    s.close()
    b.cleanup()


# --- collection lifecycle ------------------------------------------------------------


def test_open_creates_then_reopens_with_data(backend: Backend) -> None:
    s = backend.make()
    assert isinstance(s, VectorStore)
    assert s.open(SPEC) == SPEC
    assert s.count() == 0
    s.upsert(POINTS[:5])
    s.close()

    again = backend.make()
    assert again.open(SPEC) == SPEC
    assert again.spec == SPEC
    assert again.count() == 5
    assert again.collection == backend.collection
    assert again.location == (
        "embedded" if backend.kind == "embedded" else os.environ["QDRANT_URL"]
    )
    again.close()


@pytest.mark.parametrize(
    "other",
    [
        d.CollectionSpec("ViT-L-14", "random", DIM),
        d.CollectionSpec("ViT-T-test", "other-tag", DIM),
        d.CollectionSpec("ViT-T-test", "random", DIM * 2),
    ],
)
def test_open_with_another_model_is_refused(backend: Backend, other: d.CollectionSpec) -> None:
    s = backend.make()
    s.open(SPEC)
    s.close()
    again = backend.make()
    with pytest.raises(d.ModelMismatch) as info:
        again.open(other)
    assert str(info.value) == (
        f"collection {backend.collection!r} was built with model ViT-T-test/random (dim {DIM}); "
        f"this gateway embeds with {other.describe()}; use another collection or re-index"
    )
    assert info.value.stored == SPEC and info.value.wanted == other
    again.close()


def test_embedded_folder_is_locked_to_one_store(tmp_path: Path) -> None:
    first = QdrantStore.embedded(tmp_path / "q", "images")
    with pytest.raises(d.StoreUnavailable, match="in use by another process"):
        QdrantStore.embedded(tmp_path / "q", "images")
    first.close()
    second = QdrantStore.embedded(tmp_path / "q", "images")  # released on close
    second.close()


def test_calls_before_open_fail_clearly(backend: Backend) -> None:
    s = backend.make()
    with pytest.raises(RuntimeError, match="call open"):
        s.count()
    s.close()


def test_unreachable_server_is_store_unavailable() -> None:
    s = QdrantStore.server("http://127.0.0.1:9", None, "images", timeout_s=1, retries=1)
    s._retry_backoff_s = 0.01
    with pytest.raises(d.StoreUnavailable, match=r"Qdrant at http://127.0.0.1:9 is unavailable"):
        s.open(SPEC)
    s.close()


# --- reads and writes ---------------------------------------------------------------


def test_get_returns_payload_and_vectors_in_the_order_asked(shared: QdrantStore) -> None:
    missing = d.point_id_for("f" * 64)
    got = shared.get([IDS[7], missing, IDS[2].upper(), IDS[7]])
    assert [p.id for p in got] == [IDS[7], IDS[2]]
    assert got[0].payload == POINTS[7].payload
    assert got[0].vector is None

    (with_vec,) = shared.get([IDS[3]], with_vectors=True)
    assert with_vec.vector is not None and with_vec.vector.dtype == np.float32
    np.testing.assert_allclose(with_vec.vector, POINTS[3].vector, atol=1e-6)
    assert shared.get([]) == []
    with pytest.raises(d.InvalidPointId):
        shared.get(["not-a-uuid"])


def test_upsert_is_idempotent_and_replaces(store: QdrantStore) -> None:
    store.upsert(POINTS[:3])
    assert store.count() == N
    changed = d.StoredPoint(IDS[0], {**POINTS[0].payload, d.WIDTH: 1}, POINTS[0].vector)
    store.upsert([changed])
    assert store.get([IDS[0]])[0].payload[d.WIDTH] == 1


def test_vectors_of_the_wrong_shape_are_refused(shared: QdrantStore) -> None:
    with pytest.raises(ValueError, match="16-dimensional"):
        shared.search(np.ones(DIM + 1, dtype=np.float32), k=3)
    with pytest.raises(ValueError, match="needs its CLIP vector"):
        shared.upsert([d.StoredPoint(IDS[0], {}, None)])


def test_set_payload_and_missing_points(store: QdrantStore) -> None:
    store.set_payload(IDS[4], {d.PATHS: ["/imgs/04.jpg", "/copy/04.jpg"]})
    payload = store.get([IDS[4]])[0].payload
    assert payload[d.PATHS] == ["/imgs/04.jpg", "/copy/04.jpg"]
    assert payload[d.WIDTH] == 500  # other keys untouched
    with pytest.raises(d.PointNotFound, match="no point with id"):
        store.set_payload(d.point_id_for("e" * 64), {"x": 1})


def test_set_caption_makes_the_point_caption_searchable(store: QdrantStore) -> None:
    assert 5 in indexes(store.scroll(d.Filter(must=[d.Match(d.CAPTION_PENDING, True)]), 100).points)
    store.set_caption(IDS[5], "a purple umbrella in the rain", "blip-test")
    payload = store.get([IDS[5]])[0].payload
    assert payload[d.CAPTION] == "a purple umbrella in the rain"
    assert payload[d.CAPTION_MODEL] == "blip-test"
    assert payload[d.CAPTION_PENDING] is False
    assert indexes(store.search_caption("purple umbrella", k=3))[0] == 5
    assert store.get([IDS[5]], with_vectors=True)[0].vector is not None  # dense kept

    # Clearing the caption removes its terms too.
    store.set_payload(IDS[5], {d.CAPTION: ""})
    assert 5 not in indexes(store.search_caption("purple umbrella", k=10))


# --- filters --------------------------------------------------------------------------

CAM_STR_1 = {i for i in range(20) if i % 3 == 1}
FILTER_CASES = [
    ("match int", d.Filter(must=[d.Match(d.CAMERA_ID, 1)]), {22, 25, 28}),
    ("match keyword", d.Filter(must=[d.Match(d.CAMERA_ID, "cam-1")]), CAM_STR_1),
    (
        "match bool",
        d.Filter(must=[d.Match(d.CAPTION_PENDING, False)]),
        set(CAPTIONS),
    ),
    ("match list field", d.Filter(must=[d.Match(d.TAGS, "private")]), {0, 5, 10, 15, 20, 25}),
    (
        "match any keywords",
        d.Filter(must=[d.MatchAny(d.FORMAT, ("png", "webp"))]),
        {i for i in range(N) if i % 3 != 0},
    ),
    (
        "match any integers",
        d.Filter(must=[d.MatchAny(d.CAMERA_ID, (0, 2))]),
        {i for i in range(20, N) if i % 3 != 1},
    ),
    ("range", d.Filter(must=[d.Range(d.WIDTH, gte=1000, lt=1500)]), {9, 10, 11, 12, 13}),
    ("range open", d.Filter(must=[d.Range(d.HEIGHT, gt=1400)]), {28, 29}),
    (
        "datetime range",
        d.Filter(
            must=[
                d.DatetimeRange(
                    d.TIMESTAMP,
                    gte=datetime(2024, 5, 11, tzinfo=UTC),
                    lt=START + timedelta(days=14),
                )
            ]
        ),
        {10, 11, 12, 13},
    ),
    (
        "datetime range with offset",
        d.Filter(
            must=[
                d.DatetimeRange(
                    d.TIMESTAMP, lte=datetime(2024, 5, 3, 2, tzinfo=timezone(timedelta(hours=2)))
                )
            ]
        ),
        {0, 1, 2},
    ),
    ("geo radius", d.Filter(must=[d.GeoRadius(d.LOCATION, 51.5, -0.12, 5000)]), set(range(10, 20))),
    (
        "full text",
        d.Filter(must=[d.TextMatch(d.CAPTION, "red jacket")]),
        {0, 21},
    ),
    (
        "full text any order",
        d.Filter(must=[d.TextMatch(d.CAPTION, "Jacket MAN")]),
        {0, 21},
    ),
    (
        "must not",
        d.Filter(must=[d.Match(d.TAGS, "cluster-a")], must_not=[d.Match(d.TAGS, "even")]),
        {1, 3, 5, 7, 9},
    ),
    (
        "should",
        d.Filter(should=[d.Match(d.CAMERA_ID, 1), d.Range(d.WIDTH, lte=200)]),
        {0, 1, 22, 25, 28},
    ),
    (
        "nested",
        d.Filter(
            must=[
                d.GeoRadius(d.LOCATION, 48.85, 2.35, 10_000),
                d.Filter(should=[d.Match(d.FORMAT, "png"), d.TextMatch(d.CAPTION, "dog")]),
            ]
        ),
        {0, 1, 3, 4, 7},
    ),
]


@pytest.mark.parametrize(
    ("name", "flt", "expected"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES]
)
def test_each_filter_kind_selects_the_expected_points(
    shared: QdrantStore, name: str, flt: d.Filter, expected: set[int]
) -> None:
    scrolled = set(indexes(list(iter_points(shared, flt, page_size=7))))
    assert scrolled == expected
    assert shared.count(flt) == len(expected)
    found = shared.search(POINTS[0].vector, k=N, filter=flt)
    assert set(indexes(found)) == expected


def test_invalid_filter_is_rejected_before_the_store(shared: QdrantStore) -> None:
    with pytest.raises(d.InvalidFilter, match=r"must\[0\] \(range on 'width'\)"):
        shared.count(d.Filter(must=[d.Range(d.WIDTH)]))


# --- vector search ------------------------------------------------------------------------


def test_search_ranks_the_query_point_first(shared: QdrantStore) -> None:
    hits = shared.search(POINTS[13].vector, k=5)
    assert indexes(hits)[0] == 13
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert set(indexes(hits)) <= set(range(10, 20))
    assert hits[0].payload[d.PATH] == "/imgs/13.jpg"


def test_score_threshold_drops_other_clusters(shared: QdrantStore) -> None:
    hits = shared.search(POINTS[13].vector, k=N, score_threshold=0.8)
    assert set(indexes(hits)) == set(range(10, 20))
    assert all(h.score >= 0.8 for h in hits)
    assert shared.search(POINTS[13].vector, k=N, score_threshold=1.01) == []


def test_offset_pages_through_the_same_ranking(shared: QdrantStore) -> None:
    full = indexes(shared.search(POINTS[0].vector, k=12))
    page1 = indexes(shared.search(POINTS[0].vector, k=5))
    page2 = indexes(shared.search(POINTS[0].vector, k=5, offset=5))
    page3 = indexes(shared.search(POINTS[0].vector, k=5, offset=10))
    assert page1 + page2 + page3[:2] == full
    assert shared.search(POINTS[0].vector, k=5, offset=N) == []


def test_exclude_ids_drops_the_query_point(shared: QdrantStore) -> None:
    hits = shared.search(POINTS[13].vector, k=5, exclude_ids=[IDS[13]])
    assert 13 not in indexes(hits)
    assert set(indexes(hits)) <= set(range(10, 20)) and len(hits) == 5
    flt = d.Filter(must=[d.Match(d.CAMERA_ID, "cam-1")])
    hits = shared.search(POINTS[13].vector, k=N, filter=flt, exclude_ids=[IDS[13], IDS[10]])
    assert set(indexes(hits)) == CAM_STR_1 - {10, 13}


# --- caption and hybrid search ---------------------------------------------------------------


def test_caption_search_ranks_the_matching_caption_first(shared: QdrantStore) -> None:
    hits = shared.search_caption("red jacket", k=10)
    assert set(indexes(hits[:2])) == {0, 21}  # both words
    assert set(indexes(hits)) == {0, 21, 1, 10, 2}  # any word; uncaptioned never
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert indexes(shared.search_caption("Dog on the BEACH!", k=3))[0] == 3
    assert indexes(shared.search_caption("snow", k=3)) == [12]


def test_caption_search_pages_filters_and_ignores_wordless_text(shared: QdrantStore) -> None:
    full = indexes(shared.search_caption("red jacket", k=10))
    assert indexes(shared.search_caption("red jacket", k=2, offset=2)) == full[2:4]
    flt = d.Filter(must=[d.GeoRadius(d.LOCATION, 40.71, -74.0, 10_000)])
    assert indexes(shared.search_caption("red jacket", k=10, filter=flt)) == [21]
    assert indexes(shared.search_caption("red jacket", k=10, exclude_ids=[IDS[0]]))[0] == 21
    assert shared.search_caption("?!", k=10) == []
    assert shared.search_caption("zebra", k=10) == []


def test_hybrid_fuses_vector_and_caption_rankings(shared: QdrantStore) -> None:
    # Point 21 is the nearest vector and a top caption match: first in both lists.
    hits = shared.search_hybrid(POINTS[21].vector, "red jacket", k=12)
    order = indexes(hits)
    assert order[0] == 21
    assert 0 in order  # caption-only match (another cluster) still surfaces
    assert set(range(20, 30)) & set(order[1:])  # vector-only neighbours too
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    page = indexes(shared.search_hybrid(POINTS[21].vector, "red jacket", k=4, offset=4))
    assert page == order[4:8]

    flt = d.Filter(must=[d.Match(d.TAGS, "cluster-c")])
    fused = indexes(shared.search_hybrid(POINTS[21].vector, "red jacket", k=N, filter=flt))
    assert set(fused) == set(range(20, 30))

    # No words in the text: the vector ranking alone.
    assert indexes(shared.search_hybrid(POINTS[21].vector, "", k=3))[0] == 21


# --- deletes, counts, scroll ------------------------------------------------------------------


def test_delete_ids_counts_only_existing_points(store: QdrantStore) -> None:
    missing = d.point_id_for("d" * 64)
    assert store.delete_ids([IDS[1], IDS[2], missing, IDS[1]]) == 2
    assert store.count() == N - 2
    assert store.get([IDS[1], IDS[2]]) == []
    assert store.delete_ids([IDS[1]]) == 0
    assert store.delete_ids([]) == 0


def test_delete_filter_counts_and_removes_exactly_the_matches(store: QdrantStore) -> None:
    private = d.Filter(must=[d.Match(d.TAGS, "private")])
    assert store.delete_filter(private) == 6
    assert store.count(private) == 0
    assert store.count() == N - 6
    assert store.delete_filter(private) == 0
    with pytest.raises(d.InvalidFilter, match="empty filter"):
        store.delete_filter(d.Filter())


def test_count_with_and_without_filter(shared: QdrantStore) -> None:
    assert shared.count() == N
    assert shared.count(d.Filter(must=[d.Match(d.CAPTION_PENDING, True)])) == N - len(CAPTIONS)


def test_scroll_pages_cover_everything_once(shared: QdrantStore) -> None:
    seen: list[int] = []
    offset = None
    pages = 0
    while True:
        page = shared.scroll(limit=7, offset=offset)
        assert len(page.points) <= 7
        seen += indexes(page.points)
        pages += 1
        if page.next_offset is None:
            break
        offset = page.next_offset
    assert sorted(seen) == list(range(N))
    assert pages == 5
    pending = shared.scroll(d.Filter(must=[d.Match(d.CAPTION_PENDING, True)]), limit=100)
    assert set(indexes(pending.points)) == set(range(N)) - set(CAPTIONS)
    assert pending.next_offset is None


# --- robustness -------------------------------------------------------------------------------


def test_collection_without_model_record(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient, models

    from search_gateway.store import qdrant_schema

    # As left by a server that drops collection metadata, or made by hand.
    raw = QdrantClient(path=str(tmp_path / "q"))
    for name in ("empty", "filled"):
        raw.create_collection(
            name,
            vectors_config=qdrant_schema.vectors_config(SPEC),
            sparse_vectors_config=qdrant_schema.sparse_vectors_config(),
        )
    raw.upsert("filled", [models.PointStruct(id=IDS[0], vector={d.DENSE_VECTOR: [1.0] * DIM})])
    raw.close()

    empty = QdrantStore.embedded(tmp_path / "q", "empty")
    assert empty.open(SPEC) == SPEC  # empty and fitting: adopted and recorded
    empty.close()
    again = QdrantStore.embedded(tmp_path / "q", "empty")
    with pytest.raises(d.ModelMismatch):
        again.open(d.CollectionSpec("other", "x", DIM))
    again.close()

    filled = QdrantStore.embedded(tmp_path / "q", "filled")
    with pytest.raises(d.ModelMismatch, match="no imgsearch model record"):
        filled.open(SPEC)
    filled.close()


def test_embedded_store_is_safe_across_threads(store: QdrantStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> int:
        if i % 3 == 0:
            store.upsert([POINTS[i % N]])
        elif i % 3 == 1:
            store.search(POINTS[i % N].vector, k=5)
        return store.count()

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = list(pool.map(work, range(60)))
    assert counts == [N] * 60
