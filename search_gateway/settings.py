"""Gateway configuration: env vars IMGSEARCH_*, overridable by flags.

With nothing set, everything is embedded: models in-process and Qdrant on
disk under `data_dir`. `qdrant_url` switches to a Qdrant server or cluster;
`embedder_address` / `captioner_address` switch the models to remote services.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from imgsearch.images import DEFAULT_MAX_PIXELS
from imgsearch.model_choice import BlipChoice, ClipChoice
from imgsearch.serving.security import ServerSecurity
from search_gateway.data_dir import default_data_dir

DEFAULT_PORT = 50050
DEFAULT_METRICS_PORT = 9466

# Flat names the gateway read before its model settings were nested; still
# accepted as keyword arguments and as IMGSEARCH_<NAME> env vars. Each maps to
# the nested fields it sets (IMGSEARCH_DEVICE places both models).
FLAT_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "model": (("embedder", "model"),),
    "pretrained": (("embedder", "pretrained"),),
    "precision": (("embedder", "precision"),),
    "runtime": (("embedder", "runtime"),),
    "caption_model": (("captioner", "model"),),
    "caption_runtime": (("captioner", "runtime"),),
    "device": (("embedder", "device"), ("captioner", "device")),
    "embedder_address": (("embedder", "address"),),
    "embedder_timeout_s": (("embedder", "timeout_s"),),
    "captioner_address": (("captioner", "address"),),
    "captioner_timeout_s": (("captioner", "timeout_s"),),
    "rerank_model": (("rerank", "model"),),
}


class EmbedderLink(ClipChoice):
    """How the gateway gets vectors: the embedder service at `address`, else
    the CLIP model described by the inherited fields, in-process."""

    address: str | None = Field(None, description="host:port of the embedder service")
    timeout_s: float = Field(60.0, gt=0, description="deadline of one embedder call")


class CaptionerLink(BlipChoice):
    """How the gateway gets captions: the captioner service at `address`, else
    the BLIP model described by the inherited fields, in-process."""

    address: str | None = Field(None, description="host:port of the captioner service")
    timeout_s: float = Field(300.0, gt=0, description="deadline of one captioner call")


class RerankLink(BaseModel):
    """Where re-ranking scores come from: the Score RPC of the captioner service at
    `address` (default: the captioner's address), else the in-process matcher
    `model`; neither = searches asking for re-ranking come back in vector order."""

    address: str | None = Field(
        None,
        description="host:port of a captioner serving Score; default: the captioner's "
        "address (a captioner without a matching model = no re-ranking)",
    )
    model: str = Field(
        "",
        description="in-process image-text matching model when no address applies "
        "(offline-tiny, Salesforce/blip-itm-base-coco); empty: none",
    )
    timeout_s: float = Field(
        10.0, gt=0, description="longest a re-rank may take within a search's deadline"
    )
    vector_weight: float = Field(
        1.0,
        ge=0,
        description="order by P(match) + this x the vector score scaled 0..1 over the "
        "candidates; 1.0 was chosen on validation scenes for offline-tiny (0: by the "
        "match probability alone, for a matcher better than the vectors)",
    )


def fold_flat_names(values: dict[str, Any]) -> dict[str, Any]:
    """{"model": m, "embedder": {...}} -> {"embedder": {"model": m, ...}}.

    A value given under its nested name wins over the flat one.
    """
    out = dict(values)
    for flat, targets in FLAT_NAMES.items():
        if flat not in out:
            continue
        value = out.pop(flat)
        for section, name in targets:
            nested = out.get(section)
            merged = (
                dict(nested)
                if isinstance(nested, dict)
                else (nested.model_dump(exclude_unset=True) if nested is not None else {})
            )
            merged.setdefault(name, value)
            out[section] = merged
    return out


class _FlatEnvSource(EnvSettingsSource):
    """Reads the flat IMGSEARCH_<NAME> variables of FLAT_NAMES."""

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for flat in FLAT_NAMES:
            value = self.env_vars.get(f"{self.env_prefix}{flat}".lower())
            if value is not None:
                found[flat] = value
        return fold_flat_names(found)


class GatewaySettings(BaseSettings, ServerSecurity):
    model_config = SettingsConfigDict(
        env_prefix="IMGSEARCH_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        protected_namespaces=(),
    )

    data_dir: str = Field(default_factory=default_data_dir, description="embedded Qdrant folder")
    collection: str = Field("images", description="Qdrant collection name")
    thumbnails_dir: str | None = Field(
        None, description="thumbnail folder (else <data_dir>/thumbnails); a volume in k8s"
    )
    qdrant_url: str | None = Field(None, description="Qdrant server URL (else embedded on disk)")
    qdrant_api_key: str | None = Field(None, description="API key of the Qdrant server")
    store_engine: Literal["auto", "edge", "qdrant-local"] = Field(
        "auto",
        description="embedded store engine (without qdrant_url): Qdrant Edge, or "
        "qdrant-client local mode; auto = edge, unless only a local-mode collection exists",
    )
    # IMGSEARCH_EMBEDDER_<FIELD> / IMGSEARCH_CAPTIONER_<FIELD>: the same names
    # the model services read, plus ADDRESS and TIMEOUT_S.
    embedder: EmbedderLink = Field(default_factory=EmbedderLink)
    captioner: CaptionerLink = Field(default_factory=CaptionerLink)
    # IMGSEARCH_RERANK_<FIELD>: the image-text matcher that re-ranks searches.
    rerank: RerankLink = Field(default_factory=RerankLink)
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
    max_file_bytes: int = Field(
        64 * 1024 * 1024, ge=1, description="largest file read by path (checked before reading)"
    )
    max_response_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        description="largest Search/Get response (gRPC clients' default receive limit); "
        "Search drops the hits that do not fit and sets `truncated`",
    )
    grace_s: float = Field(20.0, ge=0)
    # How the gateway calls the model services (their api_key / TLS settings).
    models_api_key: str | None = Field(None, description="key sent to embedder and captioner")
    models_tls_ca_file: str | None = Field(None, description="CA (PEM) to trust for model services")
    models_tls_cert_file: str | None = Field(None, description="client certificate for mTLS")
    models_tls_key_file: str | None = Field(None, description="client key for mTLS")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Nested env names beat the flat ones (earlier sources win).
        if isinstance(init_settings, InitSettingsSource):  # flat keywords win over env
            init_settings = InitSettingsSource(
                settings_cls, fold_flat_names(init_settings.init_kwargs)
            )
        return (
            init_settings,
            env_settings,
            _FlatEnvSource(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_keywords(cls, values: Any) -> Any:
        return fold_flat_names(values) if isinstance(values, dict) else values

    @classmethod
    def flat_env_names(cls) -> list[str]:
        """The older flat IMGSEARCH_* names still read (see FLAT_NAMES)."""
        return [f"IMGSEARCH_{name.upper()}" for name in FLAT_NAMES]

    @property
    def embedder_address(self) -> str | None:
        return self.embedder.address

    @property
    def captioner_address(self) -> str | None:
        return self.captioner.address

    def roots(self) -> list[Path]:
        return [Path(p) for p in self.read_roots.split(os.pathsep) if p]
