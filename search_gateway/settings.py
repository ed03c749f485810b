"""Gateway configuration: env vars IMGSEARCH_*, overridable by flags.

With nothing set, everything is embedded: models in-process and Qdrant on
disk under `data_dir`. `qdrant_url` switches to a Qdrant server or cluster;
`embedder_address` / `captioner_address` switch the models to remote services.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from imgsearch.images import DEFAULT_MAX_PIXELS
from imgsearch.serving.security import ServerSecurity

DEFAULT_PORT = 50050
DEFAULT_METRICS_PORT = 9466


def default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(base) / "imgsearch")


class GatewaySettings(BaseSettings, ServerSecurity):
    model_config = SettingsConfigDict(env_prefix="IMGSEARCH_", protected_namespaces=())

    data_dir: str = Field(default_factory=default_data_dir, description="embedded Qdrant folder")
    collection: str = Field("images", description="Qdrant collection name")
    qdrant_url: str | None = Field(None, description="Qdrant server URL (else embedded on disk)")
    qdrant_api_key: str | None = Field(None, description="API key of the Qdrant server")
    store_engine: Literal["auto", "edge", "qdrant-local"] = Field(
        "auto",
        description="embedded store engine (without qdrant_url): Qdrant Edge, or "
        "qdrant-client local mode; auto = edge, unless only a local-mode collection exists",
    )
    embedder_address: str | None = Field(None, description="host:port of the embedder service")
    captioner_address: str | None = Field(None, description="host:port of the captioner service")
    model: str = Field("ViT-B-32", description="CLIP model when embedding in-process")
    pretrained: str = Field("laion2b_s34b_b79k", description="CLIP weights (tag or file)")
    caption_model: str = Field(
        "Salesforce/blip-image-captioning-large", description="BLIP model when in-process"
    )
    device: str = Field("auto", description="auto, cpu, cuda (in-process models)")
    precision: str = Field("auto", description="auto, float32, float16, bfloat16")
    runtime: str = Field(
        "auto", description="in-process CLIP runtime: auto, eager, bf16, bf16-compile"
    )
    caption_runtime: str = Field("eager", description="in-process BLIP runtime: eager, bf16, auto")
    host: str = "0.0.0.0"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    metrics_port: int = Field(DEFAULT_METRICS_PORT, ge=-1, le=65535, description="-1 disables")
    http_port: int = Field(
        -1, ge=-1, le=65535, description="JSON API and search page over HTTP; -1 disables"
    )
    http_max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="largest HTTP request body (JSON, base64 images)"
    )
    read_roots: str = Field(
        "", description="folders the gateway may read by path (os.pathsep-separated)"
    )
    captions: bool = Field(
        True, description="false: no captioner (requested captions stay caption_pending)"
    )
    caption_mode: str = Field(
        "deferred",
        pattern="^(inline|deferred)$",
        description="deferred: store vectors at once, caption behind; inline: caption first",
    )
    caption_backfill_interval_s: float = Field(
        5.0, gt=0, description="how often the server looks for pending captions"
    )
    captions_required: bool = Field(
        False, description="fail images whose caption cannot be made (else caption_pending)"
    )
    max_k: int = Field(1000, ge=1)
    ingest_batch_size: int = Field(32, ge=1, le=1024)
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    max_request_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    embedder_timeout_s: float = Field(60.0, gt=0)
    captioner_timeout_s: float = Field(300.0, gt=0)
    grace_s: float = Field(20.0, ge=0)
    # How the gateway calls the model services (their api_key / TLS settings).
    models_api_key: str | None = Field(None, description="key sent to embedder and captioner")
    models_tls_ca_file: str | None = Field(None, description="CA (PEM) to trust for model services")
    models_tls_cert_file: str | None = Field(None, description="client certificate for mTLS")
    models_tls_key_file: str | None = Field(None, description="client key for mTLS")

    def roots(self) -> list[Path]:
        return [Path(p) for p in self.read_roots.split(os.pathsep) if p]
