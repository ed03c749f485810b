"""ThumbnailStore: the interface other modules (re-rank, web page) code against."""

from __future__ import annotations

import io
import random
import threading
import uuid
from pathlib import Path

import pytest
from PIL import Image

from offline_training.scenes import generate_scene, render
from search_gateway.thumbnails import (
    THUMBNAIL_SIDE,
    ThumbnailStore,
    make_thumbnail,
    media_type,
)


def _photo(w: int, h: int, seed: int = 0) -> Image.Image:
    scene = generate_scene(random.Random(seed))
    return render(scene.objects, scene.background, random.Random(seed), size=max(w, h)).resize(
        (w, h)
    )


def test_make_thumbnail_bounds_longest_side_and_keeps_aspect() -> None:
    data = make_thumbnail(_photo(1920, 1080))
    assert media_type(data) == "image/webp"
    with Image.open(io.BytesIO(data)) as img:
        assert max(img.size) == THUMBNAIL_SIDE
        assert abs(img.size[0] / img.size[1] - 1920 / 1080) < 0.02
    jpeg = make_thumbnail(_photo(300, 200), fmt="JPEG")
    assert media_type(jpeg) == "image/jpeg"
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.size == (300, 200)  # never upscaled


def test_put_get_delete_round_trip(tmp_path: Path) -> None:
    store = ThumbnailStore.under(tmp_path, "images")
    assert store.root == tmp_path / "thumbnails" / "images"
    ids = [str(uuid.uuid4()) for _ in range(3)]
    thumbs = [make_thumbnail(_photo(640, 480, seed=i)) for i in range(3)]
    for pid, data in zip(ids, thumbs, strict=True):
        store.put(pid, data)
    assert [store.get(p) for p in ids] == thumbs
    assert store.total_bytes() == (3, sum(len(t) for t in thumbs))
    store.put(ids[0], thumbs[1])  # replace
    assert store.get(ids[0]) == thumbs[1]
    store.delete([ids[0], ids[1], str(uuid.uuid4())])  # unknown ids ignored
    assert store.get(ids[0]) is None and store.get(ids[1]) is None
    assert store.get(ids[2]) == thumbs[2]
    # A reopened store sees what is on disk.
    assert ThumbnailStore.under(tmp_path, "images").get(ids[2]) == thumbs[2]
    # Another collection's store is separate.
    assert ThumbnailStore.under(tmp_path, "other").get(ids[2]) is None


def test_ids_cannot_escape_the_folder(tmp_path: Path) -> None:
    store = ThumbnailStore(tmp_path / "t")
    data = make_thumbnail(_photo(64, 64))
    for bad in ("../x", "a/b", "", ".hidden", "x" * 200):
        with pytest.raises(ValueError):
            store.put(bad, data)
        assert store.get(bad) is None
    store.delete(["../x"])
    with pytest.raises(ValueError, match="JPEG or WebP"):
        store.put(str(uuid.uuid4()), b"GIF89a....")


def test_concurrent_writers_never_leave_partial_files(tmp_path: Path) -> None:
    store = ThumbnailStore(tmp_path)
    pid = str(uuid.uuid4())
    variants = [make_thumbnail(_photo(400, 300, seed=i)) for i in range(4)]

    def writer(data: bytes) -> None:
        for _ in range(25):
            store.put(pid, data)

    threads = [threading.Thread(target=writer, args=(v,)) for v in variants]
    for t in threads:
        t.start()
    for _ in range(100):
        got = store.get(pid)
        assert got is None or got in variants
    for t in threads:
        t.join()
    assert store.get(pid) in variants
    assert not list(tmp_path.rglob("*.tmp"))
