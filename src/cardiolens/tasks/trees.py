"""The gradient-boosted trees that the feature-based benchmarks fit (AAMI beats, CinC 2017 rhythm).

One definition, so that both benchmarks and their tests use the same classifier and weighting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def boosted_trees(seed: int = 0) -> Any:
    """scikit-learn's histogram gradient boosting: 300 rounds, learning rate 0.05, default tree sizes.

    Missing values (NaN) are a value of their own, so features undefined for an item need no filling.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05, random_state=seed)


class SubaggedTrees:
    """The mean of ``members`` boosted-tree models, each fitted on a random share of the items
    (drawn without replacement: "subagging", Buhlmann & Yu 2002) and choosing each split among a
    random part of the features (``max_features``).

    One boosted-tree model is deterministic but unstable: a small change of its data (a few records'
    beats) changes many of its predictions, and averaging members fitted on perturbed data lowers
    that variance. The members are not the single model, though: each learns from fewer items and
    fewer features per split, which can cost more than the averaging gains (it did on the 22 MIT-BIH
    records, docs/BENCHMARKS.md). The share is drawn by class (stratified), or, with ``groups``, as
    whole groups (patients), so that each member sees a different mix of patients. ``params``:
    settings of every member's :func:`boosted_trees`. scikit-learn style: ``fit``, ``predict_proba``,
    ``predict``, ``classes_``.

    ``predict_proba`` is the plain mean of the members' probabilities; a class that a member's draw
    did not contain counts as 0 from that member (logged as a warning at fit time), so a rare class
    drawn by few members is predicted less often.
    """

    def __init__(
        self,
        members: int = 10,
        share: float = 0.8,
        max_features: float = 0.5,
        seed: int = 0,
        params: dict | None = None,
    ):
        if members < 1 or not 0.0 < share <= 1.0 or not 0.0 < max_features <= 1.0:
            raise ValueError(
                f"need members >= 1 and share, max_features in (0, 1], got {members}, {share}, {max_features}"
            )
        self.members, self.share, self.max_features, self.seed = members, share, max_features, seed
        self.params = dict(params or {})

    def _rows(self, y: np.ndarray, groups: np.ndarray | None, seed: int) -> np.ndarray:
        """The items of one member: ``share`` of the groups (rounded half up), or of each class."""
        from sklearn.model_selection import train_test_split

        if self.share == 1.0:
            return np.arange(len(y))
        if groups is None:
            return train_test_split(np.arange(len(y)), train_size=self.share, stratify=y, random_state=seed)[0]
        names = np.unique(groups)
        count = max(1, int(np.floor(self.share * len(names) + 0.5)))
        if count == len(names):
            raise ValueError(f"a share of {self.share} of {len(names)} groups keeps every group: nothing to subsample")
        keep = np.random.default_rng(seed).choice(names, count, replace=False)
        return np.flatnonzero(np.isin(groups, keep))

    def fit(self, features: Any, targets: Any, sample_weight: Any = None, groups: Any = None) -> SubaggedTrees:
        x, y = np.asarray(features), np.asarray(targets)
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != len(y):
                raise ValueError(f"{len(groups)} groups for {len(y)} items")
        self.classes_ = np.unique(y)
        self.models_ = []
        for m in range(self.members):
            seed = self.seed + m
            rows = self._rows(y, groups, seed)
            seen = np.unique(y[rows])
            if len(seen) < 2:
                raise ValueError(f"member {m} drew items of one class only ({seen.tolist()}): draw a larger share")
            if len(seen) < len(self.classes_):
                log.warning(
                    "subagged member %d drew no item of class %s; it counts as 0 for it",
                    m,
                    sorted(set(self.classes_.tolist()) - set(seen.tolist())),
                )
            model = boosted_trees(seed).set_params(**self.params, max_features=self.max_features)
            weights = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight)[rows]}
            self.models_.append(model.fit(x[rows], y[rows], **weights))
        return self

    def predict_proba(self, features: Any) -> np.ndarray:
        probs = np.zeros((len(features), len(self.classes_)))
        for model in self.models_:
            probs[:, np.searchsorted(self.classes_, model.classes_)] += model.predict_proba(features)
        return probs / len(self.models_)

    def predict(self, features: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(features).argmax(axis=1)]


# the settings an inner cross-validation chooses among (12 combinations; the first is boosted_trees())
TREE_SETTINGS_GRID: dict[str, list] = {
    "learning_rate": [0.05, 0.1],
    "max_leaf_nodes": [31, 15, 63],
    "class_weight": [None, "balanced"],
}


def tuned_boosted_trees(
    features: Any,
    targets: Any,
    score: Callable[[Any, Any], float],
    groups: Any = None,
    grid: dict[str, list] | None = None,
    inner_folds: int = 4,
    seed: int = 0,
) -> tuple[Any, dict]:
    """:func:`boosted_trees` with the settings of ``grid`` that score best in an inner cross-validation
    on the given (training) items, refitted on all of them.

    Nested inside an outer cross-validation, the outer test items never take part in the choice, so the
    outer score is an honest estimate of "trees tuned this way". ``score(y_true, y_pred_labels)``;
    ``groups`` (patients) keep each patient's items in one inner fold.

    Returns:
        ``(fitted model, {"chosen": settings, "inner": [{"settings", "score"}, ...]})``.
    """
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold

    if groups is None:
        splitter = StratifiedKFold(inner_folds, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedGroupKFold(inner_folds, shuffle=True, random_state=seed)
    search = GridSearchCV(
        boosted_trees(seed),
        grid or TREE_SETTINGS_GRID,
        scoring=make_scorer(score),
        cv=splitter,
        refit=True,
        n_jobs=1,
        error_score="raise",
    )
    search.fit(features, targets, groups=groups)
    inner = [
        {"settings": dict(settings), "score": float(value)}
        for settings, value in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True)
    ]
    return search.best_estimator_, {"chosen": dict(search.best_params_), "inner": inner}


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


__all__ = [
    "TREE_SETTINGS_GRID",
    "SubaggedTrees",
    "balanced_weights",
    "boosted_trees",
    "permutation_importance_table",
    "tuned_boosted_trees",
]
