"""Video files: sampling, decode strategy, container metadata, damage, frame filter."""

from __future__ import annotations

import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from offline_training.scenes import SceneObject
from search_gateway.media.frame_filter import FrameChangeFilter
from search_gateway.media.ids import file_sha256, frame_key, is_video_path
from search_gateway.media.video import VideoSampler, container_metadata, parse_iso6709
from tests.synthetic_video import Appearance, encode_cctv

RED = SceneObject("circle", "red", "large", "centre")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def cctv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "cam.mp4"
    return encode_cctv(
        path, 20, [Appearance(RED, 8, 12)], creation_time=T0, location="+48.8577+002.2950+035.0/",
        container_options={"movflags": "+faststart"},
    )


def test_keyframe_only_decoding_at_one_second(cctv: Path) -> None:
    sampler = VideoSampler(cctv, interval_s=1.0)
    frames = list(sampler)
    rep = sampler.report
    assert [f.offset_s for f in frames] == [float(i) for i in range(20)]
    assert rep.error is None and rep.duration_s == pytest.approx(20, abs=0.3)
    # Keyframe every second, one sample per second: only keyframes are decoded
    # (the last GOP is decoded in full: nothing follows it to compare against).
    assert rep.keyframe_only_gops == 19 and rep.full_gops == 1
    assert rep.decoded <= 19 + 5
    assert max(frames[0].image.size) <= 384
    # The frame at 10 s shows the red object; the one at 2 s does not.
    def red(i: int) -> float:
        arr = np.asarray(frames[i].image, dtype=np.int32)
        return float(((arr[..., 0] > 180) & (arr[..., 1] < 80)).mean())
    assert red(10) > 0.05 > red(2)


def test_denser_and_sparser_sampling(cctv: Path) -> None:
    half = VideoSampler(cctv, interval_s=0.5)
    offsets = [f.offset_s for f in half]
    assert len(offsets) == 40 and half.report.full_gops == 20  # must decode inside GOPs
    # At 5 fps a frame lies within half a frame (0.1 s) of every 0.5 s grid point.
    assert all(abs(o - 0.5 * i) <= 0.1 + 1e-6 for i, o in enumerate(offsets)), offsets
    sparse = VideoSampler(cctv, interval_s=5.0)
    assert [f.offset_s for f in sparse] == [0.0, 5.0, 10.0, 15.0]
    assert sparse.report.decoded <= 25


def test_container_metadata(cctv: Path) -> None:
    sampler = VideoSampler(cctv)
    list(sampler)
    md = sampler.report.metadata
    assert md is not None and md.source == "video"
    assert md.timestamp == T0 and md.lat == pytest.approx(48.8577) and md.altitude_m == 35.0
    assert container_metadata({"creation_time": "1970-01-01T00:00:00.000000Z"}).timestamp is None
    assert container_metadata({"location": "garbage"}).lat is None
    assert parse_iso6709("-33.86+151.20/") == (-33.86, 151.2, None)
    assert parse_iso6709("+95.0+010.0/") is None


def test_truncated_video_keeps_frames_before_the_damage(cctv: Path, tmp_path: Path) -> None:
    data = cctv.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    sampler = VideoSampler(cut)
    frames = list(sampler)
    assert 3 <= len(frames) < 20
    assert sampler.report.error is not None and "truncated" in sampler.report.error
    assert [f.offset_s for f in frames] == [float(i) for i in range(len(frames))]


@pytest.mark.parametrize("content", [b"", b"not a video" * 100])
def test_unreadable_video_reports_why(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    sampler = VideoSampler(bad)
    assert list(sampler) == []
    assert sampler.report.error is not None and "cannot open" in sampler.report.error
    missing = VideoSampler(tmp_path / "missing.mkv")
    assert list(missing) == [] and "cannot open" in str(missing.report.error)


@pytest.mark.parametrize(("suffix", "codec"), [(".mkv", "libx264"), (".webm", "libvpx"), (".avi", "mpeg4")])
def test_other_containers(tmp_path: Path, suffix: str, codec: str) -> None:
    path = encode_cctv(tmp_path / f"v{suffix}", 4, codec=codec)
    assert is_video_path(path)
    sampler = VideoSampler(path)
    assert [f.offset_s for f in sampler] == [0.0, 1.0, 2.0, 3.0]
    assert sampler.report.error is None


def test_memory_stays_flat_for_longer_videos(tmp_path: Path) -> None:
    def peak(seconds: int) -> int:
        path = encode_cctv(tmp_path / f"{seconds}.mkv", seconds, size=(320, 240))
        tracemalloc.start()
        n = sum(1 for _ in VideoSampler(path))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert n == seconds
        return top

    short, long = peak(10), peak(120)
    assert long < short * 2 + 256 * 1024, (short, long)


def test_content_ids(cctv: Path, tmp_path: Path) -> None:
    sha = file_sha256(cctv)
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(cctv.read_bytes())
    assert file_sha256(copy) == sha
    assert frame_key(sha, 1.0) == frame_key(sha, 1.0004) != frame_key(sha, 2.0)


def test_change_filter_keeps_changes_and_spans() -> None:
    flt: FrameChangeFilter[int] = FrameChangeFilter(threshold=0.95, max_gap_s=10)
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    near_a = np.array([0.999, 0.0447])
    kept = []
    for t in range(25):
        v = b if 5 <= t < 8 else (near_a if t % 2 else a)
        k = flt.push(t, v, float(t))
        if k is not None:
            kept.append((k.item, k.start_s, k.end_s))
    last = flt.finish()
    assert last is not None
    kept.append((last.item, last.start_s, last.end_s))
    # a from 0-4, b 5-7, a again 8-17, then max_gap forces a new keep at 18.
    assert kept == [(0, 0.0, 4.0), (5, 5.0, 7.0), (8, 8.0, 17.0), (18, 18.0, 24.0)]
    assert flt.seen == 25 and flt.dropped == 21
    with pytest.raises(ValueError):
        FrameChangeFilter(threshold=2.0)
