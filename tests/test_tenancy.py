"""TenantScope over a real Edge store: every method sees only its tenant's points."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from imgsearch.errors import InvalidInput, NotFound
from search_gateway import domain as d
from search_gateway.store.async_store import AsyncStore
from search_gateway.store.edge_store import EdgeStore
from search_gateway.tenancy import TenantScope

DIM = 8
SPEC = d.CollectionSpec("tenancy-test", "none", DIM)


def _vector(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    v[(i + 1) % DIM] = 0.5
    return v / np.linalg.norm(v)


def _points(scope: TenantScope, n: int, salt: str) -> list[d.StoredPoint]:
    return [
        d.StoredPoint(
            scope.point_id(f"{salt}{i:063x}"[-64:]),
            {d.PATH: f"{salt}/{i}.jpg", d.CAPTION: f"a {salt} picture", d.CAPTION_PENDING: False},
            _vector(i),
        )
        for i in range(n)
    ]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    s = AsyncStore(EdgeStore.open_dir(tmp_path, "images"))
    await s.open(SPEC)
    yield s
    await s.close()


async def test_each_tenant_sees_only_its_own_points(store: AsyncStore) -> None:
    alice, bob, admin = (
        TenantScope(store, "alice"),
        TenantScope(store, "bob"),
        TenantScope(store, None),
    )
    mine, theirs = _points(alice, 4, "a"), _points(bob, 3, "b")
    await alice.upsert(mine)
    await bob.upsert(theirs)

    stored = await admin.get([p.id for p in mine + theirs])
    assert {p.payload[d.TENANT] for p in stored} == {"alice", "bob"}  # stamped on write
    assert await admin.count() == 7
    assert await alice.count() == 4 and await bob.count() == 3

    got = await alice.get([p.id for p in mine + theirs])
    assert {p.id for p in got} == {p.id for p in mine}
    hits = await alice.search(_vector(0), k=10)
    assert {h.id for h in hits} == {p.id for p in mine}
    caption_hits = await alice.search_caption("picture", k=10)
    assert {h.id for h in caption_hits} == {p.id for p in mine}
    hybrid = await bob.search_hybrid(_vector(0), "picture", k=10)
    assert {h.id for h in hybrid} == {p.id for p in theirs}
    page = await bob.scroll(limit=10)
    assert {p.id for p in page.points} == {p.id for p in theirs}

    # A user filter keeps its meaning inside the scope.
    only_a1 = d.Filter(must=(d.Match(d.PATH, "a/1.jpg"),))
    assert await alice.count(only_a1) == 1 and await bob.count(only_a1) == 0

    # Writes and deletes reach only owned points.
    with pytest.raises(NotFound):
        await bob.set_caption(mine[0].id, "stolen", "m")
    with pytest.raises(NotFound):
        await bob.set_payload(mine[0].id, {d.PATHS: ["x"]})
    assert await bob.delete_ids([p.id for p in mine]) == 0
    assert await bob.delete_filter(d.Filter(must=(d.Match(d.CAPTION_PENDING, False),))) == 3
    assert await admin.count() == 4
    await alice.set_caption(mine[0].id, "a red car", "m")
    assert (await alice.get([mine[0].id]))[0].payload[d.CAPTION] == "a red car"
    assert await alice.delete_ids([mine[0].id, mine[1].id]) == 2
    assert await admin.count() == 2


def test_point_ids_and_metadata_belong_to_the_scope(tmp_path: Path) -> None:
    store = AsyncStore(EdgeStore.open_dir(tmp_path, "images"))
    alice, bob, off = (
        TenantScope(store, "alice"),
        TenantScope(store, "bob"),
        TenantScope(store, None),
    )
    sha = "ab" * 32
    assert len({alice.point_id(sha), bob.point_id(sha), off.point_id(sha)}) == 3
    assert off.point_id(sha) == d.point_id_for(sha)
    with pytest.raises(InvalidInput, match="set by the gateway"):
        alice.check_metadata({d.TENANT: "bob"})
    off.check_metadata({d.TENANT: "anything"})  # tenancy off: a user field like any other
    store.sync.close()
