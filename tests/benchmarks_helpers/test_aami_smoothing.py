"""The label-free shape smoothing of benchmarks/aami_mitbih.py (``beat-features-gbm-shape-smoothed``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from aami_mitbih import smooth_v_by_shape  # noqa: E402


def test_a_beat_shaped_like_its_records_v_beats_takes_their_p_v_and_other_records_are_untouched():
    rng = np.random.default_rng(0)
    normal, ventricular = np.sin(np.linspace(0, 3, 20)), -2 * np.sin(np.linspace(0, 1.5, 20))
    shapes = np.vstack(
        [normal + 0.01 * rng.standard_normal((30, 20)), ventricular + 0.01 * rng.standard_normal((10, 20))]
    )
    records = np.array(["a"] * 40)
    probs = np.tile([0.7, 0.2, 0.05, 0.05], (40, 1))  # N, S, V, F
    probs[30:] = [0.05, 0.05, 0.85, 0.05]
    probs[35] = [0.6, 0.3, 0.05, 0.05]  # a V-shaped beat the model called N
    out = smooth_v_by_shape(probs, shapes, records, k=10)
    assert np.allclose(out.sum(axis=1), 1.0)
    assert out[35, 2] > 0.5 and out[35].argmax() == 2  # its 9 V-shaped neighbours outvote it
    assert np.allclose(out[35, 0] / out[35, 1], 2.0)  # N and S keep their proportion
    assert np.all(out[:30].argmax(axis=1) == 0) and out[:30, 2].max() < 0.1  # normal beats stay normal
    # the same beats split into two records: a record's beats never borrow from another record
    other = np.vstack([shapes[30:], shapes[30:]])
    both = smooth_v_by_shape(
        np.vstack([probs[30:], np.tile([0.9, 0.04, 0.03, 0.03], (10, 1))]),
        other,
        np.array(["a"] * 10 + ["b"] * 10),
        k=10,
    )
    assert np.allclose(both[10:, 2], 0.03) and np.all(both[:10].argmax(axis=1) == 2)


class _Beats:
    """What nested_shape_smoothing reads of task data: targets, item ids and a length."""

    def __init__(self, targets: np.ndarray, records: list[str]):
        self.targets = targets
        self.item_ids = np.array([f"{r}:{i}" for i, r in enumerate(records)])

    def __len__(self) -> int:
        return len(self.targets)


def test_nested_smoothing_chooses_k_on_the_training_records_and_smooths_only_p_v_of_the_test_records():
    from aami_mitbih import SMOOTHING_CHOICES, aami_score, nested_shape_smoothing

    rng = np.random.default_rng(0)
    records = [f"r{r}" for r in range(10) for _ in range(60)]
    targets = np.array(([0] * 45 + [2] * 15) * 10)  # N and V; V's shape is its own, its features barely differ
    shapes = np.where(targets[:, None] == 2, 1.0, -1.0) * np.ones((len(targets), 6)) + 0.1 * rng.standard_normal(
        (len(targets), 6)
    )
    features = np.column_stack(
        [1.5 * (targets == 2) + rng.standard_normal(len(targets)), rng.standard_normal(len(targets))]
    )
    folds = np.repeat(np.arange(5), 120)  # two records per fold
    data = _Beats(targets, records)
    smoothed, unsmoothed, choices = nested_shape_smoothing(data, features, shapes, folds, list(range(5)))
    assert set(choices) == {"0", "1", "2", "3", "4"}
    assert all(c["chosen_k"] in SMOOTHING_CHOICES and c["chosen_k"] > 1 for c in choices.values())
    assert np.allclose(smoothed.sum(axis=1), 1.0) and np.allclose(unsmoothed.sum(axis=1), 1.0)
    assert aami_score(targets, smoothed)["F1_V"] > aami_score(targets, unsmoothed)["F1_V"] + 0.1
    # smoothing moves p(V) only; N, S and F keep their proportions
    n, s = smoothed[:, 0] / unsmoothed[:, 0], smoothed[:, 1] / np.maximum(unsmoothed[:, 1], 1e-300)
    keep = unsmoothed[:, 1] > 1e-6
    assert np.allclose(n[keep], s[keep])


def test_pooled_nested_choice_finds_the_class_weights_a_rare_class_needs(monkeypatch):
    import aami_mitbih
    from aami_mitbih import pooled_nested_trees

    monkeypatch.setattr(aami_mitbih, "TREE_SETTINGS_GRID", {"class_weight": [None, "balanced"], "max_iter": [30]})
    rng = np.random.default_rng(0)
    records = [f"r{r}" for r in range(10) for _ in range(80)]
    targets = np.array(([0] * 70 + [1] * 4 + [2] * 6) * 10)  # N, S, V: S rare and barely separable
    signal = np.select([targets == 1, targets == 2], [0.9, 3.0], 0.0)
    features = np.column_stack([signal + rng.standard_normal(len(targets)), rng.standard_normal(len(targets))])
    folds = np.repeat(np.arange(5), 160)
    probs, choices = pooled_nested_trees(_Beats(targets, records), features, folds, [0, 1])
    assert set(choices) == {"0", "1"}
    for choice in choices.values():
        scores = {s["settings"]["class_weight"]: s["score"] for s in choice["inner"]}
        assert choice["chosen"]["class_weight"] == max(scores, key=scores.get)  # the best pooled inner score wins
        assert choice["chosen"]["class_weight"] == "balanced"  # unweighted trees hardly ever call the rare S
    tested = np.isin(folds, [0, 1])
    assert np.allclose(probs[tested].sum(axis=1), 1.0) and np.isnan(probs[~tested]).all()


def test_bagged_nested_smoothing_draws_whole_training_records(monkeypatch):
    import aami_mitbih
    from aami_mitbih import nested_shape_smoothing

    drawn = []

    class Recording(aami_mitbih.SubaggedTrees):
        def fit(self, features, targets, sample_weight=None, groups=None):
            drawn.append((len(targets), set(np.unique(groups))))
            return super().fit(features, targets, sample_weight=sample_weight, groups=groups)

    monkeypatch.setattr(aami_mitbih, "SubaggedTrees", Recording)
    rng = np.random.default_rng(1)
    records = [f"r{r}" for r in range(10) for _ in range(40)]
    targets = np.array(([0] * 30 + [2] * 10) * 10)
    features = np.column_stack([2.0 * (targets == 2) + rng.standard_normal(400), rng.standard_normal(400)])
    shapes = rng.standard_normal((400, 4))
    folds = np.repeat(np.arange(5), 80)
    settings = {"0": {"max_iter": 15, "class_weight": "balanced"}}
    smoothed, unsmoothed, _ = nested_shape_smoothing(
        _Beats(targets, records), features, shapes, folds, [0], tree_settings=settings, bagged=True
    )
    # 4 inner fits and the outer one, each on the training records' beats with their records as groups
    assert len(drawn) == 5 and drawn[-1] == (320, {f"r{r}" for r in range(2, 10)})
    assert all(groups <= {f"r{r}" for r in range(2, 10)} for _, groups in drawn)
    assert np.allclose(unsmoothed[:80].sum(axis=1), 1.0) and np.isnan(unsmoothed[80:]).all()


def test_bagged_feature_model_folds_draw_records_and_synthetic_beats_cannot_be_drawn(monkeypatch):
    import aami_mitbih
    from aami_mitbih import fit_on, run_feature_model
    from cardiolens.errors import CardiolensError

    drawn = []

    class Recording(aami_mitbih.SubaggedTrees):
        def fit(self, features, targets, sample_weight=None, groups=None):
            drawn.append((set(np.unique(groups)), sample_weight is not None))
            return super().fit(features, targets, sample_weight=sample_weight, groups=groups)

    monkeypatch.setattr(aami_mitbih, "score_out_of_fold", lambda data, probs, folds, parts: {"probs": probs})
    rng = np.random.default_rng(2)
    records = [f"r{r}" for r in range(10) for _ in range(40)]
    targets = np.array(([0] * 28 + [1] * 4 + [2] * 8) * 10)
    features = np.column_stack([np.select([targets == 1, targets == 2], [1.5, 3.0], 0.0) + rng.standard_normal(400)])
    folds = np.repeat(np.arange(5), 80)
    data = _Beats(targets, records)
    groups = aami_mitbih.record_of_beats(data)
    assert groups.tolist() == records
    out = run_feature_model(
        data,
        features,
        lambda part: Recording(members=2, params={"max_iter": 10}),
        folds,
        [0, 1],
        weighted=True,
        groups=groups,
    )
    # fold 0 trains on r2-r9, fold 1 on r0, r1, r4-r9: the records of each fold's training part, weighted
    assert drawn == [({f"r{r}" for r in range(2, 10)}, True), ({f"r{r}" for r in (0, 1, *range(4, 10))}, True)]
    assert np.allclose(out["probs"][:160].sum(axis=1), 1.0) and np.isnan(out["probs"][160:]).all()
    with pytest.raises(CardiolensError, match="no record to draw them by"):
        fit_on(
            Recording(),
            features,
            targets,
            folds != 0,
            True,
            lambda train, part: (features[:2], targets[:2]),
            0,
            groups,
        )


def test_pooled_nested_choice_adds_synthetic_beats_of_each_fits_own_training_records(monkeypatch):
    import aami_mitbih
    from aami_mitbih import pooled_nested_trees

    monkeypatch.setattr(aami_mitbih, "TREE_SETTINGS_GRID", {"class_weight": [None, "balanced"], "max_iter": [10]})
    rng = np.random.default_rng(3)
    records = [f"r{r}" for r in range(10) for _ in range(40)]
    targets = np.array(([0] * 30 + [2] * 10) * 10)
    features = np.column_stack([2.0 * (targets == 2) + rng.standard_normal(400), rng.standard_normal(400)])
    folds = np.repeat(np.arange(5), 80)
    asked = []

    def extra_training(train, part):
        asked.append((part, set(np.asarray(records)[train])))
        return np.full((3, 2), 9.0), np.zeros(3, dtype=int)  # three synthetic N beats far from every real one

    fits = []
    original = aami_mitbih.fit_on

    def recording_fit_on(model, x, y, train, weighted, extra, part, groups=None):
        fitted = original(model, x, y, train, weighted, extra, part, groups)
        fits.append(fitted.n_features_in_)
        return fitted

    monkeypatch.setattr(aami_mitbih, "fit_on", recording_fit_on)
    probs, _ = pooled_nested_trees(_Beats(targets, records), features, folds, [0], extra_training)
    # 2 settings x 4 inner fits, then the outer fit; each asks for synthetic beats of its own records only
    assert len(asked) == 2 * 4 + 1 and len(fits) == len(asked)
    assert all(part == 0 and recs <= {f"r{r}" for r in range(2, 10)} for part, recs in asked)
    assert asked[-1][1] == {f"r{r}" for r in range(2, 10)}  # the outer fit: every training record
    assert all(len(recs) < 8 for _, recs in asked[:-1])  # inner fits leave their inner test records out
    assert np.allclose(probs[:80].sum(axis=1), 1.0) and np.isnan(probs[80:]).all()
