"""search_groups and search_ordered: the engine's grouping and ordering, same on both engines."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from search_gateway import domain as d
from search_gateway.store.base import VectorStore
from search_gateway.store.edge_store import EdgeStore
from search_gateway.store.qdrant_store import QdrantStore

DIM = 8
SPEC = d.CollectionSpec("groups-test", "random", DIM)
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def _points() -> list[d.StoredPoint]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(60):
        v = rng.normal(size=DIM).astype(np.float32)
        v /= np.linalg.norm(v)
        payload = {
            d.TIMESTAMP: d.rfc3339(T0 + timedelta(seconds=37 * ((i * 7) % 60))),
            "video_sha256": f"v{i % 3}",
            "camera_id": f"cam-{i % 2}",
            "i": i,
        }
        out.append(d.StoredPoint(str(uuid.UUID(int=i + 1)), payload, v))
    return out


@pytest.fixture(params=["edge", "qdrant-local"], scope="module")
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VectorStore]:
    folder: Path = tmp_path_factory.mktemp(request.param)
    s: VectorStore
    if request.param == "edge":
        s = EdgeStore.open_dir(folder, "c")
    else:
        s = QdrantStore.embedded(folder, "c")
    s.open(SPEC)
    s.upsert(_points())
    yield s
    s.close()


def _query() -> np.ndarray:
    return _points()[5].vector  # type: ignore[return-value]


def test_groups_rank_by_best_hit_and_hold_their_members(store: VectorStore) -> None:
    q = _query()
    groups = store.search_groups(q, "video_sha256", groups=3, group_size=4)
    assert [len(g.hits) for g in groups] == [4, 4, 4]
    assert groups[0].key == "v2" and groups[0].hits[0].payload["i"] == 5
    for g in groups:
        assert all(h.payload["video_sha256"] == g.key for h in g.hits)
        scores = [h.score for h in g.hits]
        assert scores == sorted(scores, reverse=True)
    best = [g.hits[0].score for g in groups]
    assert best == sorted(best, reverse=True)
    # The same as brute force.
    pts = _points()
    brute: dict[str, list[float]] = {}
    for p in pts:
        brute.setdefault(p.payload["video_sha256"], []).append(float(np.dot(p.vector, q)))  # type: ignore[arg-type]
    for g in groups:
        want = sorted(brute[g.key], reverse=True)[:4]
        assert [h.score for h in g.hits] == pytest.approx(want, abs=1e-4)
    flt = d.Filter(must=(d.Match("camera_id", "cam-0"),))
    only = store.search_groups(q, "camera_id", groups=5, group_size=2, filter=flt)
    assert [g.key for g in only] == ["cam-0"]


def test_ordered_by_time_from_the_relevant_candidates(store: VectorStore) -> None:
    q = _query()
    relevant = store.search(q, 20)
    got = store.search_ordered(q, candidates=20, k=20, order_by=d.TIMESTAMP)
    assert {p.id for p in got} == {p.id for p in relevant}
    times = [p.payload[d.TIMESTAMP] for p in got]
    assert times == sorted(times)
    by_id = {p.id: p.score for p in relevant}
    assert all(p.score == pytest.approx(by_id[p.id], abs=1e-4) for p in got)  # cosines
    desc = store.search_ordered(q, 20, 5, d.TIMESTAMP, descending=True)
    assert [p.payload[d.TIMESTAMP] for p in desc] == sorted(times, reverse=True)[:5]
    # start_from continues inclusively from a timestamp (keyset paging).
    later = store.search_ordered(q, 20, 20, d.TIMESTAMP, start_from=times[10])
    assert [p.payload[d.TIMESTAMP] for p in later] == times[10:]
    # score_threshold bounds the candidates.
    bar = (relevant[4].score + relevant[5].score) / 2
    top = store.search_ordered(q, 20, 20, d.TIMESTAMP, score_threshold=bar)
    assert {p.id for p in top} == {p.id for p in relevant[:5]}
