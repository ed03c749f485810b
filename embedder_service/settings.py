"""Embedder configuration: env vars IMGSEARCH_EMBEDDER_*, overridable by flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from imgsearch.serving.model_server import ModelServiceSettings

DEFAULT_PORT = 50051
DEFAULT_METRICS_PORT = 9464


class EmbedderSettings(ModelServiceSettings):
    """The embedder's knobs (common ones in ModelServiceSettings), validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="IMGSEARCH_EMBEDDER_", protected_namespaces=())

    model: str = Field(
        "ViT-B-32", description="open_clip name, hf-hub: id, config .json or offline-tiny"
    )
    pretrained: str = Field(
        "laion2b_s34b_b79k", description="pretrained tag or checkpoint path ('' = random)"
    )
    # The names of embedder_service.backends.RUNTIMES (a test keeps them equal;
    # not imported here, so settings stay importable without torch).
    runtime: Literal["auto", "eager", "bf16", "bf16-fused", "bf16-compile"] = Field(
        "auto",
        description="auto (bf16-fused on CPUs with native bf16, else eager), eager (float32 "
        "CPU, float16 CUDA), bf16, bf16-fused (oneDNN post-op fusion, fastest on CPU), "
        "bf16-compile (compiles for minutes at start)",
    )
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    metrics_port: int = Field(DEFAULT_METRICS_PORT, ge=-1, le=65535, description="-1 disables")
