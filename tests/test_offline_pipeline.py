"""The offline-tiny models find the right scenes through the real pipeline
(embedded gateway: decode, embed, Qdrant, filters), on held-out scenes."""

from __future__ import annotations

import pytest

from offline_models.pipeline_eval import evaluate_pipeline


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return evaluate_pipeline(
        n_scenes=500, n_attr_queries=80, caption_scenes=150, data_dir=tmp_path_factory.mktemp("eval")
    )


def test_colour_and_shape_queries(metrics: dict) -> None:
    assert metrics["colour_shape"] >= 0.9, metrics


def test_queries_with_size_or_position(metrics: dict) -> None:
    assert metrics["with_size_or_position"] >= 0.5, metrics


def test_captions_name_the_object(metrics: dict) -> None:
    assert metrics["captions_single_object"] >= 0.8, metrics["caption_examples"]


def test_filters_are_never_violated(metrics: dict) -> None:
    assert metrics["filter_violations"] == 0
