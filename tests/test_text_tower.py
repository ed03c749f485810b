"""The text tower alone (embedder_service.text_tower): the same text vectors as
the full open_clip model, bit for bit, without importing what it does not
need; and the transformers-free tokenizer gives transformers' ids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from embedder_service.backends import offered_runtimes
from embedder_service.model import ClipEmbedder
from embedder_service.text_tower import (
    ClipTextEmbedder,
    NoImageTower,
    TextTowerUnavailable,
    text_source,
)

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "a red circle on the left",
    "A BLUE Square!!  in the MIDDLE",
    "the center of the frame, near a green triangle",
    "café naïve résumé — ünïcödé ☃ 東京",
    "   leading and trailing   ",
    "[SEP] [CLS] [PAD] literal special tokens",
    "tabs\tand\nnewlines",
    "one",
    " ".join(["long"] * 200),  # truncated
    "x" * 5000,  # cut to MAX_TEXT_CHARS first
]


def _vectors(model: ClipEmbedder) -> tuple[np.ndarray, list[bool]]:
    return model.embed_texts(TEXTS, batch_size=4)


@pytest.mark.parametrize("runtime", offered_runtimes("cpu"))
def test_offline_tiny_text_vectors_are_bit_identical(runtime: str) -> None:
    text = ClipTextEmbedder("offline-tiny", "", device="cpu", runtime=runtime)
    full = ClipEmbedder("offline-tiny", "", device="cpu", runtime=runtime)
    got, got_cut = _vectors(text)
    want, want_cut = _vectors(full)
    assert got.dtype == want.dtype == np.float32
    assert np.array_equal(got, want)
    assert got_cut == want_cut and got_cut[-2:] == [True, True]
    assert text.info == full.info  # the identity the collection is checked against
    assert isinstance(text._model.visual, NoImageTower)
    assert sum(p.numel() for p in text._model.parameters()) < sum(
        p.numel() for p in full._model.parameters()
    )
    with pytest.raises(RuntimeError, match="text only"):
        text.preprocess_image(b"not needed")


def _wrapped_checkpoint(folder: Path, checkpoint: Path) -> Path:
    """The same weights as a training checkpoint: {"state_dict": {"module.x": ...}}."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    out = folder / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, out)
    return out


def test_json_config_with_clip_bpe_tokenizer_and_wrapped_checkpoint(
    tiny_clip: tuple[Path, Path], tmp_path: Path
) -> None:
    """A custom config (CLIP's BPE tokenizer, quick GELU) and a .pt checkpoint
    as training writes it: still the full model's text vectors."""
    config_path, checkpoint = tiny_clip
    config = json.loads(config_path.read_text())
    config["quick_gelu"] = True
    custom = tmp_path / "tiny-quick.json"
    custom.write_text(json.dumps(config))
    wrapped = _wrapped_checkpoint(tmp_path, checkpoint)
    for ckpt in (str(checkpoint), str(wrapped)):
        text = ClipTextEmbedder(str(custom), ckpt, device="cpu", runtime="eager")
        full = ClipEmbedder(str(custom), ckpt, device="cpu", runtime="eager")
        got, _ = _vectors(text)
        want, _ = _vectors(full)
        assert np.array_equal(got, want)
        assert text.info == full.info
        assert type(text._tokenizer).__name__ == "SimpleTokenizer"


def test_models_it_does_not_cover_are_refused_before_loading(tmp_path: Path) -> None:
    for model, pretrained in (("hf-hub:org/name", ""), ("ViT-B-32", "")):
        with pytest.raises(TextTowerUnavailable):
            text_source(model, pretrained)
    coca = tmp_path / "coca.json"
    coca.write_text(json.dumps({"embed_dim": 8, "vision_cfg": {}, "text_cfg": {},
                                "multimodal_cfg": {}}))  # fmt: skip
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"")
    with pytest.raises(TextTowerUnavailable):
        text_source(str(coca), str(weights))


def test_the_gateway_falls_back_to_the_full_model(tmp_path: Path) -> None:
    """build_text_embedder answers None (the caller then builds the full model)."""
    from search_gateway.assemble import build_text_embedder
    from search_gateway.settings import GatewaySettings

    s = GatewaySettings(model="ViT-B-32", pretrained="", data_dir=str(tmp_path))
    assert build_text_embedder(s) is None


def test_tokenizer_without_transformers_gives_transformers_ids() -> None:
    """hf_tokenizer.AutoTokenizer against transformers.AutoTokenizer, both driven
    by open_clip's own HFTokenizer, on the shipped offline-tiny tokenizer."""
    import open_clip

    from embedder_service import open_clip_narrow
    from offline_models.registry import CLIP_DIR, TOKENIZER_SUBDIR

    folder = str((CLIP_DIR / TOKENIZER_SUBDIR).resolve())
    reference = open_clip.tokenizer.HFTokenizer(folder, context_length=28)
    narrow = open_clip_narrow.module("tokenizer").HFTokenizer(folder, context_length=28)
    assert type(narrow.tokenizer).__module__ == "embedder_service.hf_tokenizer"
    rng = np.random.default_rng(5)
    words = [
        "a",
        "the",
        "red",
        "blue",
        "green",
        "circle",
        "square",
        "left",
        "right",
        "middle",
        "centre",
        "big",
        "small",
        "of",
        "on",
    ]
    texts = [*TEXTS, *(" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 40, 200))]
    for context in (28, 29, 8):
        assert torch.equal(narrow(texts, context_length=context),
                           reference(texts, context_length=context))  # fmt: skip
    assert narrow.tokenizer.pad_token_id == reference.tokenizer.pad_token_id


def test_tokenizer_folders_it_cannot_reproduce_are_refused(tmp_path: Path) -> None:
    from embedder_service.hf_tokenizer import AutoTokenizer

    with pytest.raises(NotImplementedError):
        AutoTokenizer.from_pretrained(str(tmp_path))  # no tokenizer.json
    from offline_models.registry import CLIP_DIR, TOKENIZER_SUBDIR

    folder = tmp_path / "tok"
    folder.mkdir()
    source = CLIP_DIR / TOKENIZER_SUBDIR
    (folder / "tokenizer.json").write_text((source / "tokenizer.json").read_text())
    config = json.loads((source / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "add_bos_token": True}))
    with pytest.raises(NotImplementedError, match="add_bos_token"):
        AutoTokenizer.from_pretrained(str(folder))


IMPORTS = """
import sys
from embedder_service.text_tower import ClipTextEmbedder
m = ClipTextEmbedder("offline-tiny", "", device="cpu")
m.embed_texts(["a red circle"])
print("\\n".join(sorted(sys.modules)))
"""
HEAVY = ("open_clip", "transformers", "timm", "torchvision", "torch._dynamo", "sympy")


def test_text_tower_imports_none_of_the_other_families() -> None:
    run = subprocess.run(
        [sys.executable, "-c", IMPORTS],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    modules = set(run.stdout.split())
    assert "embedder_service._open_clip_narrow.model" in modules
    loaded = sorted(m for m in modules if m in HEAVY or m.startswith(tuple(h + "." for h in HEAVY)))
    assert loaded == []


def test_pretrained_tag_resolves_to_the_file_open_clip_loads(tmp_path: Path) -> None:
    """The default model's form (architecture + tag): the same cached file and
    the same reported identity as the full model's path (model_spec.resolve)."""
    import open_clip

    from embedder_service.model_spec import resolve

    model, tag = "ViT-B-32", "laion2b_s34b_b79k"
    repo = tmp_path / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abc")
    snapshot = repo / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"not read here")
    source = text_source(model, tag, cache_dir=str(tmp_path))
    want = open_clip.pretrained.download_pretrained(
        open_clip.pretrained.get_pretrained_cfg(model, tag), cache_dir=str(tmp_path)
    )
    assert source.checkpoint == str(want)
    spec = resolve(model, tag)
    assert (source.display_model, source.display_pretrained) == (
        spec.display_model,
        spec.display_pretrained,
    )


@pytest.mark.slow
def test_default_architecture_text_vectors_are_bit_identical(tmp_path: Path) -> None:
    """ViT-B-32 (the default model's architecture, CLIP's BPE tokenizer, 77
    tokens) from a checkpoint file: random weights, as no download is allowed."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    full_model = open_clip.create_model("ViT-B-32")
    checkpoint = tmp_path / "vit-b-32.safetensors"
    save_file({k: v.contiguous() for k, v in full_model.state_dict().items()}, str(checkpoint))
    del full_model
    text = ClipTextEmbedder("ViT-B-32", str(checkpoint), device="cpu")
    full = ClipEmbedder("ViT-B-32", str(checkpoint), device="cpu")
    got, got_cut = _vectors(text)
    want, want_cut = _vectors(full)
    assert np.array_equal(got, want) and got_cut == want_cut
    assert text.info == full.info


def test_an_open_clip_the_narrow_import_cannot_load_means_the_full_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should a later open_clip's model.py need timm or transformers at import,
    the text-only build declines (the CLI then loads the full model)."""
    from embedder_service import open_clip_narrow

    def refuse(name: str) -> object:
        raise ImportError(f"{name} needs timm")

    monkeypatch.setattr(open_clip_narrow, "module", refuse)
    with pytest.raises(TextTowerUnavailable, match="needs timm"):
        ClipTextEmbedder("offline-tiny", "", device="cpu").load()
