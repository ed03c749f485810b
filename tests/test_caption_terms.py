"""Caption sparse encoding: tokenisation, stable hashing, BM25-like values."""

from __future__ import annotations

import zlib

from search_gateway.caption_terms import (
    SparseTerms,
    document_terms,
    query_terms,
    term_index,
    tokenize,
)


def test_tokenize_lowercases_and_splits_on_non_word_characters() -> None:
    assert tokenize("A man, in a RED-jacket_2024!") == [
        "a",
        "man",
        "in",
        "a",
        "red",
        "jacket",
        "2024",
    ]
    assert tokenize("Café über") == ["café", "über"]
    assert tokenize("  ...  ") == []


def test_term_index_is_stable_crc32() -> None:
    # Stored vectors depend on it: a change here silently breaks caption search.
    assert term_index("red") == zlib.crc32(b"red")
    assert term_index("red") == 4200685455
    assert 0 <= term_index("jacket") < 2**32


def test_document_terms_are_sorted_unique_and_saturate() -> None:
    terms = document_terms("a dog and a dog and a cat")
    assert list(terms.indices) == sorted(set(terms.indices))
    assert len(terms.indices) == 4  # a, dog, and, cat
    by_index = dict(zip(terms.indices, terms.values, strict=True))
    assert by_index[term_index("a")] > by_index[term_index("dog")] > by_index[term_index("cat")]
    # Saturation: three occurrences are worth less than three times one.
    assert by_index[term_index("a")] < 3 * by_index[term_index("cat")]


def test_longer_captions_weigh_each_word_less() -> None:
    short = _as_dict(document_terms("red jacket"))
    long = _as_dict(document_terms("red jacket on a man walking down a busy street"))
    assert short[term_index("red")] > long[term_index("red")]


def test_query_terms_are_binary() -> None:
    terms = query_terms("red red jacket")
    assert terms.values == (1.0, 1.0)
    assert set(terms.indices) == {term_index("red"), term_index("jacket")}


def test_empty_text_gives_falsy_terms() -> None:
    assert not document_terms("")
    assert not query_terms("?!")
    assert document_terms("x")


def _as_dict(terms: SparseTerms) -> dict[int, float]:
    return dict(zip(terms.indices, terms.values, strict=True))
