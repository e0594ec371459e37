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


def permutation_importance_table(
    model: Any, features: Any, targets: Any, score: Any, names: Any, top: int = 15, repeats: int = 5
) -> list[dict]:
    """The ``top`` features whose shuffling among the items lowers ``score(targets, predicted labels)``
    the most (scikit-learn's permutation importance, ``repeats`` shuffles, seed 0), largest first.

    Correlated features share their importance, so a small drop does not make a feature useless.
    """
    from sklearn.inspection import permutation_importance

    result = permutation_importance(
        model,
        features,
        targets,
        scoring=lambda estimator, x, y: score(y, estimator.predict(x)),
        n_repeats=repeats,
        random_state=0,
    )
    order = np.argsort(result.importances_mean)[::-1][:top]
    return [
        {"feature": names[i], "drop": float(result.importances_mean[i]), "sd": float(result.importances_std[i])}
        for i in order
    ]


__all__ = ["balanced_weights", "boosted_trees", "permutation_importance_table"]
