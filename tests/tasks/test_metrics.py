"""Task metrics: values worked out by hand, edge cases, and a bootstrap that resamples patients."""

from __future__ import annotations

import numpy as np
import pytest

from cardiolens.errors import CardiolensError
from cardiolens.tasks.metrics import (
    auprc,
    auroc,
    bootstrap,
    bootstrap_scores,
    cinc2017_score,
    fmax,
    macro_f1,
    per_class_auroc,
    sensitivity_ppv,
)


def test_cinc2017_score_by_hand() -> None:
    truth = ["N", "N", "N", "A", "A", "O", "O", "~"]
    pred = ["N", "N", "O", "A", "N", "O", "O", "~"]
    # confusion rows N: [2,0,1,0], A: [1,1,0,0], O: [0,0,2,0], ~: [0,0,0,1]
    got = cinc2017_score(truth, pred)
    assert got["F1_N"] == pytest.approx(2 * 2 / (3 + 3))
    assert got["F1_A"] == pytest.approx(2 * 1 / (2 + 1))
    assert got["F1_O"] == pytest.approx(2 * 2 / (2 + 3))
    assert got["F1_~"] == pytest.approx(1.0)
    assert got["score"] == pytest.approx((4 / 6 + 2 / 3 + 4 / 5) / 3)  # noisy class not in the mean
    assert cinc2017_score([0, 1, 2], [0, 1, 2])["score"] == 1.0  # indices work too
    with pytest.raises(CardiolensError, match="unknown classes"):
        cinc2017_score(["N", "X"], ["N", "N"])


def test_auroc_binary_multiclass_and_multilabel() -> None:
    assert auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auroc([0, 1, 2], np.eye(3)) == 1.0
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    s = np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.6], [0.2, 0.1]])
    assert auroc(y, s) == 1.0 and auroc(y, s, average="micro") == pytest.approx(1.0)
    # a label with no positives is left out of the average, reported as NaN per class
    y_missing = np.column_stack([y, np.zeros(4, dtype=int)])
    s_missing = np.column_stack([s, np.full(4, 0.5)])
    assert auroc(y_missing, s_missing) == 1.0
    assert np.isnan(per_class_auroc(y_missing, s_missing)[2])
    assert auprc(y, s) == 1.0
    with pytest.raises(CardiolensError, match="no class"):
        auroc(np.zeros((3, 2), dtype=int), np.ones((3, 2)))


def test_fmax_picks_the_best_shared_threshold() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1]])
    s = np.array([[0.9, 0.3], [0.2, 0.6], [0.7, 0.65]])
    best, threshold = fmax(y, s)
    assert best == pytest.approx(1.0) and 0.3 < threshold <= 0.6
    worse, _ = fmax(y, 1 - s)
    assert worse < best


def test_sensitivity_and_positive_predictivity() -> None:
    out = sensitivity_ppv([0, 0, 1, 1, 2], [0, 1, 1, 1, 1], n_classes=3)
    np.testing.assert_allclose(out["sensitivity"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(out["ppv"][:2], [1.0, 2 / 4])
    assert np.isnan(out["ppv"][2])  # never predicted
    assert macro_f1([0, 1, 1, 2], [0, 1, 0, 2]) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_bootstrap_covers_the_value_and_resamples_patients() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    s = y * 0.6 + rng.random(400) * 0.8
    interval = bootstrap(auroc, y, s, n_resamples=300, seed=1)
    assert interval.low < interval.value < interval.high and interval.high - interval.low < 0.15
    assert str(bootstrap(auroc, y, s, n_resamples=300, seed=1)) == str(interval)  # seeded
    # 40 patients with 10 identical records each: resampling patients gives a wider interval than
    # pretending the 400 records were independent
    patients = np.repeat(np.arange(40), 10)
    y_p, s_p = y[::10].repeat(10), s[::10].repeat(10)
    by_record = bootstrap(auroc, y_p, s_p, n_resamples=300)
    by_patient = bootstrap(auroc, y_p, s_p, groups=patients, n_resamples=300)
    assert by_patient.high - by_patient.low > 2 * (by_record.high - by_record.low)


def test_bootstrap_refuses_bad_input() -> None:
    with pytest.raises(CardiolensError, match="different lengths"):
        bootstrap(auroc, [0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(CardiolensError, match="only one class"):
        auroc([1, 1, 1], [0.1, 0.2, 0.3])
    # a resample without positives is skipped, not scored: the interval counts the replicates used
    used = bootstrap(auroc, [0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4], n_resamples=200).resamples
    assert 100 <= used < 200
    with pytest.raises(CardiolensError, match="undefined on"):
        bootstrap(lambda y: float("nan"), [1, 2, 3], n_resamples=20)


def test_scores_refuse_inputs_they_would_silently_misread() -> None:
    with pytest.raises(CardiolensError, match=r"class indices \[5\] outside 0..3"):
        cinc2017_score(np.array([0, 5, 1]), np.array([0, 1, 7]))  # once a perfect 1.0
    with pytest.raises(CardiolensError, match="3 true labels and 2 predictions"):
        cinc2017_score(["N", "A", "O"], ["N", "A"])
    y = np.array([0, 1] * 50)
    with pytest.raises(CardiolensError, match="20 groups for 100 samples"):
        bootstrap_scores(lambda ix: {"mean": float(y[ix].mean())}, 100, groups=np.arange(20))


def test_fmax_leaves_samples_without_labels_out_of_recall() -> None:
    rng = np.random.default_rng(0)
    y = rng.random((200, 4)) < 0.3
    y[y.sum(axis=1) == 0, 0] = True
    scores = np.clip(y + rng.normal(0, 0.4, y.shape), 0, 1)
    with_empty_rows = np.vstack([y, np.zeros((100, 4), dtype=bool)])
    empty_scores = np.vstack([scores, rng.random((100, 4)) * 0.2])  # below every useful threshold
    # rows without labels or predictions change neither precision nor recall (they once lowered recall)
    assert fmax(with_empty_rows, empty_scores)[0] == pytest.approx(fmax(y, scores)[0], abs=0.02)
    assert np.isnan(fmax(np.zeros((3, 2)), np.ones((3, 2)))[0])


def _rare_class_data() -> tuple[np.ndarray, np.ndarray]:
    """Three labels; the third has 2 positives of 200, both scored below every negative."""
    rng = np.random.default_rng(0)
    y = np.zeros((200, 3), dtype=int)
    y[:100, 0] = 1
    y[50:150, 1] = 1
    y[:2, 2] = 1
    s = y * 0.8 + rng.random((200, 3)) * 0.1
    s[:2, 2] = 0  # per-label AUROC [1, 1, 0]
    return y, s


def test_a_multi_label_bootstrap_draws_again_a_resample_that_lost_a_label() -> None:
    from cardiolens.tasks.tasks_multilabel import multilabel_score

    y, s = _rare_class_data()
    interval = bootstrap(auroc, y, s, n_resamples=300)
    # a resample without a positive of the rare label (about (198/200)^200 = 13 % of them) is drawn
    # again, not scored as 1.0 over the two other labels
    assert interval.value == pytest.approx(2 / 3)
    assert interval.high == pytest.approx(2 / 3) and interval.low == pytest.approx(2 / 3)
    assert interval.resamples == 300
    assert auroc(y[2:], s[2:]) == 1.0  # outside a bootstrap, undefined labels are still left out
    # the multi-label task score as summarise() bootstraps it, with its labels
    out = bootstrap_scores(lambda ix: multilabel_score(y[ix], s[ix]), len(y), labels=y, n_resamples=300)
    assert set(out) == {"macro_auroc", "micro_auroc", "macro_auprc", "fmax", "macro_f1"}
    assert out["macro_auroc"].high == pytest.approx(2 / 3) and out["macro_auroc"].resamples == 300
    assert out["macro_auprc"].high < 0.72
    # without the labels nothing is drawn again, and the interval mixes in the two-label average
    loose = bootstrap_scores(lambda ix: multilabel_score(y[ix], s[ix]), len(y), n_resamples=300)
    assert loose["macro_auroc"].high == pytest.approx(1.0)
    # a label on one patient of many: still an interval (most resamples are drawn again)
    y1 = y.copy()
    y1[1, 2] = 0  # the rare label has one positive now
    assert bootstrap(auroc, y1, s, n_resamples=100).resamples == 100


def test_micro_and_all_positive_averages_follow_scikit_learn() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = (rng.random((300, 5)) < 0.3).astype(int)
    s = rng.random((300, 5)) + 0.3 * y
    y[:, 2] = 0  # no positive
    y[:, 3] = 1  # no negative
    assert auroc(y, s, "micro") == pytest.approx(roc_auc_score(y, s, average="micro"))
    assert auprc(y, s, "micro") == pytest.approx(average_precision_score(y, s, average="micro"))
    # macro AUPRC: AP = 1 of the all-positive label counts, the label without positives is left out
    per_label = [average_precision_score(y[:, k], s[:, k]) for k in (0, 1, 3, 4)]
    assert per_label[2] == 1.0 and auprc(y, s) == pytest.approx(np.mean(per_label))
    assert auroc(y, s) == pytest.approx(np.mean([roc_auc_score(y[:, k], s[:, k]) for k in (0, 1, 4)]))
    with pytest.raises(CardiolensError, match="no positive"):
        auprc(np.zeros((4, 2), dtype=int), np.ones((4, 2)), "micro")


def test_fmax_refuses_nan_scores() -> None:
    y = np.array([[1, 0], [0, 1], [1, 1]])
    s = np.array([[0.9, 0.3], [0.2, 0.6], [0.7, 0.65]])
    s[:, 1] = np.nan
    with pytest.raises(CardiolensError, match=r"3 scores are NaN or infinite \(columns \[1\]\)"):
        fmax(y, s)
    with pytest.raises(CardiolensError, match="shape"):
        fmax(y, s[:, :1])


def test_sensitivity_ppv_refuses_labels_outside_the_classes() -> None:
    with pytest.raises(CardiolensError, match=r"labels \[2\] outside 0..1"):
        sensitivity_ppv([0, 1, 2, 2], [0, 1, 2, 2], 2)  # once sensitivity [1, 1], label 2 dropped
    with pytest.raises(CardiolensError, match=r"predictions \[-1\] outside 0..2"):
        sensitivity_ppv([0, 1, 2], [0, -1, 2], 3)


def test_a_binary_score_on_one_class_reports_nan_rankings_and_keeps_the_rest() -> None:
    from cardiolens.tasks.tasks_rhythm import binary_score

    out = binary_score(np.zeros(6, dtype=int), np.array([0.1, 0.7, 0.2, 0.3, 0.9, 0.4]), [0.5])
    assert np.isnan(out["auroc"]) and np.isnan(out["auprc"])
    assert out["ppv"] == 0.0 and out["sensitivity"] == 0.0  # two false alarms, nothing to find
