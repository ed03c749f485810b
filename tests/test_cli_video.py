"""`imgsearch index` with video files, grouped / time-ordered queries with
page tokens and the event gallery, and `imgsearch watch` (Ctrl-C) - as a user
runs them, embedded, with the offline model."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

from offline_training.scenes import SceneObject
from tests.live_server import MjpegCamera
from tests.synthetic_video import Appearance, encode_cctv
from tests.test_exif import make_photo

pytestmark = pytest.mark.slow  # subprocesses that load the model

T0 = datetime(2024, 5, 7, 9, 0, tzinfo=timezone.utc)


async def imgsearch(
    data_dir: Path, *args: str, camera: MjpegCamera | None = None
) -> tuple[int, str, str]:
    env = dict(os.environ, IMGSEARCH_DATA_DIR=str(data_dir), IMGSEARCH_MODEL="offline-tiny",
               IMGSEARCH_PRETRAINED="", IMGSEARCH_DEVICE="cpu")  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "search_gateway.cli", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    if camera is not None:  # Ctrl-C once the watcher has taken 30 frames
        for _ in range(1200):
            if camera.sent >= 30 or proc.returncode is not None:
                break
            await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_index_videos_and_query_by_event(tmp_path: Path) -> None:
    root = tmp_path / "footage"
    root.mkdir()
    red = SceneObject("circle", "red", "large", "centre")
    encode_cctv(root / "cam1.mp4", 60, [Appearance(red, 20, 30)], fps=5, size=(96, 96),
                creation_time=T0, container_options={"movflags": "+faststart"})  # fmt: skip
    (root / "photo.jpg").write_bytes(make_photo())
    (root / "broken.mkv").write_bytes(b"\x1a\x45\xdf\xa3 not really a video")
    data = tmp_path / "data"
    code, out, err = await imgsearch(data, "index", str(root), "--meta", "camera_id=cam-1",
                                     "--no-progress")  # fmt: skip
    assert code == 3, (out, err)  # the broken video is reported; the rest is indexed
    assert "stored 1 (new 1" in out  # the photo
    assert re.search(r"cam1\.mp4: 60 s of video .* 60 frames sampled: \d+ kept", out), out
    assert "broken.mkv" in out and "FAILED: cannot open video" in out

    html = tmp_path / "events.html"
    code, out, err = await imgsearch(data, "query", "a red circle", "--group", "video,60s",
                                     "--html", str(html))  # fmt: skip
    assert code == 0, err
    first = out.splitlines()[1]
    assert "2024-05-07T09:00:20Z" in first and "2024-05-07T09:00:29Z" in first, out
    assert "cam1.mp4#t=20" in first
    page = html.read_text()
    assert page.count('class="group"') >= 1 and "data:image/webp;base64," in page
    assert "cam1.mp4#t=20" in page

    code, out, err = await imgsearch(data, "query", "a red circle", "--order", "time",
                                     "--relative-cutoff", "2", "-k", "2")  # fmt: skip
    assert code == 0, err
    token = re.search(r"--page-token (\S+)", err)
    assert token, err
    times = re.findall(r"2024-05-07T09:\d\d:\d\dZ", out)
    code, out2, err2 = await imgsearch(data, "query", "a red circle", "--order", "time",
                                       "--relative-cutoff", "2", "-k", "2",
                                       "--page-token", token.group(1))  # fmt: skip
    assert code == 0, err2
    later = re.findall(r"2024-05-07T09:\d\d:\d\dZ", out2)
    assert times == sorted(times) and later and later[0] >= times[-1]
    code, _, err3 = await imgsearch(data, "query", "a blue square", "--order", "time",
                                    "--page-token", token.group(1))  # fmt: skip
    assert code == 2 and "another query" in err3


async def test_watch_until_ctrl_c(tmp_path: Path) -> None:
    def frame(i: int) -> Image.Image:
        return Image.new("RGB", (96, 96), (200, 30, 30) if (i // 10) % 2 else (30, 30, 200))

    with MjpegCamera(frame, fps=10) as cam:
        code, out, err = await imgsearch(tmp_path / "data", "watch", cam.url, "--camera-id",
                                         "door-1", "--interval", "0.5", camera=cam)  # fmt: skip
    assert code == 0, (out, err)
    m = re.search(r"door-1: (\d+) frames stored, (\d+) similar, 0 failed; (\d+) sampled", out)
    assert m, out
    assert int(m.group(1)) >= 1
