"""Quality: a 10-minute synthetic CCTV video where a red circle is in view only
from 300 s to 360 s. The query for it returns that window first, as one event
whose span matches (+-2 s); a time-ordered query returns its frames in order;
indexing the video again adds nothing. Embedded gateway, offline-tiny model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from offline_models.registry import OFFLINE_MODEL_NAME
from offline_training.scenes import SceneObject
from search_gateway.core import SearchQuery
from search_gateway.events import ResultShape, parse_time
from search_gateway.media.index_video import index_video
from tests.synthetic_video import Appearance, encode_cctv

T0 = datetime(2024, 5, 7, 14, 0, tzinfo=timezone.utc)
TARGET = (300.0, 360.0)
RED = [
    Appearance(SceneObject("circle", "red", "large", pos), s, s + 20)
    for pos, s in (("left", 300), ("centre", 320), ("right", 340))
]
DISTRACTORS = [
    Appearance(SceneObject("triangle", "blue", "large", "centre"), 60, 90),
    Appearance(SceneObject("cross", "green", "large", "left"), 200, 260),
    Appearance(SceneObject("star", "yellow", "large", "right"), 420, 450),
    Appearance(SceneObject("square", "purple", "large", "bottom"), 500, 560),
]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cctv") / "cam03.mp4"
    return encode_cctv(path, 600, RED + DISTRACTORS, fps=5, size=(96, 96), noise=3.0,
                       creation_time=T0, container_options={"movflags": "+faststart"})  # fmt: skip


@pytest.fixture(scope="module")
def indexed(video: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from search_gateway.assemble import build_core
    from search_gateway.settings import GatewaySettings

    settings = GatewaySettings(
        data_dir=str(tmp_path_factory.mktemp("data")), collection="cctv", model=OFFLINE_MODEL_NAME,
        pretrained="", captions=False, metrics_port=-1,
    )  # fmt: skip
    loop = asyncio.new_event_loop()
    core = loop.run_until_complete(build_core(settings, with_captioner=False))
    first = loop.run_until_complete(index_video(core, video, {"camera_id": "cam-03"}))
    again = loop.run_until_complete(index_video(core, video, {"camera_id": "cam-03"}))
    yield {"core": core, "loop": loop, "first": first, "again": again}
    loop.run_until_complete(core.close())
    loop.close()


def _search(indexed: dict[str, Any], text: str, shape: ResultShape, k: int = 5) -> Any:
    core = indexed["core"]
    return indexed["loop"].run_until_complete(core.search_page(SearchQuery(text=text, k=k), shape))


def _offset(ts: str | None) -> float:
    t = parse_time(ts)
    assert t is not None
    return (t - T0).total_seconds()


def test_static_scene_is_not_indexed_600_times(indexed: dict[str, Any]) -> None:
    rep = indexed["first"]
    assert rep.error is None and rep.sampled == 600
    # Scene changes: 4 distractors and 3 red positions in and out, plus one keep a minute.
    assert 12 <= rep.added <= 40, rep
    assert rep.similar == 600 - rep.added
    again = indexed["again"]
    assert again.added == 0 and again.failed == 0, again


def test_red_circle_window_comes_first_as_one_event(indexed: dict[str, Any]) -> None:
    page = _search(indexed, "a red circle", ResultShape(group_by="video", window_s=60))
    best = page.groups[0]
    assert abs(_offset(best.start) - TARGET[0]) <= 2, best
    assert abs(_offset(best.end) - TARGET[1]) <= 2, best
    assert best.size >= 3
    assert best.best.uri.endswith("cam03.mp4")
    assert TARGET[0] - 2 <= best.best.payload["frame_offset_s"] <= TARGET[1]
    # Every other event lies outside the window.
    for g in page.groups[1:]:
        assert _offset(g.end) < TARGET[0] or _offset(g.start) > TARGET[1]


def test_time_order_returns_the_window_frames_in_order(indexed: dict[str, Any]) -> None:
    page = _search(indexed, "a red circle", ResultShape(order="time", relative_cutoff=0.05), k=20)
    offsets = [h.payload["frame_offset_s"] for h in page.hits]
    assert offsets == sorted(offsets) and len(offsets) >= 3
    assert all(TARGET[0] - 2 <= o < TARGET[1] for o in offsets), offsets
    desc = _search(
        indexed, "a red circle", ResultShape(order="time_desc", relative_cutoff=0.05), k=20
    )
    assert [h.payload["frame_offset_s"] for h in desc.hits] == offsets[::-1]


def test_frame_payload_and_thumbnail(indexed: dict[str, Any]) -> None:
    page = _search(indexed, "a red circle", ResultShape(order="time", relative_cutoff=0.05))
    hit = page.hits[0]
    p = hit.payload
    assert p["camera_id"] == "cam-03" and p["media"] == "video_frame"
    assert p["timestamp_source"] == "video"
    assert parse_time(p["timestamp"]) == T0 + timedelta(seconds=p["frame_offset_s"])
    assert p["frame_end_s"] >= p["frame_offset_s"]
    thumb = indexed["loop"].run_until_complete(indexed["core"].thumbnail(hit.id))
    assert thumb[:4] == b"RIFF"
