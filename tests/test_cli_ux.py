"""Issue 14 as a user meets it: the real `imgsearch` command run as a
subprocess (embedded, the project's offline-tiny models), for Ctrl-C, enriching,
mistakes that say so, ids and paging, and commands that load no model."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli_process import ctrl_c_twice, read_stderr_until

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = "offline-tiny"


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSEARCH_")}
    env.update(
        IMGSEARCH_MODEL=OFFLINE,
        IMGSEARCH_PRETRAINED="",
        IMGSEARCH_CAPTION_MODEL=OFFLINE,
        IMGSEARCH_DATA_DIR=str(data_dir),
        IMGSEARCH_DEVICE="cpu",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def cli(data_dir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "search_gateway.cli", *args],
        env=env_for(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=data_dir.parent,
    )


def start(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "search_gateway.cli", *args],
        env=env_for(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=data_dir.parent,
    )


def write_images(folder: Path, n: int, seed: int = 0, side: int = 48) -> list[Path]:
    """n distinct small PNGs (random blocks of colour)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        pixels = np.kron(blocks, np.ones((side // 4, side // 4, 1), dtype=np.uint8))
        path = folder / f"img{i:04d}.png"
        Image.fromarray(pixels).save(path)
        out.append(path)
    return out


def wait_for_progress(proc: subprocess.Popen[str], done: int, timeout: float = 240) -> str:
    """Reads the progress bar on stderr until `done` images are through."""

    def reached(seen: str) -> bool:
        counts = [int(m) for m in re.findall(r"indexing:.*?\|\s*(\d+)/", seen)]
        return bool(counts) and max(counts) >= done

    return read_stderr_until(proc, reached, f"{done} images", timeout)


def summary_number(text: str, label: str) -> int:
    m = re.search(rf"{label} (\d+)", text)
    assert m, f"no '{label} N' in {text!r}"
    return int(m.group(1))


# -- Ctrl-C ----------------------------------------------------------------------------
def test_ctrl_c_stops_index_fast_and_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    images = write_images(tmp_path / "photos", 400)
    data = tmp_path / "data"
    proc = start(data, "index", str(tmp_path / "photos"), "--batch-size", "4")
    wait_for_progress(proc, 8)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _err = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode == 130
    assert took <= 2.0, f"index took {took:.2f} s to stop after Ctrl-C"
    done = summary_number(out, "interrupted after")
    stored = summary_number(out, "stored")
    assert 8 <= done < len(images) and stored >= 8
    # Every image reported stored is in the index, and a re-run resumes.
    stats = json.loads(cli(data, "stats", "--json").stdout)
    assert stats["count"] >= stored
    again = cli(data, "index", str(tmp_path / "photos"), "--no-progress")
    assert again.returncode == 0, again.stderr
    assert summary_number(again.stdout, "already present") >= stored
    assert json.loads(cli(data, "stats", "--json").stdout)["count"] == len(images)


def test_second_ctrl_c_quits_at_once(tmp_path: Path) -> None:
    write_images(tmp_path / "photos", 200)
    proc = start(tmp_path / "data", "index", str(tmp_path / "photos"), "--batch-size", "4")
    wait_for_progress(proc, 4)
    took = ctrl_c_twice(proc)
    assert took <= 1.0, f"took {took:.2f} s after the second Ctrl-C"


def test_ctrl_c_stops_serve(tmp_path: Path) -> None:
    proc = start(tmp_path / "data", "serve", "--port", "0", "--metrics-port", "-1")
    assert proc.stderr is not None
    deadline = time.monotonic() + 240
    line = ""
    while "listening" not in line and time.monotonic() < deadline:
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "serve exited before listening"
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert time.monotonic() - sent <= 2.0


# -- everything else on one small index ------------------------------------------------------
@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An index of 12 images with metadata; returns (data dir, photos)."""
    root = tmp_path_factory.mktemp("ux")
    photos = root / "photos"
    write_images(photos, 12, seed=1)
    sidecar = photos / "meta.jsonl"
    lines = [{"file": f"img{i:04d}.png", "metadata": {"camera_id": i % 3}} for i in range(12)]
    lines.append({"file": "not-there.png", "metadata": {"camera_id": 9}})
    sidecar.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    data = root / "data"
    run = cli(data, "index", str(photos), "--no-progress", "--meta", "ts=2024-05-01T10:00",
              "--meta-jsonl", str(sidecar))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "not-there.png, which is not an image under the folder" in run.stderr
    assert "stored 12 (new 12 · near-duplicate 0) · skipped 0" in run.stdout
    return data, photos


def test_query_against_no_index_says_so_and_binds_nothing(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    run = cli(data, "query", "a red circle")
    assert run.returncode == 1
    assert "does not exist yet" in run.stderr and "imgsearch index" in run.stderr
    assert "Traceback" not in run.stderr
    assert not data.exists()
    stats = cli(data, "stats")
    assert stats.returncode == 0 and "does not exist yet" in stats.stdout
    assert not data.exists()


def test_meta_alias_is_the_filter_alias(indexed: tuple[Path, Path]) -> None:
    data, _ = indexed
    run = cli(data, "query", "x", "-k", "20", "--json", "--filter", "ts>=2024-05-01")
    hits = json.loads(run.stdout)["hits"]
    assert len(hits) == 12
    assert all(h["payload"]["timestamp"] == "2024-05-01T10:00:00Z" for h in hits)
    assert all("ts" not in h["payload"] for h in hits)


def test_mistakes_say_so(indexed: tuple[Path, Path]) -> None:
    data, _ = indexed
    bad = cli(data, "query", "x", "--filter", "camera_id==7")
    assert bad.returncode == 2
    assert "'==' is not an operator: use '='" in bad.stderr
    caret = bad.stderr.splitlines()[-1]
    assert caret.index("^") - 2 == "camera_id==7".index("==")
    typo = cli(data, "query", "x", "--filter", "camra_id=1")
    assert typo.returncode == 0 and "no results" in typo.stdout
    assert "no stored image has a field 'camra_id'" in typo.stderr
    assert "camera_id" in typo.stderr  # names the fields that do exist
    past = cli(data, "query", "x", "--offset", "50")
    assert "--offset 50 is past the last result (12 in all)" in past.stderr


def test_ids_ranks_and_dry_run(indexed: tuple[Path, Path]) -> None:
    data, _ = indexed
    first = cli(data, "query", "x", "-k", "4").stdout.splitlines()
    second = cli(data, "query", "x", "-k", "4", "--offset", "4").stdout.splitlines()
    assert first[0].split()[:3] == ["rank", "score", "id"]
    assert [r.split()[0] for r in first[1:]] == ["1", "2", "3", "4"]
    assert [r.split()[0] for r in second[1:]] == ["5", "6", "7", "8"]
    full = json.loads(cli(data, "query", "x", "-k", "1", "--json").stdout)["hits"][0]["id"]
    short = first[1].split()[2]
    assert full.startswith(short) and len(short) == 8
    similar = cli(data, "similar", "--id", short, "-k", "3", "--json")
    assert similar.returncode == 0, similar.stderr
    assert full not in [h["id"] for h in json.loads(similar.stdout)["hits"]]
    got = json.loads(cli(data, "get", short[:6]).stdout)
    assert got[0]["id"] == full
    ambiguous = cli(data, "get", "")
    assert ambiguous.returncode == 2
    dry = cli(data, "delete", "--filter", "camera_id=0", "--dry-run")
    assert dry.returncode == 0 and "would delete 4 points (dry run: nothing deleted)" in dry.stdout
    assert json.loads(cli(data, "stats", "--json").stdout)["count"] == 12


def test_reindex_enriches_metadata_and_captions(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    data, photos = indexed
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    dup = photos.parent / "dup"
    dup.mkdir(exist_ok=True)
    shutil.copy(photos / "img0000.png", dup / "again.png")
    run = cli(copy, "index", str(photos), "--no-progress", "--meta", "site=north",
              "--with-captions")  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "skipped 12 (already present 12" in run.stdout
    assert (
        "updated 12 already-stored images' metadata · queued 12 of them for captions" in run.stdout
    )
    hits = json.loads(cli(copy, "query", "x", "-k", "20", "--json").stdout)["hits"]
    assert all(h["payload"]["site"] == "north" and h["caption"] for h in hits)
    assert all(h["payload"]["camera_id"] in (0, 1, 2) for h in hits)  # other keys kept
    copied = cli(copy, "index", str(dup), "--no-progress")
    assert (
        "stored 0 (new 0 · near-duplicate 0) · skipped 1 (already present 0 · identical copy 1)"
        in copied.stdout
    )


NO_MODELS = """
import sys
for name in ("torch", "open_clip", "transformers", "torchvision", "qdrant_client"):
    sys.modules[name] = None  # any import of them fails
from search_gateway.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_commands_that_need_no_model_load_none(indexed: tuple[Path, Path]) -> None:
    data, _ = indexed
    full = json.loads(cli(data, "query", "x", "-k", "1", "--json").stdout)["hits"][0]["id"]
    for args in (
        ["stats"],
        ["get", full[:8]],
        ["similar", "--id", full[:8], "-k", "2"],
        ["delete", "--id", full, "--dry-run"],
    ):
        run = subprocess.run(
            [sys.executable, "-c", NO_MODELS, *args],
            env=env_for(data),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, (args, run.stderr)


def test_offline_first_run_fails_fast_with_the_way_out(tmp_path: Path) -> None:
    write_images(tmp_path / "photos", 2)
    env = env_for(tmp_path / "data")
    for name in ("IMGSEARCH_MODEL", "IMGSEARCH_PRETRAINED", "IMGSEARCH_CAPTION_MODEL"):
        env.pop(name)  # the defaults: ViT-B-32 / laion2b from the hub
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "empty-hf-cache"))
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "search_gateway.cli", "index", str(tmp_path / "photos")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - started
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert "--model offline-tiny" in lines[0] and "--pretrained FILE" in lines[0]
    assert "Hugging Face cache" in lines[0]
    assert took < 15, f"took {took:.1f} s"  # seconds, not a minute of retries


def test_warm_daemon_answers_later_commands(indexed: tuple[Path, Path], tmp_path: Path) -> None:
    data = tmp_path / "warm"
    shutil.copytree(indexed[0], data)

    def timed(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
        started = time.monotonic()
        run = cli(data, *args)
        return time.monotonic() - started, run

    cold, first = timed("query", "x", "-k", "3")  # no daemon yet: loads CLIP itself
    assert first.returncode == 0, first.stderr
    _, _ = timed("--warm", "--warm-idle", "60", "query", "x", "-k", "3")
    try:
        assert (data / "cli.sock").exists()
        warm = [timed("query", "x", "-k", "3") for _ in range(3)]
        assert all(run.stdout == first.stdout for _, run in warm)  # the same answers
        best = min(t for t, _ in warm)
        assert best < cold / 2, f"warm {best:.2f} s vs cold {cold:.2f} s"
        bad = cli(data, "query", "x", "--filter", "camera_id==7")
        assert bad.returncode == 2 and "'==' is not an operator" in bad.stderr
        assert "pid" in cli(data, "daemon", "status").stdout
    finally:
        assert cli(data, "daemon", "stop").returncode == 0
    deadline = time.monotonic() + 30
    while (data / "cli.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (data / "cli.sock").exists()
    assert json.loads(cli(data, "stats", "--json").stdout)["count"] == 12  # embedded again


def test_near_duplicates_point_at_the_representative(tmp_path: Path) -> None:
    """q95 -> q70 -> q40 used to chain; now both later ones name the first."""
    (original,) = write_images(tmp_path / "src", 1, seed=5, side=96)
    photos = tmp_path / "photos"
    photos.mkdir()
    picture = Image.open(original).convert("RGB")
    for quality in (95, 70, 40):
        picture.save(photos / f"q{quality}.jpg", quality=quality)
    data = tmp_path / "data"
    run = cli(data, "index", str(photos), "--no-progress", "--near-duplicates", "0.9")
    assert run.returncode == 0, run.stderr
    assert "stored 3 (new 1 · near-duplicate 2)" in run.stdout
    hits = json.loads(cli(data, "query", "x", "-k", "3", "--json").stdout)["hits"]
    representative = [h for h in hits if "duplicate_of" not in h["payload"]]
    assert len(representative) == 1, hits
    rep_id = representative[0]["id"]
    marked = [h for h in hits if "duplicate_of" in h["payload"]]
    assert len(marked) == 2 and all(h["payload"]["duplicate_of"] == rep_id for h in marked)


def test_ctrl_c_ends_a_query_while_the_model_loads(indexed: tuple[Path, Path]) -> None:
    data, _ = indexed
    proc = start(data, "query", "a red circle")
    time.sleep(1.0)  # importing torch / loading CLIP
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert proc.returncode in (130, -signal.SIGINT)
    assert took <= 1.0, f"took {took:.2f} s"


def test_warm_path_routes_the_daemon_commands() -> None:
    from search_gateway.cli.app import DAEMON_COMMANDS
    from search_gateway.cli.warm_path import ROUTED, command_of, data_dir_of

    assert ROUTED == DAEMON_COMMANDS
    assert command_of(["--data-dir", "query", "stats"]) == "stats"
    assert command_of(["--model", "m", "query", "x"]) == "query"
    assert data_dir_of(["query", "x", "--data-dir", "/d"]) == "/d"
    assert data_dir_of(["--data-dir=/e", "stats"]) == "/e"
