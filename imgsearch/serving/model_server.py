"""What the embedder and captioner servers share: their common settings, the
server object, the start-up sequence (listen at once with health
NOT_SERVING, load and warm the model in the background, then SERVING) and
the `python -m ...` entry point."""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from grpc import aio
from pydantic import Field
from pydantic_settings import BaseSettings

from imgsearch.images import DEFAULT_MAX_PIXELS
from imgsearch.serving.logs import configure_logging
from imgsearch.serving.metrics import ServiceMetrics
from imgsearch.serving.security import ServerSecurity
from imgsearch.serving.server import (
    RunningServer,
    ServiceBinding,
    create_server,
    drain,
    run_until_signal,
)
from imgsearch.serving.settings_cli import add_settings_arguments, settings_from_args

log = logging.getLogger(__name__)


class ModelServiceSettings(BaseSettings, ServerSecurity):
    """Knobs every model service has; each service sets its prefix and defaults."""

    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    precision: str = Field("auto", description="auto, float32, float16, bfloat16")
    cache_dir: str | None = Field(None, description="where downloaded weights are cached")
    host: str = "0.0.0.0"
    port: int = Field(0, ge=0, le=65535)
    metrics_port: int = Field(-1, ge=-1, le=65535, description="-1 disables")
    max_batch_size: int = Field(32, ge=1, le=4096, description="largest model batch")
    max_wait_ms: float = Field(5.0, ge=0, le=1000, description="how long a batch waits to fill")
    max_fill_wait_ms: float = Field(
        50.0,
        ge=0,
        le=1000,
        description="how long a batch may wait for images that requests already sent and "
        "that are still decoding (at least; up to half a batch's run time); fills batches "
        "under many single-image clients; 0 = off",
    )
    max_queue: int = Field(4096, ge=1, description="items waiting before RESOURCE_EXHAUSTED")
    max_items_per_request: int = Field(512, ge=1)
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    max_request_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    decode_workers: int = Field(0, ge=0, description="image decode threads; 0 = one per core")
    grace_s: float = Field(20.0, ge=0, description="drain time on SIGTERM")


class ServedRuntime(Protocol):
    """A model runtime the server loads, serves and closes."""

    model: Any

    async def start(self) -> None: ...
    async def close(self) -> None: ...


RuntimeT = TypeVar("RuntimeT", bound=ServedRuntime)
SettingsT = TypeVar("SettingsT", bound=ModelServiceSettings)


@dataclass
class ModelServer(Generic[RuntimeT]):
    running: RunningServer
    runtime: RuntimeT
    metrics: ServiceMetrics
    metrics_port: int | None
    loading: asyncio.Task[None]

    @property
    def port(self) -> int:
        return self.running.port

    async def wait_ready(self) -> None:
        await self.loading

    async def stop(self, grace_s: float = 5.0) -> None:
        await drain(self.running, grace_s)
        await self.runtime.close()


ModelT = TypeVar("ModelT")


@dataclass(frozen=True)
class ModelService(Generic[SettingsT, ModelT, RuntimeT]):
    """What makes one model service: its label (metrics prefix, logs, program
    name), its settings class, the proto service, its servicer (over the runtime,
    with the image pixel limit) and how its runtime is built from the settings.
    The rest (listening, health, metrics, loading in the background, the entry
    point) is the same for every model service, so it is written here once."""

    label: str
    description: str  # for --help
    settings: type[SettingsT]
    full_name: str  # e.g. "imgsearch.v1.Embedder"
    servicer: Callable[[RuntimeT, int], Any]
    add_to_server: Callable[[Any, aio.Server], None]
    runtime: Callable[[SettingsT, ModelT | None, ServiceMetrics], RuntimeT]

    async def start(
        self, settings: SettingsT, model: ModelT | None = None
    ) -> ModelServer[RuntimeT]:
        """Listens at once (health NOT_SERVING), loads and warms the model (the
        given one, else the one the settings name) in the background, then turns
        SERVING. A model that fails to load stays NOT_SERVING (and the error is
        logged), so probes keep the pod out."""
        metrics = ServiceMetrics.create(self.label)
        runtime = self.runtime(settings, model, metrics)
        servicer = self.servicer(runtime, settings.max_image_pixels)
        running = await create_server(
            f"{settings.host}:{settings.port}",
            [ServiceBinding(servicer, self.add_to_server, self.full_name)],
            max_message_bytes=settings.max_request_bytes,
            metrics=metrics,
            credentials=settings.server_credentials(),
            api_keys=settings.api_keys(),
        )
        metrics_port = metrics.serve_http(settings.metrics_port, settings.host)

        async def load() -> None:
            try:
                await runtime.start()
            except Exception:
                log.exception("%s model failed to load; staying NOT_SERVING", self.label)
                raise
            await running.set_serving(True)
            log.info("%s SERVING: %s", self.label, runtime.model.info)

        loading = asyncio.get_running_loop().create_task(load())
        return ModelServer(running, runtime, metrics, metrics_port, loading)

    def main(self, argv: list[str] | None = None) -> int:
        """`python -m ...` / `imgsearch-<label>`: flags (over env vars) →
        settings → serve until SIGTERM."""
        configure_logging()
        parser = argparse.ArgumentParser(
            prog=f"imgsearch-{self.label}", description=self.description
        )
        prefix = str(self.settings.model_config.get("env_prefix", ""))
        add_settings_arguments(parser, self.settings, prefix)
        settings = settings_from_args(parser.parse_args(argv), self.settings)

        async def serve() -> None:
            server = await self.start(settings)
            await run_until_signal(server.running, settings.grace_s, server.runtime.close)

        asyncio.run(serve())
        return 0
