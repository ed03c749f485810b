"""EdgeStore (Qdrant Edge) against the same behaviours as QdrantStore.

The engine-agnostic tests of test_store_qdrant are imported and run here
with this module's fixtures (pytest resolves fixtures where a test is
collected), so both engines answer to one specification. Below them, what
only Edge has: the model record file, the folder lock, durability across a
process exit, the optimizer, and the filter converter.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qdrant_edge")

import qdrant_edge as qe

from search_gateway import domain as d
from search_gateway.store import VectorStore
from search_gateway.store.edge_filters import combine, to_edge_filter
from search_gateway.store.edge_store import MODEL_RECORD, EdgeStore, EdgeTuning
from tests.test_store_qdrant import (  # noqa: F401 - re-run on Edge by pytest
    DIM,
    IDS,
    POINTS,
    SPEC,
    N,
    indexes,
    test_calls_before_open_fail_clearly,
    test_caption_search_pages_filters_and_ignores_wordless_text,
    test_caption_search_ranks_the_matching_caption_first,
    test_count_with_and_without_filter,
    test_delete_filter_counts_and_removes_exactly_the_matches,
    test_delete_ids_counts_only_existing_points,
    test_each_filter_kind_selects_the_expected_points,
    test_embedded_store_is_safe_across_threads,
    test_exclude_ids_drops_the_query_point,
    test_get_returns_payload_and_vectors_in_the_order_asked,
    test_hybrid_fuses_vector_and_caption_rankings,
    test_invalid_filter_is_rejected_before_the_store,
    test_offset_pages_through_the_same_ranking,
    test_open_creates_then_reopens_with_data,
    test_open_with_another_model_is_refused,
    test_score_threshold_drops_other_clusters,
    test_scroll_pages_cover_everything_once,
    test_search_ranks_the_query_point_first,
    test_set_caption_makes_the_point_caption_searchable,
    test_set_payload_and_missing_points,
    test_upsert_is_idempotent_and_replaces,
    test_vectors_of_the_wrong_shape_are_refused,
)

UTC = timezone.utc


@dataclass
class EdgeBackend:
    """Makes Edge stores on one tmp folder (the shape test_store_qdrant's tests expect)."""

    tmp_path: Path
    kind: str = "embedded"
    collection: str = field(default_factory=lambda: f"imgsearch_test_{uuid.uuid4().hex[:12]}")

    def make(self) -> EdgeStore:
        return EdgeStore.open_dir(self.tmp_path / "edge", self.collection)


def _filled(backend: EdgeBackend) -> EdgeStore:
    s = backend.make()
    s.open(SPEC)
    s.upsert(POINTS)
    return s


@pytest.fixture
def backend(tmp_path: Path) -> EdgeBackend:
    return EdgeBackend(tmp_path)


@pytest.fixture
def store(backend: EdgeBackend) -> Iterator[EdgeStore]:
    s = _filled(backend)
    yield s
    s.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeStore]:
    s = _filled(EdgeBackend(tmp_path_factory.mktemp("edge_shared")))
    yield s
    s.close()


# --- Edge only: folder, record, durability ------------------------------------------


def test_edge_store_satisfies_the_protocol(store: EdgeStore) -> None:
    assert isinstance(store, VectorStore)
    assert store.location == "embedded"


def test_folder_is_locked_to_one_store(tmp_path: Path) -> None:
    first = EdgeStore.open_dir(tmp_path, "images")
    with pytest.raises(d.StoreUnavailable, match="in use by another process"):
        EdgeStore.open_dir(tmp_path, "images")
    first.close()
    second = EdgeStore.open_dir(tmp_path, "images")  # released on close
    second.close()
    second.close()  # idempotent


def test_collection_names_must_fit_a_folder(tmp_path: Path) -> None:
    for bad in ("", "../up", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="cannot name a folder"):
            EdgeStore.open_dir(tmp_path, bad)


def test_model_record_is_a_json_file_next_to_the_shard(tmp_path: Path) -> None:
    s = EdgeStore.open_dir(tmp_path, "images")
    s.open(SPEC)
    s.close()
    record = json.loads((tmp_path / "images" / MODEL_RECORD).read_text())
    assert record["imgsearch"] == {
        "model": SPEC.model,
        "pretrained": SPEC.pretrained,
        "dimension": DIM,
        "schema": 1,
    }
    assert not list((tmp_path / "images").glob(".imgsearch-*"))  # no temp file left


def test_shard_without_model_record(tmp_path: Path) -> None:
    # As left by a crash between creating the shard and writing the record.
    s = EdgeStore.open_dir(tmp_path, "empty")
    s.open(SPEC)
    s.close()
    (tmp_path / "empty" / MODEL_RECORD).unlink()
    adopted = EdgeStore.open_dir(tmp_path, "empty")
    assert adopted.open(SPEC) == SPEC  # empty and fitting: adopted and recorded
    adopted.close()
    assert (tmp_path / "empty" / MODEL_RECORD).exists()

    s = EdgeStore.open_dir(tmp_path, "filled")
    s.open(SPEC)
    s.upsert(POINTS[:2])
    s.close()
    (tmp_path / "filled" / MODEL_RECORD).unlink()
    filled = EdgeStore.open_dir(tmp_path, "filled")
    with pytest.raises(d.ModelMismatch, match="no imgsearch model record"):
        filled.open(SPEC)
    filled.close()


def test_acknowledged_writes_survive_a_killed_process(tmp_path: Path) -> None:
    """upsert / set_payload / delete return, then the process dies without close()."""
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from search_gateway.store.edge_store import EdgeStore
        from tests.test_store_qdrant import IDS, POINTS, SPEC
        s = EdgeStore.open_dir(Path({str(tmp_path)!r}), "images")
        s.open(SPEC)
        s.upsert(POINTS)
        s.set_payload(IDS[3], {{"tags": ["kept"]}})
        s.delete_ids([IDS[4]])
        os._exit(0)  # no close(), no flush, no atexit
        """
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True, timeout=120)

    s = EdgeStore.open_dir(tmp_path, "images")
    s.open(SPEC)
    assert s.count() == N - 1
    got = s.get([IDS[0], IDS[3], IDS[4]], with_vectors=True)
    assert [p.id for p in got] == [IDS[0], IDS[3]]
    assert got[1].payload[d.TAGS] == ["kept"]
    np.testing.assert_allclose(got[0].vector, POINTS[0].vector, atol=1e-6)
    assert indexes(s.search_caption("red jacket", k=2)) in ([0, 21], [21, 0])
    s.close()


def test_a_read_only_session_says_so_and_may_end_without_close(tmp_path: Path) -> None:
    """`wrote` is what lets the CLI's read-only commands skip close() (and its
    flush) before os._exit: the next process opens the same, intact shard."""
    s = EdgeStore.open_dir(tmp_path, "images")
    s.open(SPEC)
    assert s.wrote  # created the shard
    s.upsert(POINTS)
    s.close()
    labeller = EdgeStore.open_dir(tmp_path, "images")
    labeller.open(SPEC)  # these points lack near_group: labelled once, at this open
    assert labeller.wrote
    labeller.close()
    reader = EdgeStore.open_dir(tmp_path, "images")
    reader.open(SPEC)
    assert reader.count() == N and not reader.wrote
    reader.close()
    script = textwrap.dedent(
        f"""
        import os
        from pathlib import Path
        from search_gateway.store.edge_store import EdgeStore
        from tests.test_store_qdrant import SPEC
        s = EdgeStore.open_dir(Path({str(tmp_path)!r}), "images")
        s.open(SPEC)
        assert s.count() == {N} and not s.wrote
        os._exit(0)  # read only: no close()
        """
    )
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-c", script], cwd=root, check=True, timeout=120)
    again = EdgeStore.open_dir(tmp_path, "images")  # the lock went with the process
    again.open(SPEC)
    assert again.count() == N
    again.set_payload(IDS[1], {"tags": ["x"]})
    assert again.wrote
    again.close()


def test_upsert_without_caption_drops_the_old_terms(store: EdgeStore) -> None:
    bare = {k: v for k, v in POINTS[12].payload.items() if k != d.CAPTION}
    store.upsert([d.StoredPoint(IDS[12], bare, POINTS[12].vector)])
    assert 12 not in indexes(store.search_caption("snow", k=5))


def test_calls_after_close_fail_clearly(backend: EdgeBackend) -> None:
    s = _filled(backend)
    s.close()
    with pytest.raises(RuntimeError, match="closed"):
        s.count()


def test_optimize_builds_the_index_without_changing_answers(tmp_path: Path) -> None:
    tuning = EdgeTuning(optimize_after_points=25, hnsw_ef=64)
    s = EdgeStore.open_dir(tmp_path, "images", tuning)
    s.open(SPEC)
    s.upsert(POINTS[:10])
    before = s.search(POINTS[0].vector, k=5)
    s.upsert(POINTS[10:])  # crosses optimize_after_points: optimize() runs
    assert s._unoptimized == 0
    after = s.search(POINTS[0].vector, k=5)
    assert indexes(after) == indexes(before)
    assert s.count() == N
    s.close()


# --- filter conversion (pure) ---------------------------------------------------------


def test_bool_match_uses_a_real_boolean() -> None:
    # qdrant-edge-py reads a Python bool as 0/1; numpy.bool_ stays a boolean.
    cond = to_edge_filter(d.Filter(must=[d.Match(d.CAPTION_PENDING, True)])).must[0]
    assert cond.key == d.CAPTION_PENDING
    assert cond.match.value is True or bool(cond.match.value) is True
    assert type(cond.match.value) is not int


def test_filter_conversion_keeps_the_structure() -> None:
    f = d.Filter(
        must=[
            d.Match(d.CAMERA_ID, "cam-1"),
            d.Filter(should=[d.Range(d.WIDTH, gte=10), d.TextMatch(d.CAPTION, "red")]),
        ],
        must_not=[d.MatchAny(d.TAGS, ("a", "b"))],
    )
    out = to_edge_filter(f)
    assert [c.key for c in out.must[:1]] == [d.CAMERA_ID]
    assert out.must[0].match.value == "cam-1"
    nested = out.must[1]
    assert isinstance(nested, qe.Filter)
    assert nested.should[0].range.gte == 10
    assert nested.should[1].match.text == "red"
    assert out.must_not[0].match.value == ["a", "b"]
    assert out.should is None


def test_datetime_and_geo_conversion() -> None:
    f = d.Filter(
        must=[
            d.DatetimeRange(d.TIMESTAMP, gte=datetime(2024, 5, 1, 2, tzinfo=UTC)),
            d.GeoRadius(d.LOCATION, 48.85, 2.35, 1000),
        ]
    )
    out = to_edge_filter(f)
    assert out.must[0].range.gte in ("2024-05-01T02:00:00Z", "2024-05-01 02:00:00 UTC")
    geo = out.must[1].geo_radius
    assert (geo.center.lat, geo.center.lon, geo.radius) == (48.85, 2.35, 1000.0)


def test_combine_nests_the_user_filter_and_excludes_ids() -> None:
    assert combine(None) is None
    assert combine(d.Filter()) is None
    f = d.Filter(should=[d.Match(d.FORMAT, "png")])
    alone = combine(f)
    assert alone is not None and alone.should is not None and alone.must is None
    both = combine(f, [IDS[0]])
    assert both is not None
    assert isinstance(both.must[0], qe.Filter) and both.must[0].should is not None
    assert {str(i) for i in both.must_not[0].point_ids} == {IDS[0]}
    only_ids = combine(None, [IDS[1]])
    assert only_ids is not None and only_ids.must is None


def test_invalid_filters_are_refused_by_the_converter() -> None:
    with pytest.raises(d.InvalidFilter, match=r"must\[0\] \(range on 'width'\)"):
        to_edge_filter(d.Filter(must=[d.Range(d.WIDTH)]))


# --- engine choice (assemble.build_store) ---------------------------------------------


def test_auto_engine_is_edge_unless_only_local_mode_data_exists(tmp_path: Path) -> None:
    from search_gateway.assemble import build_store, embedded_engine
    from search_gateway.settings import GatewaySettings
    from search_gateway.store.qdrant_store import QdrantStore

    s = GatewaySettings(data_dir=str(tmp_path), collection="images")
    assert embedded_engine(s, tmp_path) == "edge"
    store = build_store(s)
    assert isinstance(store, EdgeStore)
    store.close()

    local = QdrantStore.embedded(tmp_path / "qdrant", "old")
    local.open(SPEC)
    local.close()
    old = GatewaySettings(data_dir=str(tmp_path), collection="old")
    assert embedded_engine(old, tmp_path) == "qdrant-local"
    forced = GatewaySettings(data_dir=str(tmp_path), collection="old", store_engine="edge")
    assert embedded_engine(forced, tmp_path) == "edge"
    pinned = GatewaySettings(data_dir=str(tmp_path), store_engine="qdrant-local")
    assert embedded_engine(pinned, tmp_path) == "qdrant-local"
