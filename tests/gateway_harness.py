"""Builds the two deployments the gateway tests compare, from tiny local models:

* embedded: GatewayCore with in-process models and Qdrant on disk;
* suite: embedder + captioner + gateway as real gRPC servers on loopback,
  reached through RemoteGateway (what `imgsearch --gateway` uses).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_gateway.core import GatewayCore
from search_gateway.ingest import IngestItem, IngestOutcome
from search_gateway.settings import GatewaySettings
from tests.conftest import encode_image, pattern


@dataclass
class Models:
    clip_config: Path
    clip_checkpoint: Path
    blip_dir: Path


def gateway_settings(models: Models, data_dir: Path, **extra: Any) -> GatewaySettings:
    extra.setdefault("caption_mode", "inline")  # tests of deferred captions ask for it
    return GatewaySettings(
        data_dir=str(data_dir),
        model=str(models.clip_config),
        pretrained=str(models.clip_checkpoint),
        caption_model=str(models.blip_dir),
        device="cpu",
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        **extra,
    )


@contextlib.asynccontextmanager
async def embedded(
    models: Models, data_dir: Path, read_roots: Iterable[Path] = ()
) -> AsyncIterator[GatewayCore]:
    from search_gateway.assemble import build_core

    core = await build_core(gateway_settings(models, data_dir), read_roots=list(read_roots))
    try:
        yield core
    finally:
        await core.close()


@dataclass
class Suite:
    gateway: Any  # RemoteGateway
    embedder: Any  # EmbedderServer
    captioner: Any  # CaptionServer
    server: Any  # GatewayServer


@contextlib.asynccontextmanager
async def suite(
    models: Models,
    data_dir: Path,
    model_extra: dict[str, Any] | None = None,
    client_metadata: tuple[tuple[str, str], ...] = (),
    **extra: Any,
) -> AsyncIterator[Suite]:
    """The three services on loopback; `model_extra` goes to both model
    services' settings, `extra` to the gateway's."""
    from caption_service.server import start_caption_server
    from caption_service.settings import CaptionerSettings
    from embedder_service.server import start_embedder_server
    from embedder_service.settings import EmbedderSettings
    from search_gateway.remote_api import RemoteGateway
    from search_gateway.server import start_gateway_server

    loopback = {"host": "127.0.0.1", "port": 0, "metrics_port": -1, **(model_extra or {})}
    emb = await start_embedder_server(
        EmbedderSettings(
            model=str(models.clip_config), pretrained=str(models.clip_checkpoint), **loopback
        )
    )
    cap = await start_caption_server(CaptionerSettings(model=str(models.blip_dir), **loopback))
    await emb.wait_ready()
    await cap.wait_ready()
    settings = gateway_settings(
        models,
        data_dir,
        embedder_address=f"127.0.0.1:{emb.port}",
        captioner_address=f"127.0.0.1:{cap.port}",
        **extra,
    )
    gw = await start_gateway_server(settings)
    client = RemoteGateway(f"127.0.0.1:{gw.port}", metadata=client_metadata)
    try:
        yield Suite(client, emb, cap, gw)
    finally:
        await client.close()
        await gw.stop(1)
        await cap.stop(1)
        await emb.stop(1)


async def ingest_all(api: Any, items: list[IngestItem]) -> list[IngestOutcome]:
    async def gen() -> AsyncIterator[IngestItem]:
        for item in items:
            yield item

    return [o async for o in api.ingest(gen())]


# A small world with known metadata, so every filter's answer is known.
SITES = ["north", "south", "east"]
PARIS = {"lat": 48.8566, "lon": 2.3522}
TOKYO = {"lat": 35.6762, "lon": 139.6503}


def catalogue(n: int = 12) -> list[tuple[bytes, dict[str, Any]]]:
    out = []
    for i in range(n):
        meta = {
            "camera_id": i % 3,
            "site": SITES[i % 3],
            "timestamp": f"2024-05-{i + 1:02d}T12:00:00Z",
            "location": PARIS if i % 2 == 0 else TOKYO,
            "tags": ["a"] if i % 4 == 0 else ["b"] if i % 4 == 1 else ["a", "b"],
            "altitude": float(i * 10),
        }
        out.append((encode_image(pattern(1000 + i)), meta))
    return out


def point_id(data: bytes) -> str:
    from search_gateway.domain import point_id_for

    return point_id_for(hashlib.sha256(data).hexdigest())
