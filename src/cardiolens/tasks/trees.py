"""The gradient-boosted trees that the feature-based benchmarks fit (AAMI beats, CinC 2017 rhythm).

One definition, so that both benchmarks and their tests use the same classifier and weighting.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def boosted_trees(seed: int = 0) -> Any:
    """scikit-learn's histogram gradient boosting: 300 rounds, learning rate 0.05, default tree sizes.

    Missing values (NaN) are a value of their own, so features undefined for an item need no filling.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)


def balanced_weights(targets: Any, classes: int) -> np.ndarray:
    """Per-item weights ``N / (classes * count of its class)``: every class weighs as much in total."""
    y = np.asarray(targets, dtype=np.int64)
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    return (len(y) / (classes * np.maximum(counts, 1)))[y]


__all__ = ["balanced_weights", "boosted_trees"]
