"""Embedder configuration: env vars IMGSEARCH_EMBEDDER_*, overridable by flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from imgsearch.images import DEFAULT_MAX_PIXELS
from imgsearch.serving.security import ServerSecurity

DEFAULT_PORT = 50051
DEFAULT_METRICS_PORT = 9464


class EmbedderSettings(BaseSettings, ServerSecurity):
    """Every knob of the embedder service, validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="IMGSEARCH_EMBEDDER_", protected_namespaces=())

    model: str = Field(
        "ViT-B-32", description="open_clip name, hf-hub: id, config .json or offline-tiny"
    )
    pretrained: str = Field(
        "laion2b_s34b_b79k", description="pretrained tag or checkpoint path ('' = random)"
    )
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    precision: str = Field("auto", description="auto, float32, float16, bfloat16")
    # The names of embedder_service.backends.RUNTIMES (a test keeps them equal;
    # not imported here, so settings stay importable without torch).
    runtime: Literal["auto", "eager", "bf16", "bf16-compile"] = Field(
        "auto",
        description="auto (bf16 on CPUs with native bf16, else eager), eager (float32 CPU, "
        "float16 CUDA), bf16, bf16-compile (fastest on CPU; compiles for minutes at start)",
    )
    cache_dir: str | None = Field(None, description="where downloaded weights are cached")
    host: str = "0.0.0.0"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    metrics_port: int = Field(DEFAULT_METRICS_PORT, ge=-1, le=65535, description="-1 disables")
    max_batch_size: int = Field(32, ge=1, le=4096, description="largest model batch")
    max_wait_ms: float = Field(5.0, ge=0, le=1000, description="how long a batch waits to fill")
    max_queue: int = Field(4096, ge=1, description="items waiting before RESOURCE_EXHAUSTED")
    max_items_per_request: int = Field(512, ge=1)
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    max_request_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    decode_workers: int = Field(0, ge=0, description="image decode threads; 0 = one per core")
    grace_s: float = Field(20.0, ge=0, description="drain time on SIGTERM")
