"""Video frames, EXIF photos, live streams and result shaping through the real
gateway over gRPC on loopback (offline-tiny model in the gateway's process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

from imgsearch.errors import ImgsearchError
from offline_models.registry import OFFLINE_MODEL_NAME
from offline_training.scenes import SceneObject
from search_gateway import domain as d
from search_gateway.core import SearchQuery
from search_gateway.events import ResultShape
from search_gateway.ingest import FrameRef, IngestItem, IngestStatus
from search_gateway.media.index_video import index_video
from search_gateway.media.stream import LiveStream
from search_gateway.media.watch import watch
from search_gateway.settings import GatewaySettings
from search_gateway.thumbnails import media_type
from tests.live_server import MjpegCamera
from tests.synthetic_video import Appearance, encode_cctv
from tests.test_exif import PARIS, make_photo

T0 = datetime(2024, 5, 7, 9, 0, tzinfo=timezone.utc)
RED = SceneObject("circle", "red", "large", "centre")
BLUE = SceneObject("triangle", "blue", "large", "left")


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[object]:
    from search_gateway.remote_api import RemoteGateway
    from search_gateway.server import start_gateway_server

    settings = GatewaySettings(
        data_dir=str(tmp_path / "data"), collection="video", model=OFFLINE_MODEL_NAME,
        pretrained="", captions=False, host="127.0.0.1", port=0, metrics_port=-1,
    )  # fmt: skip
    server = await start_gateway_server(settings)
    client = RemoteGateway(f"127.0.0.1:{server.port}")
    try:
        yield client
    finally:
        await client.close()
        await server.stop(1)


def _video(tmp_path: Path, name: str = "cam.mp4") -> Path:
    return encode_cctv(
        tmp_path / name, 90, [Appearance(RED, 20, 30), Appearance(BLUE, 60, 70)], fps=5,
        size=(96, 96), noise=3.0, creation_time=T0, container_options={"movflags": "+faststart"},
    )  # fmt: skip


async def test_video_through_the_gateway(gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    video = _video(tmp_path)
    report = await index_video(gateway, video, {"camera_id": "cam-7"})
    assert report.error is None and report.sampled == 90
    assert 5 <= report.added <= 12 and report.similar == 90 - report.added
    again = await index_video(gateway, video, {"camera_id": "cam-7"})
    assert again.added == 0 and again.failed == 0

    q = SearchQuery(text="a red circle", k=3)
    page = await gateway.search_page(q, ResultShape(group_by="video", window_s=60))
    first = page.groups[0]
    assert first.start == "2024-05-07T09:00:20Z" and first.end == "2024-05-07T09:00:29Z"
    assert first.best.payload["frame_offset_s"] == 20.0
    assert first.best.payload["camera_id"] == "cam-7"
    assert first.best.payload["timestamp_source"] == "video"

    by_camera = await gateway.search_page(q, ResultShape(group_by="camera", window_s=60))
    assert by_camera.groups[0].key == "cam-7"

    # Time order, one hit a page: tokens continue in order, unaffected by new points.
    shape = ResultShape(order="time", relative_cutoff=2.0)
    seen: list[float] = []
    token = None
    for n in range(report.added):
        page = await gateway.search_page(
            SearchQuery(text="a red circle", k=1),
            ResultShape(**{**shape.__dict__, "page_token": token}),
        )
        seen += [h.payload["frame_offset_s"] for h in page.hits]
        token = page.next_page_token
        if n == 1:  # a new point between pages is not seen by this walk
            extra = [
                IngestItem(
                    data=make_photo(),
                    uri="late.jpg",
                    metadata={"timestamp": "2024-05-07T09:00:45Z"},
                )
            ]
            assert [o.status async for o in gateway.ingest(_aiter(extra))] == [IngestStatus.ADDED]
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == report.added

    thumb = await gateway.thumbnail(first.best.id)
    assert thumb[:4] == b"RIFF"
    with pytest.raises(ImgsearchError, match="no thumbnail"):
        await gateway.thumbnail("00000000-0000-0000-0000-000000000001")
    deleted = await gateway.delete(filter=d.Filter(must=(d.Match("camera_id", "cam-7"),)))
    assert deleted == report.added
    with pytest.raises(ImgsearchError, match="no thumbnail"):
        await gateway.thumbnail(first.best.id)


async def _aiter(items: list[IngestItem]) -> AsyncIterator[IngestItem]:
    for item in items:
        yield item


async def test_exif_photos_and_bad_frames(gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    items = [
        IngestItem(data=make_photo(gps=PARIS), uri="paris.jpg"),
        IngestItem(data=make_photo(when="0000:00:00 00:00:00"), uri="broken.jpg"),
        IngestItem(
            data=make_photo(), uri="mine.jpg", metadata={"timestamp": "2020-01-01T00:00:00Z"}
        ),
        IngestItem(
            data=make_photo(fmt="PNG", make="x"),
            uri="bad-frame.png",
            frame=FrameRef("not-a-hash", 1.0),
        ),
        IngestItem(data=make_photo(fmt="WEBP"), uri="sneaky.webp", metadata={"video_sha256": "x"}),
    ]
    out = [o async for o in gateway.ingest(_aiter(items))]
    assert [o.status for o in out] == [IngestStatus.ADDED] * 3 + [IngestStatus.FAILED] * 2
    assert "video_sha256" in out[3].reason and "reserved" in out[4].reason
    hits, _ = await gateway.get([o.id for o in out[:3]])
    by_uri = {h.uri: h.payload for h in hits}
    assert by_uri["paris.jpg"]["timestamp"] == "2024-05-01T12:30:00Z"
    assert by_uri["paris.jpg"]["timestamp_source"] == "exif"
    assert by_uri["paris.jpg"]["location"]["lat"] == pytest.approx(48.858, abs=1e-3)
    assert by_uri["paris.jpg"]["camera"] == "Canon EOS 5D"
    assert "timestamp" not in by_uri["broken.jpg"]  # bytes: no mtime to fall back on
    assert by_uri["broken.jpg"]["camera"] == "Canon EOS 5D"
    assert by_uri["mine.jpg"]["timestamp"] == "2020-01-01T00:00:00Z"
    assert by_uri["mine.jpg"]["timestamp_source"] == "user"
    for o in out[:3]:
        assert media_type(await gateway.thumbnail(o.id)) in ("image/jpeg", "image/webp")


async def test_corrupt_video_keeps_frames_before_the_damage(gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    video = _video(tmp_path)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    report = await index_video(gateway, cut)
    assert report.error is not None and "truncated" in report.error
    assert report.added >= 2 and report.failed == 0


async def test_live_stream_through_the_gateway(gateway) -> None:  # type: ignore[no-untyped-def]
    def frame(i: int) -> Image.Image:
        colour = (220, 30, 30) if (i // 15) % 2 else (35, 70, 225)
        img = Image.new("RGB", (96, 96), (135, 135, 135))
        img.paste(colour, (30, 30, 66, 66))
        return img

    with MjpegCamera(frame, fps=10) as cam:
        stream = LiveStream(cam.url.replace("http://", "http://user:secret@"), interval_s=0.5,
                            read_timeout_s=2)  # fmt: skip

        async def stop_later() -> None:
            await asyncio.sleep(4)
            await asyncio.to_thread(stream.stop)

        stopper = asyncio.ensure_future(stop_later())
        report = await watch(gateway, stream, "door-1")
        await stopper
    assert report.added >= 2 and report.failed == 0
    assert report.added + report.similar == stream.stats.sampled - stream.stats.dropped
    page = await gateway.search_page(SearchQuery(text="a red square", k=10),
                                     ResultShape(order="time", relative_cutoff=2.0))  # fmt: skip
    assert page.hits and all(h.payload["camera_id"] == "door-1" for h in page.hits)
    assert all("secret" not in h.uri for h in page.hits)
