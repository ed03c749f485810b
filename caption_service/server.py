"""Builds the captioner gRPC server from settings (a factory, so tests start it
on port 0 and the container entry point starts it on its configured port)."""

from __future__ import annotations

from caption_service.matching import BlipMatcher
from caption_service.model import BlipCaptioner
from caption_service.runtime import CaptionRuntime, Limits
from caption_service.score_runtime import ScoreLimits, ScoreRuntime
from caption_service.servicer import CaptionerServicer
from caption_service.settings import CaptionerSettings
from imgsearch.model_choice import model_options
from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.serving.model_server import ModelServer, ModelService
from imgsearch.v1 import captioner_pb2, captioner_pb2_grpc

SERVICE_NAME = captioner_pb2.DESCRIPTOR.services_by_name["Captioner"].full_name

CaptionServer = ModelServer[CaptionRuntime]


def limits_from(settings: CaptionerSettings) -> Limits:
    return Limits(
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_wait_ms / 1000.0,
        max_queue=settings.max_queue,
        max_items_per_request=settings.max_items_per_request,
        max_request_bytes=settings.max_request_bytes,
        default_max_new_tokens=settings.max_new_tokens,
        max_new_tokens_limit=settings.max_new_tokens_limit,
        max_beams=settings.max_beams,
    )


def build_matcher(settings: CaptionerSettings) -> BlipMatcher | None:
    """The image-text matcher behind Score, or None when `score_model` is unset."""
    if not settings.score_model:
        return None
    return BlipMatcher(
        settings.score_model,
        device=settings.device,
        precision=settings.precision,
        cache_dir=settings.cache_dir,
        max_image_pixels=settings.max_image_pixels,
        max_text_chars=settings.max_score_text_chars,
    )


def score_limits_from(settings: CaptionerSettings) -> ScoreLimits:
    return ScoreLimits(
        max_batch_size=settings.score_max_batch_size,
        max_wait_s=settings.max_wait_ms / 1000.0,
        max_queue=settings.max_queue,
        max_items_per_request=settings.max_score_images_per_request,
        max_request_bytes=settings.max_request_bytes,
        max_text_chars=settings.max_score_text_chars,
    )


def build_runtime(
    settings: CaptionerSettings, model: BlipCaptioner | None, metrics: ServiceMetrics
) -> CaptionRuntime:
    """The captioner, and beside it the matcher behind Score when one is configured
    (loaded after the captioner; health turns SERVING when both are warm)."""
    if model is None:
        options = model_options(settings, settings.max_image_pixels, settings.cache_dir)
        model = BlipCaptioner(settings.model, **options)
    matcher = build_matcher(settings)
    scorer = (
        ScoreRuntime(matcher, score_limits_from(settings), metrics, settings.decode_workers)
        if matcher is not None
        else None
    )
    return CaptionRuntime(model, limits_from(settings), metrics, settings.decode_workers, scorer)


CAPTIONER = ModelService(
    "captioner",
    "BLIP captioner gRPC service (imgsearch.v1.Captioner)",
    CaptionerSettings,
    SERVICE_NAME,
    CaptionerServicer,
    captioner_pb2_grpc.add_CaptionerServicer_to_server,
    build_runtime,
)
start_caption_server = CAPTIONER.start
