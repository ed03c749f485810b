"""The `imgsearch` CLI as a user runs it: embedded by default, and through a
running service suite with --gateway, printing the same results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from search_gateway.cli import find_images
from search_gateway.meta_syntax import parse_meta
from tests.cli_process import run_imgsearch
from tests.gateway_harness import Models, suite
from tests.test_gateway_e2e import image_tree


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from tests.tiny_models import build_tiny_blip, build_tiny_clip

    root = tmp_path_factory.mktemp("cli_models")
    config, checkpoint = build_tiny_clip(root / "clip", name="tiny-clip-cli")
    return Models(config, checkpoint, build_tiny_blip(root / "blip"))


async def imgsearch(models: Models, data_dir: Path, *args: str) -> tuple[int, str, str]:
    env = dict(
        os.environ,
        IMGSEARCH_MODEL=str(models.clip_config),
        IMGSEARCH_PRETRAINED=str(models.clip_checkpoint),
        IMGSEARCH_CAPTION_MODEL=str(models.blip_dir),
        IMGSEARCH_DATA_DIR=str(data_dir),
        IMGSEARCH_DEVICE="cpu",
    )
    return await run_imgsearch(env, *args, timeout_s=180)


def counts_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.strip().startswith("stored"))


async def test_cli_embedded_and_gateway_print_the_same(models: Models, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    image_tree(root)
    meta = ["--meta", "camera_id=7", "--meta", "tags=a,b", "--meta", "ts=2024-05-01T10:00"]

    # Embedded: no servers, no flags beyond the data folder.
    code, out, err = await imgsearch(models, tmp_path / "emb", "index", str(root), *meta)
    assert code == 3, err  # one broken file: reported, run completed, non-zero exit
    assert (
        "stored 6 (new 6 · near-duplicate 0) · skipped 1 (already present 0 · identical copy 1)"
        " · failed 1" in out
    )
    assert "broken.jpg: not a recognised image format" in out
    code, again, _ = await imgsearch(
        models, tmp_path / "emb", "index", str(root), "--allow-failures"
    )
    assert (
        code == 0 and "stored 0 (new 0 · near-duplicate 0) · skipped 7 (already present 7" in again
    )
    code, emb_query, _ = await imgsearch(
        models, tmp_path / "emb", "query", "a red circle", "-k", "5"
    )
    assert code == 0 and len(emb_query.splitlines()) == 6
    code, emb_json, _ = await imgsearch(
        models, tmp_path / "emb", "query", "x", "-k", "3", "--json", "--filter", "camera_id=7"
    )
    hits = json.loads(emb_json)["hits"]
    assert len(hits) == 3 and all(h["payload"]["camera_id"] == 7 for h in hits)
    assert all(h["payload"]["tags"] == ["a", "b"] for h in hits)
    code, _, err = await imgsearch(models, tmp_path / "emb", "query", "x", "--filter", "ts>= and")
    assert code == 2 and "expected a value after '>='" in err and "^" in err
    html = tmp_path / "results.html"
    code, _, _ = await imgsearch(models, tmp_path / "emb", "query", "x", "--html", str(html))
    assert code == 0 and html.read_text().count('<figure class="hit"') == 6
    code, stats, _ = await imgsearch(models, tmp_path / "emb", "stats", "--json")
    assert json.loads(stats)["count"] == 6

    # The same through the service suite.
    async with suite(models, tmp_path / "suite-data") as s:
        gw = f"127.0.0.1:{s.server.port}"

        async def via_gateway(*args: str) -> tuple[int, str, str]:
            return await imgsearch(models, tmp_path / "unused", "--gateway", gw, *args)

        code, gout, err = await via_gateway("index", str(root), *meta)
        assert code == 3, err
        assert counts_line(gout) == counts_line(out)
        _, gw_query, _ = await via_gateway("query", "a red circle", "-k", "5")
        _, gw_json, _ = await via_gateway(
            "query", "x", "-k", "3", "--json", "--filter", "camera_id=7"
        )
        one = next(f for f in find_images(root) if f.name == "img2.jpg")
        _, similar, _ = await via_gateway("similar", str(one), "-k", "1", "--json")
        assert json.loads(similar)["hits"][0]["path"] == str(one)
        _, deleted, _ = await via_gateway("delete", "--filter", "camera_id=7")
        assert deleted.strip() == "deleted 6 points"
    assert gw_query == emb_query
    strip = lambda text: [  # noqa: E731 - ingest times differ between runs
        {k: v for k, v in h.items() if k != "payload"} for h in json.loads(text)["hits"]
    ]
    assert strip(gw_json) == strip(emb_json)


def test_meta_values_are_typed() -> None:
    meta = parse_meta(
        ["camera_id=7", "site=north", "ts=2024-05-01", "location=48.85,2.35", "tags=a, b", "x=1.5"]
    )
    assert meta == {
        "camera_id": 7,
        "site": "north",
        "timestamp": "2024-05-01T00:00:00Z",  # one alias table with --filter
        "location": {"lat": 48.85, "lon": 2.35},
        "tags": ["a", "b"],
        "x": 1.5,
    }
