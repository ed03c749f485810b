"""Ctrl-C during the video part of `imgsearch index`, as a user presses it:
the first one stops feeding frames, stores what was answered, prints the
summary and exits 130 within 2 s; a second one quits at once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from offline_training.scenes import SceneObject
from tests.cli_process import ctrl_c_twice, read_stderr_until
from tests.synthetic_video import Appearance, encode_cctv
from tests.test_cli_ux import cli, start
from tests.test_exif import make_photo

pytestmark = pytest.mark.slow  # subprocesses that load the model

SECONDS = 240  # sampled every second: far more than the test lets it index


def budget(seconds: float) -> float:
    """The issue's bar on an idle machine; on a machine loaded past its cores
    (this one is shared) a starved process gets a proportional share, so the
    bar stretches by that factor (the failure message shows both)."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return seconds * max(1.0, load)


def _footage(root: Path, photo: bool) -> Path:
    root.mkdir(parents=True)
    red = SceneObject("circle", "red", "large", "centre")
    encode_cctv(root / "cam.mp4", SECONDS, [Appearance(red, 30, 60)], fps=2, size=(96, 96),
                noise=4.0, container_options={"movflags": "+faststart"})  # fmt: skip
    if photo:  # the images go first; the video part is what is interrupted
        (root / "photo.jpg").write_bytes(make_photo())
    return root


def _wait_for_video_seconds(proc: subprocess.Popen[str], seconds: float) -> str:
    """Reads the progress on stderr until the video is `seconds` in."""

    def reached(seen: str) -> bool:
        done = [float(m) for m in re.findall(r"cam\.mp4: (\d+) s of video", seen)]
        return bool(done) and max(done) >= seconds

    return read_stderr_until(proc, reached, f"{seconds} s of video")


def test_first_ctrl_c_during_a_video_stores_what_was_answered(tmp_path: Path) -> None:
    root = _footage(tmp_path / "footage", photo=True)
    data = tmp_path / "data"
    # --frame-change 1: every sampled frame is kept, so points = frames reported kept.
    proc = start(data, "index", str(root), "--frame-change", "1")
    _wait_for_video_seconds(proc, 20)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 130, (out, err)
    assert took <= budget(2.0), (
        f"index took {took:.2f} s to stop after Ctrl-C (bar {budget(2.0):.1f})"
    )
    assert "stopping:" in err
    m = re.search(r"cam\.mp4: (\d+) s of video .*?(\d+) frames sampled: (\d+) kept, "
                  r"(\d+) similar, (\d+) already present, (\d+) failed \(interrupted", out)  # fmt: skip
    assert m, out
    covered, sampled, kept = int(m.group(1)), int(m.group(2)), int(m.group(3))
    assert 1 <= kept < SECONDS and sampled == kept and int(m.group(6)) == 0
    assert covered <= SECONDS - 1
    # Everything reported is in the index (the photo too), and a re-run finishes the video.
    stored = json.loads(cli(data, "stats", "--json").stdout)["count"]
    assert kept + 1 <= stored < SECONDS + 1
    again = cli(data, "index", str(root), "--no-progress", "--frame-change", "1")
    assert again.returncode == 0, again.stderr
    m = re.search(r"cam\.mp4: .*?(\d+) frames sampled: (\d+) kept, (\d+) similar, (\d+) already", again.stdout)  # fmt: skip
    assert m, again.stdout
    sampled, new, similar, present = (int(g) for g in m.groups())
    assert SECONDS - 2 <= sampled <= SECONDS  # (the last second may hold no sample)
    assert new + similar + present == sampled and new <= sampled - kept
    assert json.loads(cli(data, "stats", "--json").stdout)["count"] == sampled + 1


def test_second_ctrl_c_during_a_video_quits_at_once(tmp_path: Path) -> None:
    root = _footage(tmp_path / "footage", photo=False)
    proc = start(tmp_path / "data", "index", str(root), "--frame-change", "1")
    _wait_for_video_seconds(proc, 10)
    took = ctrl_c_twice(proc)
    assert took <= budget(1.0), f"took {took:.2f} s after the second Ctrl-C (bar {budget(1.0):.1f})"
