"""bench/gpu.sh must not rot on machines without a GPU: its dry run (the same
code on the CPU, a tiny model, sub-second windows) runs here, and the device
pipeline it measures is checked against the model's own CPU path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedder_service.model import ClipEmbedder
from embedder_service.runtime_gpu import DeviceJpegPipeline
from tests.conftest import encode_image, pattern

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_dry_run_prints_every_section() -> None:
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=str(ROOT))
    env.pop("OUT", None)
    proc = subprocess.run(
        ["bash", "bench/gpu.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    sections = ("== 1. model only", "== 2. ingest of camera JPEGs", "== 3. service", "done")
    for section in (*sections, "== 4. device decode vs the CPU path", "min cosine vs the CPU path"):
        assert section in out, out
    assert "errors 0" in out and "median/ideal" in out and "mean batch" in out
    # The service section serves with image_decode=device, then cpu (A/B).
    rows = [
        line.split() for line in out.splitlines() if re.match(r"\s*(device|cpu)\s+\d+x\d+\s", line)
    ]
    assert {r[0] for r in rows} == {"device", "cpu"}, out
    assert all(r[6] == ("100%" if r[0] == "device" else "0%") for r in rows), out


def test_device_pipeline_matches_the_cpu_path(tiny_clip: tuple[Path, Path]) -> None:
    """decode_jpeg + on-device resize/crop/normalise give the vectors of the
    PIL path (close, not equal: two decoders and resamplers), keep order, and send what
    nvJPEG/libjpeg cannot read (a PNG here) to the CPU fallback, and report
    undecodable bytes by index."""
    config, checkpoint = tiny_clip
    model = ClipEmbedder(str(config), str(checkpoint), runtime="eager")
    jpegs = [encode_image(pattern(400 + i, size=(96, 72)), quality=95) for i in range(5)]
    png = encode_image(pattern(499, size=(64, 64)), fmt="PNG")
    images = [*jpegs, png, b"\xff\xd8\xffnot really a jpeg"]
    out = DeviceJpegPipeline(model).embed(images)
    assert out.good == [0, 1, 2, 3, 4, 5] and list(out.errors) == [6]
    assert out.gpu_decoded == 5 and out.cpu_fallback == 1
    ref = np.stack(model.embed_images(images[:6]).vectors)  # type: ignore[arg-type]
    cos = np.sum(out.vectors * ref, axis=1)
    assert cos.min() >= 0.999, cos
