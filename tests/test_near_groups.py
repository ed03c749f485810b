"""Grouping by near-duplicate cluster: `near_group` on every point, the
backfill of older points at store open, and grouped results through the real
gateway over gRPC (offline-tiny model, Qdrant Edge on disk)."""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe
from PIL import Image

from offline_models.registry import OFFLINE_MODEL_NAME
from offline_training.scenes import SceneObject, render
from search_gateway import domain as d
from search_gateway.assemble import build_store
from search_gateway.core import Hit, SearchQuery
from search_gateway.events import ResultShape, events_of, whole_group
from search_gateway.ingest import IngestItem, IngestStatus
from search_gateway.settings import GatewaySettings
from search_gateway.store.base import VectorStore
from search_gateway.store.edge_store import EdgeStore
from search_gateway.store.qdrant_store import QdrantStore

DIM = 8
SPEC = d.CollectionSpec("near-groups-test", "random", DIM)


# --- pure ----------------------------------------------------------------------------


def _hit(i: int, score: float, ts: str | None) -> Hit:
    payload = {} if ts is None else {"timestamp": ts}
    return Hit(id=f"id{i}", score=score, uri=f"{i}.jpg", caption="", payload=payload)


def test_a_cluster_is_one_group_whatever_its_times() -> None:
    hits = [
        _hit(1, 0.30, "2024-05-01T12:00:00Z"),
        _hit(2, 0.35, "2024-05-03T08:00:00Z"),  # two days later: still the same cluster
        _hit(3, 0.20, None),  # no time: still a member, not a group of its own
    ]
    (group,) = events_of("rep", hits, ResultShape(group_by="near_duplicate"))
    assert (group.key, group.size, group.best.id) == ("rep", 3, "id2")
    assert (group.start, group.end) == ("2024-05-01T12:00:00Z", "2024-05-03T08:00:00Z")
    assert [h.id for h in group.hits] == ["id2", "id1", "id3"]
    untimed = whole_group("rep", [_hit(4, 0.1, None)])
    assert (untimed.start, untimed.end, untimed.size) == (None, None, 1)
    # Video grouping still splits the same hits at gaps.
    assert len(events_of("v", hits, ResultShape(group_by="video", window_s=60))) == 3


# --- the store: older points get near_group at open ----------------------------------


def _vec(rng: np.random.Generator, base: np.ndarray | None = None) -> np.ndarray:
    v = rng.normal(size=DIM).astype(np.float32)
    if base is not None:
        v = base + 0.01 * v
    return v / np.linalg.norm(v)


def _pid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def _legacy_points() -> list[d.StoredPoint]:
    """Points as a gateway before near_group wrote them: reps without marks,
    members marked duplicate_of; one chain (older marks), one member whose
    representative was deleted, one malformed mark."""
    rng = np.random.default_rng(7)
    a, b = _vec(rng), _vec(rng)
    pts = [
        d.StoredPoint(_pid(0), {"i": 0}, a),  # representative of cluster A
        d.StoredPoint(_pid(1), {"i": 1, d.DUPLICATE_OF: _pid(0)}, _vec(rng, a)),
        d.StoredPoint(_pid(2), {"i": 2, d.DUPLICATE_OF: _pid(1)}, _vec(rng, a)),  # chain
        d.StoredPoint(_pid(3), {"i": 3}, b),  # alone
        d.StoredPoint(_pid(4), {"i": 4, d.DUPLICATE_OF: _pid(99)}, _vec(rng)),  # rep deleted
        d.StoredPoint(_pid(5), {"i": 5, d.DUPLICATE_OF: "not-an-id"}, _vec(rng)),
    ]
    return pts


@pytest.fixture(params=["edge", "qdrant-local"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield request.param, tmp_path


def _open(kind: str, folder: Path) -> VectorStore:
    s: VectorStore = (
        EdgeStore.open_dir(folder, "c") if kind == "edge" else QdrantStore.embedded(folder, "c")
    )
    s.open(SPEC)
    return s


def _strip_near_group(store: VectorStore, ids: list[str]) -> None:
    """Makes stored points look like an older version's: no near_group."""
    if isinstance(store, EdgeStore):
        store._require_shard().update(qe.UpdateOperation.delete_payload(list(ids), [d.NEAR_GROUP]))
    else:
        assert isinstance(store, QdrantStore)
        store._client.delete_payload(store.collection, [d.NEAR_GROUP], points=ids)


def test_points_stored_before_near_group_get_it_at_open(engine: tuple[str, Path]) -> None:
    kind, folder = engine
    s = _open(kind, folder)
    pts = _legacy_points()
    s.upsert(pts)
    _strip_near_group(s, [p.id for p in pts])
    assert all(d.NEAR_GROUP not in p.payload for p in s.get([p.id for p in pts]))
    s.close()

    s = _open(kind, folder)  # the open labels them
    try:
        got = {p.id: p.payload.get(d.NEAR_GROUP) for p in s.get([p.id for p in pts])}
        assert got == {
            _pid(0): _pid(0), _pid(1): _pid(0), _pid(2): _pid(0),
            _pid(3): _pid(3), _pid(4): _pid(99), _pid(5): _pid(5),
        }  # fmt: skip
        # Grouped by cluster: A's three points in one group, ranked first.
        groups = s.search_groups(pts[0].vector, d.NEAR_GROUP, groups=10, group_size=10)  # type: ignore[arg-type]
        assert groups[0].key == _pid(0) and len(groups[0].hits) == 3
        assert sorted(len(g.hits) for g in groups) == [1, 1, 1, 3]
        # A user cannot write the field.
        assert d.NEAR_GROUP in d.RESERVED_FIELDS
    finally:
        s.close()
    s = _open(kind, folder)  # nothing left to do: the next open only counts
    s.close()


# --- through the gateway over gRPC ---------------------------------------------------


def _picture(seed: int) -> Image.Image:
    rng = random.Random(seed)
    shapes = ["circle", "square", "triangle", "star", "hexagon", "cross"]
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    objects = [
        SceneObject(shapes[(seed + k) % 6], colours[(seed * 2 + k) % 6], "large", pos)
        for k, pos in enumerate(["left", "right"])
    ]
    return render(objects, ["gray", "sand", "slate"][seed % 3], rng, size=256)


def _jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


async def _aiter(items: list[IngestItem]) -> AsyncIterator[IngestItem]:
    for item in items:
        yield item


def _settings(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        data_dir=str(tmp_path / "data"), collection="photos", model=OFFLINE_MODEL_NAME,
        pretrained="", captions=False, host="127.0.0.1", port=0, metrics_port=-1,
    )  # fmt: skip


async def _grouped(settings: GatewaySettings, query: bytes) -> list[tuple[str, int, str, str]]:
    from search_gateway.remote_api import RemoteGateway
    from search_gateway.server import start_gateway_server

    server = await start_gateway_server(settings)
    client = RemoteGateway(f"127.0.0.1:{server.port}")
    try:
        page = await client.search_page(
            SearchQuery(image=query, k=10), ResultShape(group_by="near_duplicate")
        )
        assert [g.best.id for g in page.groups] == [h.id for h in page.hits]
        return [(g.key, g.size, g.start or "", g.end or "") for g in page.groups]
    finally:
        await client.close()
        await server.stop(1)


async def test_near_duplicates_group_through_the_gateway(tmp_path: Path) -> None:
    from search_gateway.remote_api import RemoteGateway
    from search_gateway.server import start_gateway_server

    pictures = [_picture(s) for s in (1, 2, 3)]
    # Picture 0 three times (JPEG q95, q70, q40), picture 1 twice, picture 2 once.
    copies = [(0, 95), (1, 95), (2, 95), (0, 70), (1, 70), (0, 40)]
    times = ["2024-05-01T10:00:00Z", "2024-05-02T10:00:00Z", "2024-05-03T10:00:00Z",
             "2024-05-01T18:00:00Z", "2024-05-02T10:00:05Z", "2024-05-09T07:00:00Z"]  # fmt: skip
    items = [
        IngestItem(
            data=_jpeg(pictures[p], q),
            uri=f"p{p}-q{q}.jpg",
            metadata={"timestamp": t},
            near_duplicate_threshold=0.97,
        )
        for (p, q), t in zip(copies, times, strict=True)
    ]
    settings = _settings(tmp_path)
    server = await start_gateway_server(settings)
    client = RemoteGateway(f"127.0.0.1:{server.port}")
    try:
        # Two streams: the second stream's copies find their cluster in the store.
        first = [o async for o in client.ingest(_aiter(items[:3]))]
        rest = [o async for o in client.ingest(_aiter(items[3:]))]
        out = first + rest
        assert [o.status for o in out] == [IngestStatus.ADDED] * 3 + [IngestStatus.DUPLICATE] * 3
        reps = [o.id for o in out[:3]]
        assert [o.duplicate_of for o in out[3:]] == [reps[0], reps[1], reps[0]]
        hits, _ = await client.get([o.id for o in out])
        assert {h.id: h.payload[d.NEAR_GROUP] for h in hits} == {
            o.id: o.duplicate_of or o.id for o in out
        }
        # Plain search: all six points; grouped: one hit per cluster.
        plain = await client.search(SearchQuery(image=items[0].data, k=10))
        assert len(plain) == 6
    finally:
        await client.close()
        await server.stop(1)

    want = {
        (reps[0], 3, "2024-05-01T10:00:00Z", "2024-05-09T07:00:00Z"),
        (reps[1], 2, "2024-05-02T10:00:00Z", "2024-05-02T10:00:05Z"),
        (reps[2], 1, "2024-05-03T10:00:00Z", "2024-05-03T10:00:00Z"),
    }
    got = await _grouped(settings, items[0].data)  # type: ignore[arg-type]
    assert got[0][0] == reps[0]  # the query's own cluster ranks first
    assert len(got) == 3 and set(got) == want

    # The same collection as an older gateway left it (no near_group on any
    # point): the next gateway labels the points at start, and groups are the same.
    store = build_store(settings)
    assert isinstance(store, EdgeStore)  # the embedded default engine
    store.open(store_spec(store))
    ids = [p.id for p in store.scroll(limit=100).points]
    _strip_near_group(store, ids)
    assert len(ids) == 6 and not any(d.NEAR_GROUP in p.payload for p in store.get(ids))
    store.close()
    again = await _grouped(settings, items[0].data)  # type: ignore[arg-type]
    assert len(again) == 3 and set(again) == want


def store_spec(store: EdgeStore) -> d.CollectionSpec:
    """The spec the collection was recorded with (the offline model's)."""
    record = store._engine_record()
    assert record is not None
    return record


# --- the CLI, as a user runs it ------------------------------------------------------


@pytest.mark.slow  # subprocesses that load the model
def test_cli_query_groups_by_near_duplicate(tmp_path: Path) -> None:
    import json

    from tests.test_cli_ux import cli

    photos = tmp_path / "photos"
    photos.mkdir()
    for quality in (95, 70, 40):
        (photos / f"a-q{quality}.jpg").write_bytes(_jpeg(_picture(1), quality))
    (photos / "b.jpg").write_bytes(_jpeg(_picture(2), 90))
    data = tmp_path / "data"
    run = cli(data, "index", str(photos), "--no-progress", "--near-duplicates", "0.97")
    assert run.returncode == 0, run.stderr
    assert "near-duplicate 2" in run.stdout
    run = cli(data, "query", "a circle", "--group", "near-duplicate", "--json")
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout)
    sizes = sorted(g["size"] for g in answer["groups"])
    assert sizes == [1, 3] and len(answer["hits"]) == 2
    for hit, group in zip(answer["hits"], answer["groups"], strict=True):
        assert hit["id"] == group["hit_ids"][0] and hit["payload"]["near_group"] == group["key"]
    table = cli(data, "query", "a circle", "--group", "near_duplicate")
    assert table.returncode == 0 and "a-q" in table.stdout and "b.jpg" in table.stdout
    bad = cli(data, "query", "a circle", "--group", "near_duplicate,60s")
    assert bad.returncode != 0 and "takes no time window" in bad.stderr
