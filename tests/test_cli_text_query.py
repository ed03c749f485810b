"""A cold `imgsearch query` loads only what a text query needs (issue 14), run
as the real CLI in its own process: CLIP's text tower through the narrowly
imported open_clip modules, no image tower, none of timm / transformers /
torchvision (nor torch._dynamo, which torchvision imports), no qdrant-client;
and its answers are the full model's answers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli_ux import cli, env_for, write_images

# Runs the CLI's main in-process, then writes the names of every module it imported.
MODULES = """
import sys
from search_gateway.cli import main
code = main(sys.argv[2:])
open(sys.argv[1], "w").write("\\n".join(sorted(sys.modules)))
sys.exit(code)
"""
NOT_FOR_A_TEXT_QUERY = (
    "open_clip",
    "transformers",
    "timm",
    "torchvision",
    "torch._dynamo",
    "sympy",
    "triton",
    "qdrant_client",
    "caption_service",
)


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("textq")
    photos = root / "photos"
    write_images(photos, 8, seed=3)
    data = root / "data"
    run = cli(data, "index", str(photos), "--no-progress")
    assert run.returncode == 0, run.stderr
    return data, photos


def imported_by(data: Path, tmp_path: Path, *args: str) -> tuple[set[str], str]:
    listing = tmp_path / "modules.txt"
    run = subprocess.run(
        [sys.executable, "-c", MODULES, str(listing), *args],
        env=env_for(data),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=data.parent,
    )
    assert run.returncode == 0, run.stderr
    return set(listing.read_text().split()), run.stdout


def heavy(modules: set[str]) -> list[str]:
    prefixes = tuple(f"{name}." for name in NOT_FOR_A_TEXT_QUERY)
    return sorted(m for m in modules if m in NOT_FOR_A_TEXT_QUERY or m.startswith(prefixes))


def hits(stdout: str) -> list[tuple[str, float]]:
    return [(h["id"], h["score"]) for h in json.loads(stdout)["hits"]]


def test_cold_text_query_loads_the_text_tower_only(
    index: tuple[Path, Path], tmp_path: Path
) -> None:
    data, photos = index
    modules, out = imported_by(data, tmp_path, "query", "a red square", "-k", "5", "--json")
    assert "embedder_service.text_tower" in modules
    assert "embedder_service._open_clip_narrow.model" in modules
    assert heavy(modules) == []
    cold = hits(out)
    assert len(cold) == 5

    # The reference: a warm daemon answers the query with its text tower, then
    # loads the full model for an image search and answers the same text
    # query with the full model's text tower.
    warm = tmp_path / "warm"
    shutil.copytree(data, warm)
    first = cli(warm, "--warm", "--warm-idle", "60", "query", "a red square", "-k", "5", "--json")
    try:
        assert first.returncode == 0, first.stderr
        assert (warm / "cli.sock").exists()  # the commands below go to that daemon
        assert hits(first.stdout) == cold
        image = cli(warm, "similar", str(photos / "img0000.png"))
        assert image.returncode == 0, image.stderr
        full = cli(warm, "query", "a red square", "-k", "5", "--json")
        assert full.returncode == 0, full.stderr
        assert hits(full.stdout) == cold
    finally:
        assert cli(warm, "daemon", "stop").returncode == 0


def test_without_a_cached_identity_the_text_tower_checks_the_model(
    index: tuple[Path, Path], tmp_path: Path
) -> None:
    """An index written by another process (no model_identity.json): the text
    tower answers the model check of a query, and the cache is written."""
    data = tmp_path / "nocache"
    shutil.copytree(index[0], data)
    (data / "model_identity.json").unlink()
    modules, out = imported_by(data, tmp_path, "query", "a red square", "-k", "5", "--json")
    assert heavy(modules) == [] and "embedder_service.text_tower" in modules
    assert len(hits(out)) == 5
    assert (data / "model_identity.json").exists()
    modules, _ = imported_by(data, tmp_path, "stats")
    assert "torch" not in modules  # the cache answers again


def test_image_commands_still_load_the_full_model(index: tuple[Path, Path], tmp_path: Path) -> None:
    data, photos = index
    modules, out = imported_by(data, tmp_path, "similar", str(photos / "img0001.png"), "-k", "3")
    assert "open_clip" in modules  # the whole model: both towers
    assert "embedder_service.text_tower" not in modules
    assert "img0001.png" in out


def test_read_only_commands_leave_the_index_for_the_next_writer(
    index: tuple[Path, Path], tmp_path: Path
) -> None:
    """query/stats end without closing the store (nothing written); a delete,
    which writes, still closes it; each next process finds it intact."""
    data = tmp_path / "copy"
    shutil.copytree(index[0], data)
    first = hits(cli(data, "query", "a red square", "-k", "8", "--json").stdout)
    assert json.loads(cli(data, "stats", "--json").stdout)["count"] == 8
    gone = first[0][0]
    deleted = cli(data, "delete", "--id", gone)
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(cli(data, "stats", "--json").stdout)["count"] == 7
    after = hits(cli(data, "query", "a red square", "-k", "8", "--json").stdout)
    assert after == first[1:]
