"""The committed offline models, loaded through the public registry, meet their bars.

Real models, real held-out scenes (seed disjoint from training), no mocks. Runs in
well under a couple of minutes on CPU.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from offline_models import registry
from offline_training import inference, quality, scenes

N_SCENES = 500
# The project's quality bars (issue 4). The committed weights measure 0.96 / 0.84 /
# 0.99 on these held-out scenes (offline_models/MODEL_CARD.md).
BAR_COLOUR_SHAPE, BAR_WITH_ATTRS, BAR_CAPTIONS = 0.9, 0.5, 0.8
FLOOR_COLOUR_ONLY = 0.9


@pytest.fixture(scope="module")
def clip() -> inference.OfflineClip:
    torch.set_num_threads(2)
    return inference.load_clip()


@pytest.fixture(scope="module")
def blip() -> inference.OfflineBlip:
    torch.set_num_threads(2)
    return inference.load_blip()


@pytest.fixture(scope="module")
def clip_results(clip: inference.OfflineClip) -> dict:
    return inference.evaluate_clip(clip, N_SCENES, n_attr_queries=80)


def test_registry_contract() -> None:
    name, ckpt = registry.register_offline_clip()
    assert name == registry.OFFLINE_MODEL_NAME == "offline-tiny"
    assert ckpt.is_file() and ckpt.suffix == ".safetensors"
    assert name in open_clip.list_models()
    cfg = open_clip.get_model_config(name)
    assert Path(cfg["text_cfg"]["hf_tokenizer_name"]).is_dir()
    # idempotent
    assert registry.register_offline_clip() == (name, ckpt)
    tok = open_clip.get_tokenizer(name)
    ids = tok(["a red circle on the left"])
    assert ids.shape == (1, cfg["text_cfg"]["context_length"])
    assert int(ids[0, 0]) == 2 and 3 in ids[0].tolist()  # [CLS] ... [SEP]


def test_preprocess_matches_training_resolution(clip: inference.OfflineClip) -> None:
    img = scenes.generate_dataset(1, 3)[0].image
    x = clip.preprocess(img)
    assert x.shape == (3, scenes.IMAGE_SIZE, scenes.IMAGE_SIZE)


def test_clip_colour_shape_precision_bar(clip_results: dict) -> None:
    assert clip_results["colour_shape"]["precision"] >= BAR_COLOUR_SHAPE


def test_clip_size_position_precision_bar(clip_results: dict) -> None:
    assert clip_results["with_size_or_position"]["precision"] >= BAR_WITH_ATTRS


def test_clip_retrieves_the_named_colour(clip: inference.OfflineClip) -> None:
    """Top-10 results for "a <colour> <shape>" contain an object of that colour."""
    data = scenes.generate_dataset(300, inference.HELD_OUT_SEED)
    img = clip.embed_images([s.image for s in data])
    queries = [[{"colour": c}] for c in scenes.COLOURS]
    txt = clip.embed_texts(
        [f"a {c} {shape}" for c, shape in zip(scenes.COLOURS, scenes.SHAPES * 2, strict=False)]
    )
    res = quality.retrieval_precision(img, txt, queries, [s.objects for s in data])
    assert res["precision"] >= FLOOR_COLOUR_ONLY


def test_clip_query_wording_is_robust(clip: inference.OfflineClip) -> None:
    """Prefixes, capitals and punctuation do not change the ranking much."""
    a, b = clip.embed_texts(["a red circle", "A photo of a RED circle."])
    assert float(a @ b) > 0.8


@pytest.fixture(scope="module")
def caption_results(blip: inference.OfflineBlip) -> dict:
    return inference.evaluate_blip(blip, 150, n_objects=1)


def test_blip_captions_single_object_bar(caption_results: dict) -> None:
    assert caption_results["accuracy"] >= BAR_CAPTIONS, caption_results["examples"]


def test_blip_processor_and_generate_contract(blip: inference.OfflineBlip) -> None:
    d = registry.offline_blip_dir()
    assert (d / "config.json").is_file() and (d / "model.safetensors").is_file()
    scene = scenes.generate_dataset(1, 11, n_objects=2)[0]
    caps = blip.caption([scene.image])
    assert caps[0] and all(w.isalpha() for w in caps[0].replace(",", " ").split())


def test_sample_folder(tmp_path: Path) -> None:
    recs = scenes.write_sample_folder(tmp_path, n=5, seed=3)
    lines = (tmp_path / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == 5 == len(recs)
    first = json.loads(lines[0])
    assert (tmp_path / first["file_name"]).is_file()
    assert {"caption", "objects", "camera_id", "timestamp", "tags"} <= first.keys()
    assert scenes.write_sample_folder(tmp_path / "again", n=5, seed=3) == recs  # deterministic


def test_relevance_rules() -> None:
    objs = [{"shape": "circle", "colour": "red", "size": "large", "position": "left"}]
    assert quality.is_relevant([{"colour": "red", "shape": "circle"}], objs)
    assert quality.is_relevant([{"colour": "red", "shape": "circle", "position": "left"}], objs)
    assert not quality.is_relevant([{"colour": "red", "shape": "circle", "size": "small"}], objs)
    assert quality.precision_at_k([True, False, True], n_relevant=2) == 1.0
    assert quality.precision_at_k([True] * 5 + [False] * 5, n_relevant=50) == 0.5
    assert quality.caption_names_objects("a large red circle on the left", objs)
    assert not quality.caption_names_objects("a large blue circle on the left", objs)


def test_scene_generation_is_deterministic() -> None:
    a = scenes.generate_dataset(3, 42)
    b = scenes.generate_dataset(3, 42)
    assert [s.caption for s in a] == [s.caption for s in b]
    assert all(
        np.array_equal(np.asarray(x.image), np.asarray(y.image)) for x, y in zip(a, b, strict=True)
    )
    rng = random.Random(0)
    for s in scenes.generate_dataset(50, 5):
        assert len({o.position for o in s.objects}) == len(s.objects)
        m = scenes.sample_mentions(s.objects, rng)
        assert quality.is_relevant(m, s.objects)
