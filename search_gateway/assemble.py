"""Builds a GatewayCore from settings: in-process or remote models, embedded
or server Qdrant. The only place that decides between implementations."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from imgsearch.model_choice import model_options
from imgsearch.serving.auth import bearer
from imgsearch.serving.security import channel_credentials
from search_gateway.core import CoreLimits, GatewayCore
from search_gateway.model_clients.base import Captioner, Embedder, Scorer
from search_gateway.rerank import Reranker
from search_gateway.settings import GatewaySettings
from search_gateway.store.base import VectorStore
from search_gateway.thumbnails import ThumbnailStore

log = logging.getLogger(__name__)


def _remote_options(s: GatewaySettings) -> dict[str, Any]:
    """TLS credentials and API key of the calls to both model services."""
    credentials: grpc.ChannelCredentials | None = channel_credentials(
        s.models_tls_ca_file, s.models_tls_cert_file, s.models_tls_key_file
    )
    return {"credentials": credentials, "metadata": bearer(s.models_api_key)}


def build_embedder(s: GatewaySettings) -> Embedder:
    e = s.embedder
    if e.address:
        from search_gateway.model_clients.remote import RemoteEmbedder

        return RemoteEmbedder(e.address, timeout_s=e.timeout_s, **_remote_options(s))
    from embedder_service.model import ClipEmbedder
    from search_gateway.model_clients.local import LocalEmbedder

    model = ClipEmbedder(e.model, e.pretrained, **model_options(e, s.max_image_pixels))
    return LocalEmbedder(model, batch_size=s.ingest_batch_size)


def build_text_embedder(s: GatewaySettings) -> Embedder | None:
    """An in-process embedder of the text tower only (text queries), loaded;
    None for models the text-only build does not cover (use build_embedder)."""
    from embedder_service.text_tower import ClipTextEmbedder, TextTowerUnavailable
    from search_gateway.model_clients.local import LocalEmbedder

    e = s.embedder
    model = ClipTextEmbedder(e.model, e.pretrained, **model_options(e, s.max_image_pixels))
    try:
        model.load()
    except TextTowerUnavailable as exc:
        log.info("text tower alone not available (%s): the full model embeds texts", exc)
        return None
    return LocalEmbedder(model, decode_workers=1, batch_size=s.ingest_batch_size)


def build_captioner(s: GatewaySettings) -> Captioner:
    c = s.captioner
    if c.address:
        from search_gateway.model_clients.remote import RemoteCaptioner

        return RemoteCaptioner(c.address, timeout_s=c.timeout_s, **_remote_options(s))
    from caption_service.model import BlipCaptioner
    from search_gateway.model_clients.local import LocalCaptioner

    # Loaded lazily on the first caption request: indexing without captions
    # never pays for BLIP.
    return LocalCaptioner(BlipCaptioner(c.model, **model_options(c, s.max_image_pixels)))


def build_scorer(s: GatewaySettings) -> Scorer | None:
    """The re-rank scorer: the captioner service's Score RPC (or a dedicated
    address), else an in-process matcher when `rerank.model` is set, else none."""
    address = s.rerank.address or s.captioner.address
    if address:
        from search_gateway.model_clients.remote import RemoteScorer

        return RemoteScorer(
            address,
            timeout_s=s.rerank.timeout_s,
            **_remote_options(s),
        )
    if not s.rerank.model:
        return None
    from caption_service.matching import BlipMatcher
    from search_gateway.model_clients.local import LocalScorer

    # Loaded lazily on the first re-ranked search.
    return LocalScorer(
        BlipMatcher(s.rerank.model, device=s.captioner.device, max_image_pixels=s.max_image_pixels)
    )


def build_reranker(s: GatewaySettings, core: GatewayCore) -> Reranker:
    """Scores the thumbnails the gateway stores (original files under the read roots
    as fallback for points ingested before thumbnails existed)."""
    return Reranker(
        build_scorer(s),
        core.thumbnails,
        read_original=core.ingest_pipeline.paths.read,
        max_seconds=s.rerank.timeout_s,
        vector_weight=s.rerank.vector_weight,
    )


def build_store(s: GatewaySettings) -> VectorStore:
    # qdrant-client is imported only where it is used: the embedded Edge store
    # does not need it, and importing it costs ~0.3 s of every CLI command.
    if s.qdrant_url:
        from search_gateway.store.qdrant_store import QdrantStore

        return QdrantStore.server(s.qdrant_url, s.qdrant_api_key, s.collection)
    data = Path(s.data_dir).expanduser()
    data.mkdir(parents=True, exist_ok=True)
    if embedded_engine(s, data) == "edge":
        from search_gateway.store.edge_store import EdgeStore

        return EdgeStore.open_dir(data / "edge", s.collection)
    from search_gateway.store.qdrant_store import QdrantStore

    return QdrantStore.embedded(data / "qdrant", s.collection)


def embedded_engine(s: GatewaySettings, data: Path) -> str:
    """Which engine runs the embedded store: "edge" or "qdrant-local".

    auto picks Qdrant Edge (HNSW and payload indexes in-process), except for a
    collection that exists only in qdrant-client local mode's folder: that
    data stays where it is (switching engines means re-indexing).
    """
    if s.store_engine != "auto":
        return s.store_engine
    local_only = (data / "qdrant" / "collection" / s.collection).is_dir() and not (
        data / "edge" / s.collection
    ).is_dir()
    if local_only:
        log.info("collection %s exists in qdrant-client local mode: using it", s.collection)
        return "qdrant-local"
    return "edge"


async def build_core(
    s: GatewaySettings,
    read_roots: Sequence[Path] | None = None,
    with_captioner: bool = True,
    embedder: Embedder | None = None,
) -> GatewayCore:
    """A ready GatewayCore (collection opened or model mismatch recorded).

    `embedder` replaces the one the settings describe (the CLI passes one that
    loads its model only when a command needs vectors)."""
    core = GatewayCore(
        embedder or build_embedder(s),
        build_captioner(s) if with_captioner and s.captions else None,
        build_store(s),
        limits=CoreLimits(
            max_k=s.max_k,
            ingest_batch_size=s.ingest_batch_size,
            max_image_pixels=s.max_image_pixels,
            max_file_bytes=s.max_file_bytes,
            max_response_bytes=s.max_response_bytes,
        ),
        read_roots=list(read_roots) if read_roots is not None else s.roots(),
        captions_required=s.captions_required,
        caption_mode=s.caption_mode,
        spool_dir=Path(s.data_dir).expanduser() / "caption_spool" / s.collection,
        store_threads=4 if s.qdrant_url else 1,
        # The gateway's own folder in every mode (with a Qdrant server too):
        # a ReadWriteMany PersistentVolumeClaim in deploy/k8s.
        thumbnails=(
            ThumbnailStore(Path(s.thumbnails_dir) / s.collection)
            if s.thumbnails_dir
            else ThumbnailStore.under(s.data_dir, s.collection)
        ),
    )
    core.reranker = build_reranker(s, core)
    await core.open()
    return core
