"""Search re-ranking: a cross-encoder re-orders the first candidates of a search.

A CLIP vector compresses an image into one point and is weakest exactly where
users are precise (where things are, which colour goes with which object). An
image-text matching model reads the query and the image together and can tell
those apart, but costs a model pass per pair, so it only sees the first
`candidates` hits of the vector (or hybrid) search, after tenancy and filters.

It scores the stored thumbnails (search_gateway.thumbnails), so re-ranking works
when the original files live elsewhere; a point without a thumbnail is scored
from its original file when the gateway may read it, else it keeps no re-rank
score and goes after the scored ones (in vector order).

Deadline-aware: the scorer gets what is left of the call's deadline (capped by
`max_seconds`). When it is absent, down or too slow, the hits come back in vector
order marked not re-ranked with a note, unless the request is strict; then the
call fails (FAILED_PRECONDITION / UNAVAILABLE / DEADLINE_EXCEEDED).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from imgsearch.errors import DeadlineExceeded, FailedPrecondition, ImgsearchError, InvalidInput
from search_gateway.model_clients.base import Scorer
from search_gateway.thumbnails import ThumbnailStore

if TYPE_CHECKING:
    from search_gateway.core import GatewayCore, Hit, SearchQuery

log = logging.getLogger(__name__)

DEFAULT_CANDIDATES = 50
MAX_CANDIDATES = 200
# Time kept back from the caller's deadline to build and send the answer.
_REPLY_MARGIN_S = 0.05


@dataclass(frozen=True)
class RerankOptions:
    """A request's re-rank wish: candidates 0 = default (50), at most 200."""

    candidates: int = 0
    strict: bool = False

    def count(self) -> int:
        n = self.candidates or DEFAULT_CANDIDATES
        if not 1 <= n <= MAX_CANDIDATES:
            raise InvalidInput(f"rerank candidates must be within 1..{MAX_CANDIDATES}, got {n}")
        return n


def fused_order(hits: Sequence[Hit], vector_weight: float) -> list[int]:
    """Indices of `hits` (in vector order, some with a match probability) re-ordered.

    The key is P(match) + vector_weight * the vector score min-max scaled over
    the candidates (0 for the last, 1 for the first), so a small weight only
    breaks near-ties and the scale is the same for cosine and hybrid (RRF)
    scores. Ties keep vector order; unscored hits follow in vector order.
    """
    scores = [h.score for h in hits]
    top, low = (max(scores), min(scores)) if scores else (0.0, 0.0)
    span = (top - low) or 1.0
    keyed = [
        (h.rerank_score + vector_weight * (h.score - low) / span, i)
        for i, h in enumerate(hits)
        if h.rerank_score is not None
    ]
    order = [i for _, i in sorted(keyed, key=lambda t: (-t[0], t[1]))]
    seen = set(order)
    return order + [i for i in range(len(hits)) if i not in seen]


@dataclass
class RerankedSearch:
    """Hits (re-ranked or in vector order) and what happened."""

    hits: list[Hit]
    reranked: bool
    model: str = ""
    note: str = ""


class Reranker:
    """Scores candidates' thumbnails with a Scorer and re-orders them."""

    def __init__(
        self,
        scorer: Scorer | None,
        thumbnails: ThumbnailStore | None,
        read_original: Callable[[str], bytes] | None = None,
        max_seconds: float = 10.0,
        vector_weight: float = 0.0,
    ) -> None:
        self.scorer = scorer
        self.thumbnails = thumbnails
        self.read_original = read_original
        self.max_seconds = max_seconds
        self.vector_weight = vector_weight

    async def close(self) -> None:
        if self.scorer is not None:
            await self.scorer.close()

    async def search(
        self,
        core: GatewayCore,
        q: SearchQuery,
        options: RerankOptions,
        timeout: float | None = None,
        tenant: str | None = None,
    ) -> RerankedSearch:
        """The first `candidates` hits of `q` (offset 0), re-ranked, then paged by q's k/offset."""
        n = options.count()
        if q.text is None:
            raise InvalidInput("re-ranking needs a text query")
        if q.offset + q.k > n:
            raise InvalidInput(
                f"offset + k ({q.offset + q.k}) is more than the {n} re-ranked candidates"
            )
        started = time.monotonic()
        candidates = await core.search(replace(q, k=n, offset=0), timeout, tenant)
        left = None if timeout is None else timeout - (time.monotonic() - started)
        result = await self.rerank(q.text, candidates, options.strict, left)
        result.hits = result.hits[q.offset : q.offset + q.k]
        return result

    async def rerank(
        self, text: str, hits: list[Hit], strict: bool, timeout: float | None
    ) -> RerankedSearch:
        """`hits` re-ordered by P(text matches thumbnail), or as they are with a note."""
        if not hits:
            return RerankedSearch(hits, reranked=True)
        if self.scorer is None:
            return self._fallback(hits, strict, FailedPrecondition("no re-rank scorer configured"))
        budget = self.max_seconds if timeout is None else min(self.max_seconds, timeout)
        budget -= _REPLY_MARGIN_S
        if budget <= 0:
            return self._fallback(hits, strict, DeadlineExceeded("no time left to re-rank"))
        deadline = time.monotonic() + budget
        images, from_files = await asyncio.to_thread(self._images, hits)
        have = [i for i, data in enumerate(images) if data is not None]
        if not have:
            return self._fallback(
                hits, strict, FailedPrecondition("no candidate has a stored thumbnail")
            )
        left = deadline - time.monotonic()
        try:
            batch = await asyncio.wait_for(
                self.scorer.score(text, [images[i] for i in have], timeout=left),  # type: ignore[misc]
                timeout=max(left, 0.001),
            )
        except TimeoutError:
            return self._fallback(
                hits, strict, DeadlineExceeded(f"scorer did not answer within {budget:.2f} s")
            )
        except ImgsearchError as exc:  # absent, down, overloaded, refused the text
            return self._fallback(hits, strict, exc)
        for j, i in enumerate(have):
            hits[i].rerank_score = batch.scores[j]
        order = fused_order(hits, self.vector_weight)
        notes = []
        unscored = sum(h.rerank_score is None for h in hits)
        if unscored:
            notes.append(f"{unscored} of {len(hits)} candidates had no scorable image")
        if from_files:
            notes.append(f"{from_files} scored from original files (no thumbnail)")
        return RerankedSearch(
            [hits[i] for i in order], reranked=True, model=batch.model, note="; ".join(notes)
        )

    def _images(self, hits: Sequence[Hit]) -> tuple[list[bytes | None], int]:
        """Thumbnail bytes per hit (original file as fallback); runs in a thread."""
        out: list[bytes | None] = []
        from_files = 0
        for hit in hits:
            data = self.thumbnails.get(hit.id) if self.thumbnails is not None else None
            if data is None and self.read_original is not None and hit.uri:
                try:
                    data = self.read_original(hit.uri)
                    from_files += 1
                except ImgsearchError:
                    data = None
            out.append(data)
        return out, from_files

    @staticmethod
    def _fallback(hits: list[Hit], strict: bool, why: ImgsearchError) -> RerankedSearch:
        if strict:
            raise why
        log.info("search not re-ranked: %s", why)
        return RerankedSearch(hits, reranked=False, note=f"not re-ranked: {why}")
