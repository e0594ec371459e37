"""The paired score difference of benchmarks/finetune_cinc2017.py (``--paired A B``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from cardiolens.errors import CardiolensError  # noqa: E402
from finetune_cinc2017 import paired_difference, score_difference  # noqa: E402


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(4)[labels]


def test_a_model_right_where_the_other_errs_scores_higher_with_an_interval_above_zero():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    folds = np.arange(400) % 5
    wrong = y.copy()
    wrong[::4] = (y[::4] + 1) % 4  # a quarter of the records wrong
    out = score_difference(y, _one_hot(y), _one_hot(wrong), folds)
    assert 0 < out["low"] <= out["value"] <= out["high"]
    assert set(out["per_fold"]) == {"0", "1", "2", "3", "4"} and min(out["per_fold"].values()) > 0
    # the same model against itself: exactly 0, every resample
    same = score_difference(y, _one_hot(wrong), _one_hot(wrong), folds)
    assert same["value"] == same["low"] == same["high"] == 0
    # swapping the two negates the difference
    swapped = score_difference(y, _one_hot(wrong), _one_hot(y), folds)
    assert swapped["value"] == pytest.approx(-out["value"]) and swapped["high"] < 0


def test_paired_difference_names_a_run_that_has_no_out_of_fold_probabilities(tmp_path):
    with pytest.raises(CardiolensError, match="missing-run: no out-of-fold probabilities.*--only missing-run"):
        paired_difference("missing-run", "other", tmp_path)
