"""Accuracy gate for the embedder's fast runtimes, and the runtime registry.

Every runtime the registry offers on this machine (the list the server
validates against) must stay close to the float32 reference: cosine >= 0.999
per image and per text, and top-10 text-to-image retrieval overlap >= 0.95 on
a small indexed set. A runtime that fails makes the suite fail, so it cannot be
offered.
"""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from caption_service.model import CAPTION_RUNTIMES, BlipCaptioner, resolve_runtime_precision
from caption_service.settings import CaptionerSettings
from embedder_service.backends import (
    BF16,
    BF16_FUSED,
    EAGER,
    RUNTIME_CHOICES,
    choose_runtime,
    create_backend,
    offered_runtimes,
)
from embedder_service.model import ClipEmbedder
from embedder_service.server import start_embedder_server
from embedder_service.settings import EmbedderSettings
from imgsearch.precision import cpu_has_native_bf16
from tests.conftest import encode_image, pattern
from tests.tiny_models import SMALL_CLIP_CONFIG, build_tiny_clip

FAST_RUNTIMES = [r for r in offered_runtimes("cpu") if r != EAGER]
N_IMAGES, N_QUERIES, TOP_K = 200, 20, 10
WORDS = [
    "red",
    "blue",
    "green",
    "dog",
    "cat",
    "car",
    "tree",
    "sky",
    "beach",
    "street",
    "man",
    "woman",
    "bird",
    "round",
    "square",
]


def _image(i: int) -> bytes:
    """200 varied images: random blocks at several scales, plus colour gradients."""
    if i % 4 == 3:
        rng = np.random.default_rng(i)
        lo, hi = rng.integers(0, 255, (2, 3))
        ramp = np.linspace(0.0, 1.0, 96)[None, :, None]
        arr = (lo + (hi - lo) * ramp).repeat(80, axis=0).astype(np.uint8)
        return encode_image(Image.fromarray(arr))
    return encode_image(pattern(i, size=(96, 80) if i % 2 else (64, 64)))


def _texts() -> list[str]:
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 6)))) for _ in range(N_QUERIES)]


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("small_clip")
    return build_tiny_clip(folder, name="small-clip-gate", config=SMALL_CLIP_CONFIG)


@pytest.fixture(scope="module")
def corpus() -> tuple[list[bytes], list[str]]:
    return [_image(i) for i in range(N_IMAGES)], _texts()


def _embed(
    model: ClipEmbedder, corpus: tuple[list[bytes], list[str]]
) -> tuple[np.ndarray, np.ndarray]:
    images, texts = corpus
    vectors = model.embed_images(images, batch_size=32).vectors
    image_vectors = np.stack(vectors)  # type: ignore[arg-type]
    text_vectors, _ = model.embed_texts(texts, batch_size=8)
    return image_vectors, text_vectors


@pytest.fixture(scope="module")
def reference(
    small_clip: tuple[Path, Path], corpus: tuple[list[bytes], list[str]]
) -> tuple[np.ndarray, np.ndarray]:
    config, checkpoint = small_clip
    model = ClipEmbedder(str(config), str(checkpoint), runtime=EAGER)
    assert model.info.precision == "float32"
    return _embed(model, corpus)


def _top_k(images: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ images.T), axis=1, kind="stable")[:, :TOP_K]


@pytest.mark.parametrize("runtime", FAST_RUNTIMES)
def test_fast_runtime_passes_accuracy_gate(
    runtime: str,
    small_clip: tuple[Path, Path],
    corpus: tuple[list[bytes], list[str]],
    reference: tuple[np.ndarray, np.ndarray],
) -> None:
    config, checkpoint = small_clip
    model = ClipEmbedder(str(config), str(checkpoint), runtime=runtime)
    model.warmup()  # compiles, for compiled runtimes
    assert model.info.runtime == runtime and model.info.precision == "bfloat16"
    if runtime == BF16_FUSED:  # the blocks really were swapped
        assert sum(type(m).__name__ == "FusedBlock" for m in model._model.modules()) == 8
    frames = torch._dynamo.utils.counters["frames"]["ok"]
    images, texts = _embed(model, corpus)
    ref_images, ref_texts = reference

    image_cos = np.sum(images * ref_images, axis=1)
    text_cos = np.sum(texts * ref_texts, axis=1)
    overlap = [
        len(set(a) & set(b)) / TOP_K
        for a, b in zip(_top_k(images, texts), _top_k(ref_images, ref_texts), strict=True)
    ]
    print(
        f"{runtime}: image cosine min {image_cos.min():.6f}, text cosine min "
        f"{text_cos.min():.6f}, top-{TOP_K} overlap mean {np.mean(overlap):.3f} "
        f"min {min(overlap):.2f}"
    )
    assert image_cos.min() >= 0.999, f"worst image cosine {image_cos.min():.5f}"
    assert text_cos.min() >= 0.999, f"worst text cosine {text_cos.min():.5f}"
    assert np.mean(overlap) >= 0.95, f"top-{TOP_K} overlap {np.mean(overlap):.3f}"
    # Warm-up compiled every graph: batches of 32, 8 (the last) and text
    # batches ran without compiling again.
    assert torch._dynamo.utils.counters["frames"]["ok"] == frames, "recompiled after warm-up"


def test_settings_offer_exactly_the_registry() -> None:
    annotation = EmbedderSettings.model_fields["runtime"].annotation
    assert tuple(typing.get_args(annotation)) == RUNTIME_CHOICES
    caption = CaptionerSettings.model_fields["runtime"].annotation
    assert tuple(typing.get_args(caption)) == CAPTION_RUNTIMES
    with pytest.raises(ValueError):
        EmbedderSettings(runtime="tensorrt")  # type: ignore[arg-type]


def test_auto_picks_the_fastest_offered_runtime_without_compiling() -> None:
    assert EAGER in offered_runtimes("cpu")
    chosen = choose_runtime("cpu")
    assert chosen in offered_runtimes("cpu")
    offered = offered_runtimes("cpu")
    fastest = [r for r in (BF16_FUSED, BF16) if r in offered]
    assert chosen == (fastest[0] if cpu_has_native_bf16() else EAGER)
    # A pinned precision keeps the eager path in that dtype; CUDA runs float16.
    assert choose_runtime("cpu", "float32") == EAGER
    assert choose_runtime("cuda") == EAGER
    assert create_backend("auto", "cpu", "float32").precision == "float32"


def test_conflicting_or_unknown_runtimes_are_refused() -> None:
    with pytest.raises(ValueError, match="runtime must be one of"):
        create_backend("onnx-int8", "cpu")
    if BF16 in offered_runtimes("cpu"):
        with pytest.raises(ValueError, match="conflicts"):
            create_backend(BF16, "cpu", "float32")
        with pytest.raises(ValueError, match="conflicts"):
            resolve_runtime_precision("bf16", "float16", "cpu")
    else:
        with pytest.raises(ValueError, match="not offered"):
            create_backend(BF16, "cpu")
    assert resolve_runtime_precision("eager", "auto", "cpu") == "float32"


@pytest.mark.skipif(BF16 not in offered_runtimes("cpu"), reason="no native bf16 on this CPU")
async def test_server_reports_the_runtime_that_runs(tiny_clip: tuple[Path, Path]) -> None:
    import grpc

    from imgsearch.v1 import embedder_pb2, embedder_pb2_grpc

    config, checkpoint = tiny_clip
    settings = EmbedderSettings(
        model=str(config), pretrained=str(checkpoint), host="127.0.0.1", port=0,
        metrics_port=-1, runtime="bf16",
    )  # fmt: skip
    server = await start_embedder_server(settings)
    try:
        await server.wait_ready()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            info = await embedder_pb2_grpc.EmbedderStub(channel).Info(embedder_pb2.InfoRequest())
        assert info.precision == "bfloat16"
        assert server.runtime.model.info.runtime == "bf16"
    finally:
        await server.stop(grace_s=1)


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="no native bf16 on this CPU")
def test_captioner_bf16_runtime_captions(tmp_path: Path) -> None:
    from tests.tiny_models import build_tiny_blip

    tiny_blip = build_tiny_blip(tmp_path / "blip")
    images = [encode_image(pattern(300 + i)) for i in range(3)]
    model = BlipCaptioner(str(tiny_blip), runtime="bf16")
    result = model.caption_images(images)
    assert model.info.precision == "bfloat16"
    assert not result.errors and all(result.captions)


def _photo_like_jpeg(seed: int, width: int = 1600, height: int = 1200) -> bytes:
    """Smooth gradients plus blocky noise: what a camera JPEG looks like to a DCT."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            127 + 100 * np.sin(x / (41 + seed) + c) * np.cos(y / (29 + 2 * seed) - c)
            for c in (0, 1.3, 2.6)
        ],
        axis=-1,
    )
    noise = rng.normal(0, 10, (height // 8, width // 8, 3)).repeat(8, 0).repeat(8, 1)
    return encode_image(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)), quality=90)


def test_draft_decode_passes_accuracy_gate(small_clip: tuple[Path, Path]) -> None:
    """JPEG draft decoding (DCT-scaled, then the usual resize) keeps vectors at
    cosine >= 0.99 of the full-resolution decode on camera-size JPEGs."""
    config, checkpoint = small_clip
    images = [_photo_like_jpeg(i) for i in range(6)]
    full = ClipEmbedder(str(config), str(checkpoint), runtime=EAGER, draft_decode=False)
    draft = ClipEmbedder(str(config), str(checkpoint), runtime=EAGER)
    a = np.stack(full.embed_images(images).vectors)  # type: ignore[arg-type]
    b = np.stack(draft.embed_images(images).vectors)  # type: ignore[arg-type]
    cos = np.sum(a * b, axis=1)
    assert cos.min() >= 0.99, cos
    # the two decodes really differ (draft is on by default and took effect)
    assert not np.allclose(a, b, atol=1e-6)
