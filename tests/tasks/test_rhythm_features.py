"""Record-level rhythm features (``cardiolens.tasks.rhythm_features``): simulated ECGs whose rhythm the
test sets, bad input, and real CinC 2017 records with boosted trees on top."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cardiolens.errors import CardiolensError
from cardiolens.io import load_record
from cardiolens.tasks.metrics import auroc
from cardiolens.tasks.rhythm_features import FEATURE_NAMES, record_features, rhythm_feature_matrix, rr_features
from cardiolens.tasks.trees import boosted_trees, permutation_importance_table

FS = 300.0


def _ecg(r_times: np.ndarray, seconds: float, p_waves: bool, seed: int = 0) -> np.ndarray:
    """Gaussian QRS complexes at ``r_times`` (s), T waves, optional P waves 0.16 s before each R, light noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    x = 0.01 * rng.standard_normal(len(t))
    for r in r_times:
        x += 1.0 * np.exp(-0.5 * ((t - r) / 0.012) ** 2) + 0.25 * np.exp(-0.5 * ((t - r - 0.28) / 0.05) ** 2)
        if p_waves:
            x += 0.15 * np.exp(-0.5 * ((t - r + 0.16) / 0.025) ** 2)
    return x


def _feature(row: np.ndarray, name: str) -> float:
    return float(row[FEATURE_NAMES.index(name)])


def test_rr_features_of_a_regular_and_an_irregular_rhythm():
    regular = rr_features(np.full(30, 0.8))
    assert regular[FEATURE_NAMES.index("heart_rate_bpm")] == pytest.approx(75)
    assert (
        regular[FEATURE_NAMES.index("rr_cv")] == pytest.approx(0, abs=1e-12)
        and regular[FEATURE_NAMES.index("frac_abs_drr_over_10pct")] == 0
    )
    rng = np.random.default_rng(0)
    irregular = rr_features(rng.uniform(0.4, 1.2, 60))
    assert (
        irregular[FEATURE_NAMES.index("rr_cv")] > 0.2
        and irregular[FEATURE_NAMES.index("frac_abs_drr_over_10pct")] > 0.5
    )
    # bigeminy: an early ectopic beat and a pause, again and again
    bigeminy = rr_features(np.tile([0.55, 1.05], 20))
    assert (
        bigeminy[FEATURE_NAMES.index("rr_autocorr_lag1")]
        < -0.9
        < 0.9
        < bigeminy[FEATURE_NAMES.index("rr_autocorr_lag2")]
    )
    assert bigeminy[FEATURE_NAMES.index("frac_early_then_late")] == pytest.approx(20 / 39)
    assert regular[FEATURE_NAMES.index("frac_early_then_late")] == 0
    assert np.isnan(rr_features([0.8, 0.8, 0.8, 0.8])).all()  # too few intervals: undefined, not zero


def test_sinus_rhythm_and_an_af_like_rhythm_are_told_apart_from_the_signal():
    seconds = 30.0
    sinus = record_features(_ecg(np.arange(0.5, seconds - 0.5, 0.8), seconds, p_waves=True), FS)
    rng = np.random.default_rng(1)
    af_times = np.cumsum(rng.uniform(0.45, 1.1, 60)) + 0.5
    af = record_features(_ecg(af_times[af_times < seconds - 0.5], seconds, p_waves=False, seed=1), FS)
    assert sinus.shape == (len(FEATURE_NAMES),)
    assert abs(_feature(sinus, "beats") - (len(np.arange(0.5, seconds - 0.5, 0.8)) - 1)) <= 1
    assert _feature(sinus, "heart_rate_bpm") == pytest.approx(75, abs=1)
    assert _feature(sinus, "rr_cv") < 0.02 < 0.2 < _feature(af, "rr_cv")
    # a P wave before every beat: the P-wave region of each beat matches the median beat's
    assert _feature(sinus, "p_wave_corr_median") > 0.8 > _feature(af, "p_wave_corr_median")
    assert _feature(sinus, "beat_corr_median") > 0.95 and _feature(sinus, "duration_s") == pytest.approx(seconds)
    assert _feature(sinus, "template_qrs_width_s") < 0.1


def test_rhythm_features_refuse_bad_input():
    x = _ecg(np.arange(0.5, 9.5, 0.8), 10.0, p_waves=True)
    with pytest.raises(CardiolensError, match="one lead"):
        record_features(np.stack([x, x]), FS)
    with pytest.raises(CardiolensError, match="at least 2 s"):
        record_features(x[:300], FS)
    with pytest.raises(CardiolensError, match="NaN"):
        record_features(np.where(np.arange(len(x)) == 50, np.nan, x), FS)
    assert rhythm_feature_matrix([], FS, progress=False).shape == (0, len(FEATURE_NAMES))


@pytest.mark.realdata
def test_boosted_trees_on_real_records_separate_af(cinc2017_dir):
    with open(cinc2017_dir / "REFERENCE.csv") as f:
        labels = dict(csv.reader(f))
    names = sorted(labels)[:600]
    signals = [load_record(cinc2017_dir / f"{n}.hea").signal for n in names]
    assert {load_record(cinc2017_dir / f"{names[0]}.hea").fs} == {FS}
    features = rhythm_feature_matrix(signals, FS, progress=False)
    af = np.array([labels[n] == "A" for n in names])
    # irregularity alone: AF records' RR intervals jump by more than 10 % far more often
    jumps = features[:, FEATURE_NAMES.index("frac_abs_drr_over_10pct")]
    assert (
        np.nanmedian(jumps[af]) > 0.5 > 0.2 > np.nanmedian(jumps[~af & (np.array([labels[n] for n in names]) == "N")])
    )
    train = np.arange(len(names)) < 400
    model = boosted_trees().fit(features[train], af[train])
    assert af[~train].sum() >= 10
    assert auroc(af[~train].astype(int), model.predict_proba(features[~train])[:, 1]) > 0.9


def test_permutation_importance_ranks_the_feature_the_labels_depend_on_first():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3))
    y = (x[:, 1] > 0).astype(int)  # only feature "b" decides
    model = boosted_trees().fit(x[:300], y[:300])
    table = permutation_importance_table(
        model, x[300:], y[300:], lambda t, p: float(np.mean(t == p)), ["a", "b", "c"], top=2
    )
    assert [row["feature"] for row in table][0] == "b" and len(table) == 2
    assert table[0]["drop"] > 0.3 and table[1]["drop"] < 0.05
