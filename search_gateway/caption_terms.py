"""Caption text as sparse vectors, for BM25-like caption search in Qdrant.

Words are hashed (crc32) to uint32 dimensions, so no vocabulary has to be
stored or shared between processes; Qdrant's IDF modifier on the sparse
vector supplies the inverse document frequency at query time. Documents carry
BM25-saturated term frequencies, queries carry 1.0 per distinct word, so the
dot product Qdrant computes is the BM25 score (up to hash collisions, which
are rare at caption vocabulary sizes).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass

# Same tokenisation as Qdrant's default word tokenizer (split on anything but
# letters and digits, lowercase), so full-text filters and ranking agree.
_WORD_RE = re.compile(r"[^\W_]+")

# BM25 parameters. The document length is normalised against a typical
# caption length instead of the corpus average, which would change with every
# insert and force re-encoding stored points.
K1 = 1.2
B = 0.75
TYPICAL_CAPTION_WORDS = 10.0


@dataclass(frozen=True)
class SparseTerms:
    """Sorted unique indices and their values, ready for a Qdrant SparseVector."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __bool__(self) -> bool:
        return bool(self.indices)


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens of text."""
    return [token.lower() for token in _WORD_RE.findall(text)]


def term_index(token: str) -> int:
    """Stable uint32 dimension of a token (crc32 is identical on every platform)."""
    return zlib.crc32(token.encode("utf-8")) & 0xFFFFFFFF


def _hashed_counts(tokens: list[str]) -> Counter[int]:
    # Colliding words share a dimension; their counts add up.
    return Counter(term_index(token) for token in tokens)


def document_terms(text: str) -> SparseTerms:
    """Sparse vector of a stored caption: BM25-saturated term frequencies."""
    tokens = tokenize(text)
    counts = _hashed_counts(tokens)
    norm = K1 * (1.0 - B + B * len(tokens) / TYPICAL_CAPTION_WORDS)
    items = sorted(counts.items())
    return SparseTerms(
        indices=tuple(i for i, _ in items),
        values=tuple(tf * (K1 + 1.0) / (tf + norm) for _, tf in items),
    )


def query_terms(text: str) -> SparseTerms:
    """Sparse vector of a caption query: 1.0 per distinct word."""
    indices = sorted(_hashed_counts(tokenize(text)))
    return SparseTerms(indices=tuple(indices), values=tuple(1.0 for _ in indices))
