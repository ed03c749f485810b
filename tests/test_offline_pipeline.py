"""The offline-tiny models through the real pipeline (embedded gateway: decode,
embed, Qdrant, filters, captions) on held-out scenes.

Issue 4's bars (0.9 / 0.5 / 0.8) are not met yet by the committed weights
(under-trained on a shared 2-core CPU, see offline_models/MODEL_CARD.md): they
are xfail tests, so reaching them turns them into XPASS. The floors below the
current figures are hard: a change that makes search worse fails the suite.
"""

from __future__ import annotations

import pytest

from offline_models.pipeline_eval import evaluate_pipeline

# Just under what the committed weights measure through the pipeline
# (0.80 / 0.78 / 0.60 with these settings).
FLOORS = {"colour_shape": 0.7, "with_size_or_position": 0.6, "captions_single_object": 0.5}
BARS = {"colour_shape": 0.9, "with_size_or_position": 0.5, "captions_single_object": 0.8}


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return evaluate_pipeline(
        n_scenes=500, n_attr_queries=80, caption_scenes=150, data_dir=tmp_path_factory.mktemp("eval")
    )


@pytest.mark.parametrize("metric", sorted(FLOORS))
def test_no_worse_than_the_committed_models(metrics: dict, metric: str) -> None:
    assert metrics[metric] >= FLOORS[metric], (metric, metrics[metric])


@pytest.mark.xfail(reason="issue 4 bars not reached yet: more training needed", strict=False)
@pytest.mark.parametrize("metric", sorted(BARS))
def test_issue_bars(metrics: dict, metric: str) -> None:
    assert metrics[metric] >= BARS[metric], (metric, metrics[metric])


def test_filters_are_never_violated(metrics: dict) -> None:
    assert metrics["filter_violations"] == 0
