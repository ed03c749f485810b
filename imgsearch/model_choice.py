"""Which CLIP and BLIP to run and where: the fields both the model services
and the gateway (when it runs the models in-process) are configured with.

Written once here so each default has one home: the embedder's and
captioner's settings classes inherit them (env IMGSEARCH_EMBEDDER_MODEL, ...),
and the gateway nests them as its `embedder` / `captioner` sections (env
IMGSEARCH_EMBEDDER_MODEL, ... too). Plain pydantic: importable without torch,
so the gateway image (which has no model packages) can read its settings.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from pydantic import BaseModel, Field

DEFAULT_CLIP_MODEL = "ViT-B-32"
DEFAULT_CLIP_PRETRAINED = "laion2b_s34b_b79k"
DEFAULT_BLIP_MODEL = "Salesforce/blip-image-captioning-large"
# The project's own tiny CLIP and BLIP, committed in offline_models/ (no download).
OFFLINE_MODEL_NAME = "offline-tiny"

# The names of embedder_service.backends.RUNTIMES and
# caption_service.model.CAPTION_RUNTIMES (tests keep them equal).
ClipRuntime = Literal["auto", "eager", "bf16", "bf16-fused", "bf16-compile"]
BlipRuntime = Literal["auto", "eager", "bf16"]


class Placement(BaseModel):
    """Where a model runs and in which dtype."""

    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    precision: str = Field("auto", description="auto, float32, float16, bfloat16")


class ClipChoice(Placement):
    """The CLIP model, its weights and its runtime."""

    model: str = Field(
        DEFAULT_CLIP_MODEL, description="open_clip name, hf-hub: id, config .json or offline-tiny"
    )
    pretrained: str = Field(
        DEFAULT_CLIP_PRETRAINED, description="pretrained tag or checkpoint path ('' = random)"
    )
    runtime: ClipRuntime = Field(
        "auto",
        description="auto (bf16-fused on CPUs with native bf16, else eager), eager (float32 "
        "CPU, float16 CUDA), bf16, bf16-fused (oneDNN post-op fusion, fastest on CPU), "
        "bf16-compile (compiles for minutes at start)",
    )


class BlipChoice(Placement):
    """The BLIP model and its runtime."""

    model: str = Field(
        DEFAULT_BLIP_MODEL, description="Hugging Face id, save_pretrained directory or offline-tiny"
    )
    precision: str = Field(
        "auto", description="auto (float16 on CUDA, float32 on CPU), float32, float16, bfloat16"
    )
    # The default stays the float32 reference until captions have an accuracy
    # gate (docs/fast-paths.md).
    runtime: BlipRuntime = Field(
        "eager",
        description="eager (precision as set), bf16 (bfloat16 weights: ~3.5x on CPUs with "
        "native bf16), auto (bf16 where native, else eager)",
    )


class ModelOptions(TypedDict):
    """The keyword arguments both model wrappers (ClipEmbedder, BlipCaptioner) take."""

    device: str
    precision: str
    runtime: str
    cache_dir: str | None
    max_image_pixels: int


def model_options(
    choice: ClipChoice | BlipChoice, max_image_pixels: int, cache_dir: str | None = None
) -> ModelOptions:
    """How a settings section places its model: the model services' settings, or
    the gateway's `embedder` / `captioner` section when it runs a model in-process."""
    return ModelOptions(
        device=choice.device,
        precision=choice.precision,
        runtime=choice.runtime,
        cache_dir=cache_dir,
        max_image_pixels=max_image_pixels,
    )
