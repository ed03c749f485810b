"""Models the CLI loads only when a command needs them.

`stats`, `delete`, `get` and `similar --id` never compute a vector, yet the
gateway core asks its embedder for the model identity when it opens the
collection (to refuse a collection built by another model). Loading CLIP for
that costs seconds (importing torch and open_clip alone) and a gigabyte. The
LazyEmbedder answers the identity from a small cache written the first time
the model really loaded, keyed by the model settings (and the checkpoint
file's size and mtime), so the model check still happens; the model itself
is built on the first embed call, in a thread, so Ctrl-C stays responsive.

Text queries need only the text tower: embed_texts builds
embedder_service.text_tower.ClipTextEmbedder (no image tower, no timm /
transformers / torchvision imports; the same vectors, bit for bit) unless the
full model is already loaded, and falls back to the full model for models
the text-only build does not cover. Images (index, similar FILE) always use
the full model.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.results import ImageVectors
from search_gateway.domain import CollectionSpec as EmbedderIdentity
from search_gateway.model_clients.base import Embedder
from search_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

CACHE_NAME = "model_identity.json"


def identity_key(s: GatewaySettings) -> str:
    """What decides the identity: model and weights, and the files' versions."""
    e = s.embedder
    parts: list[Any] = [e.model, e.pretrained]
    for name in (e.model, e.pretrained):
        path = Path(name).expanduser() if name else None
        if path is not None and path.is_file():
            st = path.stat()
            parts.append([st.st_size, st.st_mtime_ns])
    return json.dumps(parts)


class IdentityCache:
    """identity_key -> EmbedderIdentity, in one JSON file under the data folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> EmbedderIdentity | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return EmbedderIdentity(
                str(entry["model"]), str(entry["pretrained"]), int(entry["dimension"])
            )
        except (TypeError, KeyError, ValueError):
            return None

    def put(self, key: str, ident: EmbedderIdentity) -> None:
        data = self._read()
        data[key] = {
            "model": ident.model,
            "pretrained": ident.pretrained,
            "dimension": ident.dimension,
        }
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            tmp.replace(self.path)


class LazyEmbedder:
    """The Embedder interface; the in-process model is built on first use."""

    def __init__(
        self, settings: GatewaySettings, cache: IdentityCache, images: bool = True
    ) -> None:
        self.settings = settings
        self.images = images  # False: the command embeds no image (identity from the text tower)
        self.cache = cache
        self.key = identity_key(settings)
        self._inner: Embedder | None = None
        self._text: Embedder | None = None  # text tower only
        self._text_covered = True  # False once the text-only build declined this model
        self._lock = asyncio.Lock()
        self.abandon = False  # set on Ctrl-C: close without waiting for a model thread

    @property
    def loaded(self) -> bool:
        return self._inner is not None or self._text is not None

    async def real(self) -> Embedder:
        async with self._lock:
            if self._inner is None:
                from search_gateway.assemble import build_embedder
                from search_gateway.cli.preflight import check_clip

                await asyncio.to_thread(check_clip, self.settings)  # seconds, not a minute
                self._inner = await asyncio.to_thread(build_embedder, self.settings)
                # The full model embeds texts from now on (the same vectors);
                # a warm daemon need not keep a second text tower (and its
                # threads) in memory.
                text, self._text = self._text, None
                if text is not None:
                    await text.close()
            return self._inner

    async def for_texts(self) -> Embedder:
        """The full model when it is loaded, else the text tower alone."""
        async with self._lock:
            if self._inner is not None:
                return self._inner
            if self._text is None and self._text_covered:
                from search_gateway.assemble import build_text_embedder
                from search_gateway.cli.preflight import check_clip

                await asyncio.to_thread(check_clip, self.settings)
                self._text = await asyncio.to_thread(build_text_embedder, self.settings)
                self._text_covered = self._text is not None
            if self._text is not None:
                return self._text
        return await self.real()

    async def identity(self) -> EmbedderIdentity:
        cached = self.cache.get(self.key)
        if cached is not None:
            return cached
        loaded = self._inner or self._text
        if loaded is None:
            loaded = await (self.real() if self.images else self.for_texts())
        ident = await loaded.identity()
        self.cache.put(self.key, ident)
        return ident

    async def embed_images(
        self, images: Sequence[bytes], timeout: float | None = None
    ) -> ImageVectors:
        return await (await self.real()).embed_images(images, timeout)

    async def embed_texts(self, texts: Sequence[str], timeout: float | None = None) -> np.ndarray:
        return await (await self.for_texts()).embed_texts(texts, timeout)

    async def close(self) -> None:
        for inner in (self._inner, self._text):
            if inner is None:
                continue
            if self.abandon:
                for pool in ("_decode", "_infer"):  # LocalEmbedder's executors
                    executor = getattr(inner, pool, None)
                    if executor is not None:
                        executor.shutdown(wait=False, cancel_futures=True)
                continue
            await inner.close()
