"""Captioner configuration: env vars IMGSEARCH_CAPTIONER_*, overridable by flags."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from caption_service.matching import MAX_TEXT_CHARS
from caption_service.model import DEFAULT_MAX_NEW_TOKENS, MAX_BEAMS, MAX_NEW_TOKENS_LIMIT
from caption_service.score_runtime import DEFAULT_MAX_PAIRS_PER_REQUEST
from imgsearch.model_choice import BlipChoice
from imgsearch.serving.model_server import ModelServiceSettings

DEFAULT_PORT = 50052
DEFAULT_METRICS_PORT = 9465


class CaptionerSettings(BlipChoice, ModelServiceSettings):
    """The captioner's knobs (common ones in ModelServiceSettings; model, precision
    and runtime in imgsearch.model_choice.BlipChoice), validated at start-up."""

    model_config = SettingsConfigDict(env_prefix="IMGSEARCH_CAPTIONER_", protected_namespaces=())

    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    metrics_port: int = Field(DEFAULT_METRICS_PORT, ge=-1, le=65535, description="-1 disables")
    max_batch_size: int = Field(8, ge=1, le=1024, description="largest model batch")
    max_wait_ms: float = Field(10.0, ge=0, le=1000, description="how long a batch waits to fill")
    max_queue: int = Field(1024, ge=1, description="images waiting before RESOURCE_EXHAUSTED")
    max_items_per_request: int = Field(64, ge=1)
    max_new_tokens: int = Field(
        DEFAULT_MAX_NEW_TOKENS, ge=1, description="caption length when a request says 0"
    )
    max_new_tokens_limit: int = Field(
        MAX_NEW_TOKENS_LIMIT, ge=1, description="largest max_new_tokens a request may ask for"
    )
    max_beams: int = Field(MAX_BEAMS, ge=1, description="largest num_beams a request may ask for")
    score_model: str = Field(
        "",
        description="image-text matching model behind Score (Hugging Face id such as "
        "Salesforce/blip-itm-base-coco, save_pretrained directory or offline-tiny); "
        "empty: Score answers FAILED_PRECONDITION",
    )
    score_max_batch_size: int = Field(32, ge=1, le=1024, description="largest Score model batch")
    max_score_images_per_request: int = Field(DEFAULT_MAX_PAIRS_PER_REQUEST, ge=1)
    max_score_text_chars: int = Field(MAX_TEXT_CHARS, ge=1, le=100_000)

    @model_validator(mode="after")
    def _default_within_limit(self) -> CaptionerSettings:
        if self.max_new_tokens > self.max_new_tokens_limit:
            raise ValueError(
                f"max_new_tokens {self.max_new_tokens} is over max_new_tokens_limit "
                f"{self.max_new_tokens_limit}"
            )
        return self
