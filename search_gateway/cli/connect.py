"""From parsed flags to a running API: the settings object (flags over env
vars over defaults, never written back to the environment) and the embedded
core or a remote gateway behind one protocol."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from search_gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from search_gateway import domain as d
    from search_gateway.core import Hit, SearchQuery, Stats
    from search_gateway.events import ResultShape, SearchPage
    from search_gateway.ingest import IngestItem, IngestOutcome
    from search_gateway.rerank import RerankedSearch, RerankOptions


class GatewayAPI(Protocol):
    """What the CLI needs; GatewayCore (embedded) and RemoteGateway provide it."""

    def ingest(self, items: AsyncIterator[IngestItem]) -> AsyncIterator[IngestOutcome]: ...
    async def search(self, q: SearchQuery, timeout: float | None = None) -> list[Hit]: ...
    async def search_reranked(
        self, q: SearchQuery, options: RerankOptions, timeout: float | None = None
    ) -> RerankedSearch: ...
    async def get(self, ids: Sequence[str]) -> tuple[list[Hit], list[str]]: ...
    async def delete(self, ids: Sequence[str] = (), filter: d.Filter | None = None) -> int: ...
    async def stats(self) -> Stats: ...
    async def search_page(
        self, q: SearchQuery, shape: ResultShape, timeout: float | None = None
    ) -> SearchPage: ...
    async def thumbnail(self, point_id: str) -> bytes: ...
    async def close(self) -> None: ...


# flag dest -> GatewaySettings keyword (flat names fold into the nested
# embedder / captioner sections, see search_gateway.settings.FLAT_NAMES).
SETTING_FLAGS: dict[str, str] = {
    "data_dir": "data_dir",
    "collection": "collection",
    "qdrant_url": "qdrant_url",
    "model": "model",
    "pretrained": "pretrained",
    "caption_model": "caption_model",
    "device": "device",
    "embedder": "embedder_address",
    "captioner": "captioner_address",
    "batch_size": "ingest_batch_size",
    "rerank_model": "rerank_model",
}


def settings_from(args: argparse.Namespace, **overrides: Any) -> GatewaySettings:
    """The gateway settings these flags ask for (flags beat IMGSEARCH_* env vars)."""
    given: dict[str, Any] = {}
    for flag, name in SETTING_FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            given[name] = value
    given.update({k: v for k, v in overrides.items() if v is not None})
    return GatewaySettings(**given)


class NoIndex(Exception):
    """The command needs an index and there is none (or it is empty)."""


def collection_exists(s: GatewaySettings) -> bool | None:
    """Whether the embedded collection exists on disk (None: a server, ask it)."""
    if s.qdrant_url:
        return None
    data = Path(s.data_dir).expanduser()
    edge = data / "edge" / s.collection / "shard"
    local = data / "qdrant" / "collection" / s.collection
    return edge.exists() or local.is_dir()


def no_index_message(s: GatewaySettings, empty: bool = False) -> str:
    where = f"collection '{s.collection}' in {s.data_dir}"
    state = "is empty" if empty else "does not exist yet"
    return f"the index ({where}) {state}: index a folder first with `imgsearch index DIR`"


async def open_api(
    args: argparse.Namespace,
    read_roots: Sequence[Path] = (),
    captions: bool = False,
    need_index: bool = False,
    images: bool = True,
) -> GatewayAPI:
    """The embedded core or a remote gateway.

    need_index: raise NoIndex, before loading or creating anything, when the
    embedded collection does not exist (so a query against a new data folder
    neither loads a model nor binds the folder to it).
    images: whether the command may embed images; when not, a model identity
    missing from the cache comes from CLIP's text tower (lazy_models).
    """
    if args.gateway:
        from imgsearch.serving.auth import bearer
        from imgsearch.serving.security import channel_credentials
        from search_gateway.remote_api import RemoteGateway

        key = args.api_key or os.environ.get("IMGSEARCH_GATEWAY_API_KEY")
        ca = args.tls_ca or os.environ.get("IMGSEARCH_GATEWAY_TLS_CA")
        return RemoteGateway(
            args.gateway, credentials=channel_credentials(ca), metadata=bearer(key)
        )
    settings = settings_from(args)
    if need_index and collection_exists(settings) is False:
        raise NoIndex(no_index_message(settings))
    if _kept is not None:
        return await _kept_core(settings, captions)
    return await _build(settings, read_roots, captions, images)


async def _build(
    settings: GatewaySettings, read_roots: Sequence[Path], captions: bool, images: bool = True
) -> Any:
    from search_gateway.assemble import build_core
    from search_gateway.cli.lazy_models import CACHE_NAME, IdentityCache, LazyEmbedder

    if captions and settings.captions and not settings.captioner.address:
        from search_gateway.cli.preflight import check_blip

        check_blip(settings)
    embedder = None
    if not settings.embedder.address:
        cache = IdentityCache(Path(settings.data_dir).expanduser() / CACHE_NAME)
        embedder = LazyEmbedder(settings, cache, images=images)
    core = await build_core(
        settings, read_roots=read_roots, with_captioner=captions, embedder=embedder
    )
    if _exit_follows and _kept is None:
        core.close = _close_unless_unwritten(core)  # type: ignore[method-assign]
    return core


# Set (ends_process) when this process ends with os._exit right after a
# command that opens the API once: a store it did not write to need not be
# closed first. Closing an Edge shard msyncs every segment file and joins
# its threads: 0.1-0.4 s, a third of a `stats`.
_exit_follows = False


def ends_process() -> None:
    """The process exits (os._exit) as soon as the command returns."""
    global _exit_follows
    _exit_follows = True


def _close_unless_unwritten(core: Any) -> Callable[[], Coroutine[Any, Any, None]]:
    real_close: Callable[[], Awaitable[None]] = core.close

    async def close() -> None:
        if getattr(core.store.sync, "wrote", True):
            await real_close()
        # else: nothing to persist; os._exit releases the shard's files and lock.

    return close


# The warm daemon keeps one core open between commands (settings JSON -> core,
# its real close); None in an ordinary CLI process.
_kept: dict[str, tuple[Any, Any]] | None = None


def keep_cores() -> None:
    """Daemon mode: open_api hands out one long-lived core; close() is a no-op."""
    global _kept
    _kept = {}


async def _kept_core(settings: GatewaySettings, captions: bool) -> Any:
    assert _kept is not None
    key = settings.model_dump_json()
    if key not in _kept:
        await close_kept()  # one core at a time: the embedded store is one process's
        if captions and settings.captions and not settings.captioner.address:
            from search_gateway.cli.preflight import check_blip

            check_blip(settings)
        # Any path the user names (the daemon runs as the user); the captioner
        # loads on the first caption only.
        core = await _build(settings, [Path("/")], True)
        real_close = core.close

        async def kept_open() -> None:
            return None

        core.close = kept_open
        _kept[key] = (core, real_close)
    return _kept[key][0]


async def close_kept() -> None:
    """Closes the daemon's cores (at its exit, or before switching settings)."""
    if not _kept:
        return
    for _core, real_close in list(_kept.values()):
        await real_close()
    _kept.clear()


def abandon_models(api: GatewayAPI) -> None:
    """After Ctrl-C: closing the API will not wait for a busy model thread."""
    from search_gateway.cli.lazy_models import LazyEmbedder

    embedder = getattr(api, "embedder", None)
    if isinstance(embedder, LazyEmbedder):
        embedder.abandon = True
