"""Congruence: the same ingest and queries on Qdrant Edge and qdrant-client local mode.

~300 points with clustered vectors and varied payloads go into both embedded
engines; every query kind then has to give the same ids with the same
scores (within 1e-4). The data is small enough that both engines search
exactly (Edge's segment stays under the HNSW full-scan threshold).

Intended difference: engines order equal scores differently (BM25 and RRF
scores tie often). Results are compared as (score, id) sorted lists, and a
tie group cut by the page end is compared by score only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qdrant_edge")

from imgsearch.vectors import l2_normalise
from search_gateway import domain as d
from search_gateway.store import VectorStore, iter_points
from search_gateway.store.edge_store import EdgeStore
from search_gateway.store.qdrant_store import QdrantStore

UTC = timezone.utc
DIM = 32
N = 300
SPEC = d.CollectionSpec("ViT-T-congruence", "random", DIM)
START = datetime(2024, 1, 1, tzinfo=UTC)
CITIES = [(48.85, 2.35), (51.50, -0.12), (40.71, -74.00), (35.68, 139.69)]
WORDS = [
    "red",
    "blue",
    "green",
    "dog",
    "cat",
    "car",
    "man",
    "woman",
    "street",
    "beach",
    "snow",
    "jacket",
    "tree",
    "sky",
]
TOL = 1e-4


def _build() -> list[d.StoredPoint]:
    rng = np.random.default_rng(99)
    centres = [l2_normalise(rng.normal(size=DIM)) for _ in range(12)]
    points = []
    for i in range(N):
        sha = f"{i + 1000:064x}"
        lat, lon = CITIES[i % 4]
        payload: dict = {
            d.PATH: f"/c/{i:03d}.jpg",
            d.PATHS: [f"/c/{i:03d}.jpg"],
            d.SHA256: sha,
            d.WIDTH: int(rng.integers(64, 4096)),
            d.HEIGHT: int(rng.integers(64, 4096)),
            d.FORMAT: ("jpeg", "png", "webp", "gif")[i % 4],
            d.INGESTED_AT: d.rfc3339(START + timedelta(hours=i)),
            d.TIMESTAMP: d.rfc3339(START + timedelta(days=int(rng.integers(0, 365)))),
            d.CAMERA_ID: f"cam-{i % 7}",
            d.LOCATION: {"lat": lat + rng.uniform(-0.05, 0.05), "lon": lon},
            d.TAGS: sorted({f"t{int(x)}" for x in rng.integers(0, 10, int(rng.integers(0, 4)))}),
            d.TENANT: ("acme", "globex")[i % 2],
        }
        if i % 3 != 0:
            words = rng.choice(WORDS, size=int(rng.integers(3, 9)))
            payload[d.CAPTION] = "a " + " ".join(words)
            payload[d.CAPTION_MODEL] = "blip-test"
            payload[d.CAPTION_PENDING] = False
            payload[d.CAPTIONED] = True
        else:
            payload[d.CAPTION_PENDING] = True
        vec = l2_normalise(centres[i % 12] + 0.35 * rng.normal(size=DIM))
        points.append(d.StoredPoint(d.point_id_for(sha), payload, vec))
    return points


POINTS = _build()
IDS = [p.id for p in POINTS]
QUERIES = [POINTS[5].vector, POINTS[77].vector, l2_normalise(np.ones(DIM)), POINTS[200].vector]


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VectorStore, VectorStore]]:
    root: Path = tmp_path_factory.mktemp("congruence")
    local = QdrantStore.embedded(root / "local", "images")
    edge = EdgeStore.open_dir(root / "edge", "images")
    for s in (local, edge):
        s.open(SPEC)
        for start in range(0, N, 64):
            s.upsert(POINTS[start : start + 64])
    yield local, edge
    local.close()
    edge.close()


def assert_same_hits(a: list[d.ScoredPoint], b: list[d.ScoredPoint], page_end: bool) -> None:
    """Same score sequence; every id in both has the same score and payload.

    Ids found by one engine only are allowed just where a page cuts a tie
    group (page_end: at its first or last score): engines order equal scores
    differently (module doc).
    """
    assert len(a) == len(b)
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=TOL)
    if not a:
        return
    sa, sb = {h.id: h.score for h in a}, {h.id: h.score for h in b}
    # A page (offset, k) cuts tie groups at its start and its end.
    edges = (a[0].score, a[-1].score) if page_end else ()
    for pid in sa.keys() ^ sb.keys():
        score = sa.get(pid, sb.get(pid))
        assert any(abs(score - e) <= TOL for e in edges), f"{pid} found by one engine only"
    for pid in sa.keys() & sb.keys():
        assert abs(sa[pid] - sb[pid]) <= TOL
    payloads = {h.id: h.payload for h in b}
    for h in a:
        if h.id in payloads:
            assert_same_payload(h.payload, payloads[h.id])


def assert_same_payload(a: object, b: object) -> None:
    """Equal payloads, floats within 1e-12 relative.

    Intended difference: Edge parses payload floats without exact round-trip
    (the last binary digit of a latitude may change: 40.690855157177644 comes
    back as 40.69085515717765). Irrelevant for geo points; documented here.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_payload(a[key], b[key])
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same_payload(x, y)
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12)
    else:
        assert a == b and type(a) is type(b)


FILTERS = {
    "keyword": d.Filter(must=[d.Match(d.CAMERA_ID, "cam-3")]),
    "keyword list": d.Filter(must=[d.Match(d.TAGS, "t4")]),
    "tenant": d.Filter(must=[d.Match(d.TENANT, "globex")]),
    "bool": d.Filter(must=[d.Match(d.CAPTION_PENDING, True)]),
    "bool false": d.Filter(must=[d.Match(d.CAPTION_PENDING, False)]),
    "match any": d.Filter(must=[d.MatchAny(d.FORMAT, ("png", "gif"))]),
    "integer range": d.Filter(must=[d.Range(d.WIDTH, gte=1000, lt=2500)]),
    "datetime": d.Filter(
        must=[d.DatetimeRange(d.TIMESTAMP, gte=datetime(2024, 3, 1, tzinfo=UTC))],
        must_not=[d.DatetimeRange(d.TIMESTAMP, gt=datetime(2024, 9, 1, tzinfo=UTC))],
    ),
    "geo": d.Filter(must=[d.GeoRadius(d.LOCATION, 51.5, -0.12, 8000)]),
    "full text": d.Filter(must=[d.TextMatch(d.CAPTION, "Dog red")]),
    "should": d.Filter(should=[d.Match(d.FORMAT, "gif"), d.TextMatch(d.CAPTION, "snow")]),
    "nested": d.Filter(
        must=[
            d.Match(d.TENANT, "acme"),
            d.Filter(should=[d.Range(d.HEIGHT, lt=500), d.Match(d.TAGS, "t1")]),
        ],
        must_not=[d.Match(d.FORMAT, "jpeg")],
    ),
}


def _ids(points: list[d.StoredPoint]) -> list[str]:
    return [p.id for p in points]


@pytest.mark.parametrize("name", list(FILTERS))
def test_filters_select_the_same_points(engines: tuple, name: str) -> None:
    local, edge = engines
    flt = FILTERS[name]
    expected = sorted(_ids(list(iter_points(local, flt, page_size=50))))
    assert expected, "a filter case should select something"
    assert sorted(_ids(list(iter_points(edge, flt, page_size=50)))) == expected
    assert edge.count(flt) == local.count(flt) == len(expected)
    for q in QUERIES[:2]:
        assert_same_hits(
            local.search(q, k=10, filter=flt), edge.search(q, k=10, filter=flt), page_end=True
        )


def test_unfiltered_search_pages_and_thresholds(engines: tuple) -> None:
    local, edge = engines
    for q in QUERIES:
        assert_same_hits(local.search(q, k=N), edge.search(q, k=N), page_end=False)
        for offset in (0, 10, 295):
            assert_same_hits(
                local.search(q, k=10, offset=offset),
                edge.search(q, k=10, offset=offset),
                page_end=True,
            )
        for threshold in (0.5, 0.9):
            a = local.search(q, k=N, score_threshold=threshold)
            assert_same_hits(a, edge.search(q, k=N, score_threshold=threshold), page_end=False)
            assert all(h.score >= threshold for h in a)


def test_exclude_ids(engines: tuple) -> None:
    local, edge = engines
    excluded = IDS[5:40]
    flt = FILTERS["tenant"]
    for f in (None, flt):
        a = local.search(POINTS[5].vector, k=20, filter=f, exclude_ids=excluded)
        b = edge.search(POINTS[5].vector, k=20, filter=f, exclude_ids=excluded)
        assert not {h.id for h in b} & set(excluded)
        assert_same_hits(a, b, page_end=True)


@pytest.mark.parametrize("text", ["red dog", "snow", "Blue SKY", "man in a jacket"])
def test_caption_search(engines: tuple, text: str) -> None:
    local, edge = engines
    assert_same_hits(local.search_caption(text, k=N), edge.search_caption(text, k=N), False)
    assert_same_hits(
        local.search_caption(text, k=5, offset=5), edge.search_caption(text, k=5, offset=5), True
    )
    flt = FILTERS["match any"]
    assert_same_hits(
        local.search_caption(text, k=N, filter=flt),
        edge.search_caption(text, k=N, filter=flt),
        False,
    )


def test_late_caption_and_cleared_caption(tmp_path: Path) -> None:
    """Caption edits; caption scores then agree to 5%, not 1e-4 (intended difference).

    After a point's caption terms are replaced or removed, Edge keeps counting
    the old terms in its IDF statistics (as Qdrant's segment engine does),
    while qdrant-client local mode recounts: BM25 scores drift by 1-3% on this small corpus.
    """
    local = QdrantStore.embedded(tmp_path / "local", "images")
    edge = EdgeStore.open_dir(tmp_path / "edge", "images")
    for s in (local, edge):
        s.open(SPEC)
        s.upsert(POINTS[:120])
        s.set_caption(IDS[3], "a purple umbrella in the snow", "blip-test")
        s.set_payload(IDS[4], {d.PATHS: ["/c/004.jpg", "/copy/004.jpg"]})
        s.set_payload(IDS[7], {d.CAPTION: ""})
        hits = s.search_caption("purple umbrella", k=3)
        assert hits[0].id == IDS[3]
        assert IDS[7] not in {h.id for h in s.search_caption(POINTS[7].payload[d.CAPTION], k=N)}
        assert s.get([IDS[4]])[0].payload[d.PATHS] == ["/c/004.jpg", "/copy/004.jpg"]
    a, b = local.get(IDS[:50]), edge.get(IDS[:50])
    assert [p.id for p in a] == [p.id for p in b]
    assert_same_payload([p.payload for p in a], [p.payload for p in b])
    ha, hb = local.search_caption("snow", k=N), edge.search_caption("snow", k=N)
    assert {h.id for h in ha} == {h.id for h in hb}
    np.testing.assert_allclose([h.score for h in ha], [h.score for h in hb], rtol=0.05)
    local.close()
    edge.close()


def test_hybrid_search_without_words_is_the_vector_ranking(engines: tuple) -> None:
    local, edge = engines
    for q in QUERIES[:2]:
        assert_same_hits(local.search_hybrid(q, "", k=30), edge.search_hybrid(q, "", k=30), True)
        flt = FILTERS["tenant"]
        assert_same_hits(
            local.search_hybrid(q, "", k=10, offset=10, filter=flt),
            edge.search_hybrid(q, "", k=10, offset=10, filter=flt),
            page_end=True,
        )


@pytest.mark.parametrize("text", ["red dog", "snow"])
def test_hybrid_search_agrees_up_to_caption_ties(engines: tuple, text: str) -> None:
    """Intended difference: RRF adds 1/(2 + rank) per list, and the rank of a point
    inside a group of equal BM25 scores is engine order, so fused scores of those
    points differ. The vector-first results and most of the page agree."""
    local, edge = engines
    for q in QUERIES[:2]:
        a, b = local.search_hybrid(q, text, k=30), edge.search_hybrid(q, text, k=30)
        assert len(a) == len(b) == 30
        assert a[0].id == b[0].id and abs(a[0].score - b[0].score) < 0.01
        ia, ib = {h.id for h in a}, {h.id for h in b}
        assert len(ia & ib) / len(ia | ib) >= 0.6


def test_scroll_order_and_pages(engines: tuple) -> None:
    local, edge = engines
    a = local.scroll(limit=40)
    b = edge.scroll(limit=40)
    assert _ids(a.points) == _ids(b.points) and a.next_offset == b.next_offset
    assert _ids(local.scroll(limit=40, offset=a.next_offset).points) == _ids(
        edge.scroll(limit=40, offset=b.next_offset).points
    )


def test_counts_and_deletes(engines: tuple) -> None:
    """Runs last: it deletes from both engines."""
    local, edge = engines
    assert local.count() == edge.count() == N
    gone = d.Filter(must=[d.Match(d.CAMERA_ID, "cam-5")])
    n = local.count(gone)
    assert local.delete_filter(gone) == edge.delete_filter(gone) == n > 0
    ids = [*IDS[:10], d.point_id_for("f" * 64)]
    assert local.delete_ids(ids) == edge.delete_ids(ids)
    assert local.count() == edge.count()
    assert sorted(_ids(list(iter_points(local)))) == sorted(_ids(list(iter_points(edge))))
    assert_same_hits(local.search(QUERIES[2], k=N), edge.search(QUERIES[2], k=N), page_end=False)
