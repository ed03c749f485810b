"""Embedder configuration: env vars IMGSEARCH_EMBEDDER_*, overridable by flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from imgsearch.model_choice import ClipChoice
from imgsearch.serving.model_server import ModelServiceSettings

DEFAULT_PORT = 50051
DEFAULT_METRICS_PORT = 9464


class EmbedderSettings(ClipChoice, ModelServiceSettings):
    """The embedder's knobs (common ones in ModelServiceSettings; model, weights
    and runtime in imgsearch.model_choice.ClipChoice), validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="IMGSEARCH_EMBEDDER_", protected_namespaces=())

    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    metrics_port: int = Field(DEFAULT_METRICS_PORT, ge=-1, le=65535, description="-1 disables")
    image_decode: Literal["auto", "cpu", "device"] = Field(
        "auto",
        description="where images are decoded: cpu (PIL in the decode threads), device "
        "(JPEGs decoded, pre-processed and embedded on the model's device inside each batch: "
        "nvJPEG on CUDA), auto (device when the model runs on CUDA, else cpu)",
    )
