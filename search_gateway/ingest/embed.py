"""Stage 3, embed and caption: the batch's new images through the models.

Captions run concurrently with the embedding when asked for inline; in
deferred mode the image is stored at once with `caption_pending` and
CaptionBackfill captions it later. A caption that cannot be made fails the
image only when captions are required; otherwise it stays pending.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from imgsearch.errors import FailedPrecondition, ImgsearchError
from imgsearch.results import ImageCaptions
from search_gateway.ingest.states import Embedded, NewImage, Settled, State
from search_gateway.model_clients.base import Captioner, Embedder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelStage:
    embedder: Embedder
    captioner: Captioner | None
    caption_mode: str = "inline"  # or "deferred"
    captions_required: bool = False

    async def __call__(self, batch: list[State], timeout: float | None) -> list[State]:
        """NewImage positions become Embedded (or FAILED); others pass through."""
        new = [s for s in batch if isinstance(s, NewImage)]
        if not new:
            return batch
        done = await self._embed_and_caption(new, timeout)
        return [done[id(s)] if isinstance(s, NewImage) else s for s in batch]

    async def _embed_and_caption(
        self, new: list[NewImage], timeout: float | None
    ) -> dict[int, Embedded | Settled]:
        to_caption = [n for n in new if n.loaded.with_captions]
        pending_later = set()
        if self.caption_mode == "deferred":
            pending_later = {id(n) for n in to_caption}
            to_caption = []
        embed = asyncio.ensure_future(
            self.embedder.embed_images([n.loaded.data for n in new], timeout)
        )
        caption: asyncio.Future[ImageCaptions] | None = None
        if to_caption and self.captioner is not None:
            caption = asyncio.ensure_future(
                self.captioner.caption_images([n.loaded.data for n in to_caption], timeout)
            )
        try:
            result = await embed
        except ImgsearchError as exc:
            if caption is not None:
                caption.cancel()
            return {id(n): n.settle(n.loaded.fail(exc)) for n in new}
        out: dict[int, Embedded | Settled] = {}
        for i, n in enumerate(new):
            vector = result.vectors[i]
            if i in result.errors or vector is None:
                out[id(n)] = n.settle(n.loaded.fail(result.errors.get(i, "no vector")))
            else:
                out[id(n)] = Embedded(n, vector, caption_pending=id(n) in pending_later)
        if to_caption:
            await self._apply_captions(to_caption, caption, out)
        return out

    async def _apply_captions(
        self,
        new: list[NewImage],
        caption: asyncio.Future[ImageCaptions] | None,
        out: dict[int, Embedded | Settled],
    ) -> None:
        batch: ImageCaptions | None = None
        failure: ImgsearchError | None = None
        if caption is None:
            failure = FailedPrecondition("no captioner configured")
        else:
            try:
                batch = await caption
            except ImgsearchError as exc:
                failure = exc
        for i, n in enumerate(new):
            e = out[id(n)]
            if not isinstance(e, Embedded):
                continue
            text = batch.captions[i] if batch is not None else None
            if batch is not None and text is not None:
                e.caption, e.caption_model = text, batch.model
            elif self.captions_required:
                why = batch.errors.get(i, "unknown") if batch is not None else ""
                out[id(n)] = n.settle(n.loaded.fail(failure or f"caption failed: {why}",
                                                    "UNAVAILABLE"))  # fmt: skip
            else:
                # Searchable now by vector; `imgsearch recaption` fills it in later.
                e.caption_pending = True
        if failure is not None and not self.captions_required:
            log.warning("captioning failed, stored as caption_pending: %s", failure)
