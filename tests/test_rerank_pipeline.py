"""Issue 16's re-ranking bars through the real pipeline (files -> embedded gateway ->
Qdrant Edge -> search -> offline-tiny matcher on thumbnails), on held-out scenes.

Smaller than `python eval/rerank_quality.py` (whose figures are in the model card)
so the suite stays fast; the bars are the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from offline_training.rerank_eval import check_bars, evaluate_rerank


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return evaluate_rerank(
        n_scenes=300, n_attr_queries=40, n_groups=8, data_dir=Path(tmp_path_factory.mktemp("rr"))
    )


@pytest.mark.parametrize("bar", range(4))
def test_rerank_bars(metrics: dict, bar: int) -> None:
    name, passed, figures = check_bars(metrics)[bar]
    assert passed, f"{name}: {figures}"


def test_hybrid_is_reported(metrics: dict) -> None:
    for kind in ("binding", "relation"):
        assert 0.0 <= metrics[f"relational_{kind}/hybrid"] <= 1.0
