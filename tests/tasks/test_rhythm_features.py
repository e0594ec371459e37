"""Record-level rhythm features (``cardiolens.tasks.rhythm_features``): simulated ECGs whose rhythm the
test sets, bad input, and real CinC 2017 records with boosted trees on top."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cardiolens.errors import CardiolensError
from cardiolens.io import load_record
from cardiolens.tasks.metrics import auroc
from cardiolens.tasks.rhythm_features import (
    EVENT_FEATURES,
    EXTENDED_FEATURE_NAMES,
    FEATURE_NAMES,
    QUALITY_FEATURES,
    TEMPLATE_FEATURES,
    WINDOW_FEATURES,
    event_features,
    quality_features,
    record_features,
    rhythm_feature_matrix,
    rr_features,
    template_features,
    window_features,
)
from cardiolens.tasks.trees import boosted_trees, permutation_importance_table, tuned_boosted_trees

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


def test_median_beat_shape_is_read_in_units_of_qrs_height_and_ignores_gain():
    r_times = np.arange(0.5, 9.5, 0.8)
    x = _ecg(r_times, 10, p_waves=True)
    r = np.round(r_times * FS).astype(int)
    shape = np.asarray(template_features(x, r, FS))
    at = {name: value for name, value in zip(TEMPLATE_FEATURES, shape, strict=True)}
    assert len(shape) == 35 and TEMPLATE_FEATURES[0] == "median_beat_at_-250ms" and "median_beat_at_+430ms" in at
    # QRS range 1: 10 ms either side of the R peak a Gaussian QRS of sd 12 ms is at exp(-0.5 (10/12)^2) = 0.71
    # of its height (less the baseline, which the window's median sets slightly below 0)
    assert at["median_beat_at_-10ms"] == pytest.approx(at["median_beat_at_+10ms"], abs=0.01)
    assert 0.6 < at["median_beat_at_+10ms"] < 0.72
    # the T wave (+280 ms, a quarter of the QRS) and the P wave (-160 ms, 0.15) stand above the baseline
    assert 0.18 < at["median_beat_at_+290ms"] < 0.25 and 0.07 < at["median_beat_at_-150ms"] < 0.13
    assert abs(at["median_beat_at_+90ms"]) < 0.05 and abs(at["median_beat_at_-70ms"]) < 0.05
    np.testing.assert_allclose(template_features(5 * x, r, FS), shape, rtol=1e-6)  # gain cancels
    assert np.isnan(template_features(x, r[:2], FS)).all()  # fewer than 3 whole beats: undefined


def test_window_features_find_a_paroxysm_in_an_otherwise_regular_record():
    rng = np.random.default_rng(1)
    regular, paroxysm = np.full(60, 0.8), rng.uniform(0.4, 1.1, 60)
    row = dict(zip(WINDOW_FEATURES, window_features(np.r_[regular, paroxysm]), strict=True))
    assert row["window_irregular_min"] == 0 and row["window_irregular_max"] > 0.7
    assert 0.3 < row["frac_windows_irregular"] < 0.7  # about half the windows lie in the irregular stretch
    assert row["window_rmssd_rel_min"] == 0 < row["window_rmssd_rel_max"]
    steady = dict(zip(WINDOW_FEATURES, window_features(np.full(80, 0.6)), strict=True))
    assert steady["window_irregular_max"] == 0 and steady["window_heart_rate_cv"] == pytest.approx(0, abs=1e-12)
    assert np.isnan(window_features(np.full(19, 0.8))).all()  # shorter than one window


def test_quality_features_see_detector_disagreement_and_amplitude_jumps():
    r_times = np.arange(0.5, 29.5, 0.8)
    clean = _ecg(r_times, 30, p_waves=True)
    r = np.round(r_times * FS).astype(int)
    good = dict(zip(QUALITY_FEATURES, quality_features(clean, r, FS), strict=True))
    assert good["detectors_agree_of_ours"] > 0.95 and good["detectors_agree_of_theirs"] > 0.95
    assert good["frac_segments_over_3x_amplitude"] == 0 and good["segment_amplitude_cv"] < 0.2
    # half the R peaks reported in the wrong place, and a 2-s burst ten times the ECG's range
    wrong = r.copy()
    wrong[::2] += int(0.4 * FS)
    burst = clean.copy()
    burst[int(10 * FS) : int(12 * FS)] += 10 * np.sin(2 * np.pi * 8 * np.arange(int(2 * FS)) / FS)
    bad = dict(zip(QUALITY_FEATURES, quality_features(burst, wrong, FS), strict=True))
    assert bad["detectors_agree_of_ours"] < 0.6
    assert bad["frac_segments_over_3x_amplitude"] == pytest.approx(1 / 15) and bad["segment_amplitude_cv"] > 1


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


def _accuracy(t, p) -> float:
    return float(np.mean(np.asarray(t) == np.asarray(p)))


def _recall_of_rare(t, p) -> float:
    return float(np.mean(np.asarray(p)[np.asarray(t) == 1] == 1))


def test_tuned_trees_choose_the_setting_that_scores_best_in_the_inner_folds():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((240, 2))
    # a rare class: class weighting decides whether the trees ever predict it, and the score rewards it
    y = ((x[:, 0] > 1.3) & (x[:, 1] > 0)).astype(int)
    grid = {"class_weight": [None, "balanced"], "max_iter": [20]}
    model, search = tuned_boosted_trees(x, y, _recall_of_rare, grid=grid)
    scores = {str(r["settings"]["class_weight"]): r["score"] for r in search["inner"]}
    assert len(search["inner"]) == 2 and set(scores) == {"None", "balanced"}
    assert scores["balanced"] > scores["None"]
    assert search["chosen"]["class_weight"] == "balanced"
    assert model.get_params()["class_weight"] == search["chosen"]["class_weight"]
    assert model.get_params()["max_iter"] == 20 and hasattr(model, "classes_")  # refitted on every item


def test_tuned_trees_keep_a_patient_in_one_inner_fold():
    rng = np.random.default_rng(2)
    patients = np.repeat(np.arange(40), 6)
    labels_of_patient = rng.integers(0, 2, 40)
    y = labels_of_patient[patients]
    # the feature names the patient and nothing else: memorising patients is the only way to score
    x = (patients + 0.01 * rng.standard_normal(len(patients)))[:, None]
    grid = {"max_iter": [30], "min_samples_leaf": [2]}  # leaves as small as one patient
    _, leaky = tuned_boosted_trees(x, y, _accuracy, grid=grid)
    _, grouped = tuned_boosted_trees(x, y, _accuracy, groups=patients, grid=grid)
    assert leaky["inner"][0]["score"] > 0.9  # items of a seen patient are recognised
    assert grouped["inner"][0]["score"] < 0.75  # unseen patients: near chance


def test_event_features_find_one_wide_premature_beat_and_rr_entropy_orders_rhythms():
    """One wide early beat with a pause after it, in 30 s of sinus rhythm: the extended features see it;
    an AF-like rhythm has a higher RR sample entropy and COSEn than a sinus rhythm with slight variability."""
    seconds, fs = 30.0, FS
    r_times = np.arange(0.5, seconds - 0.5, 0.8)
    sinus = _ecg(r_times, seconds, p_waves=True)
    early = 0.5 * (r_times[15] + r_times[16]) - 0.1  # 300 ms after the beat before it, 1.3 s before the next
    with_ectopic = _ecg(np.delete(r_times, 16), seconds, p_waves=True)
    t = np.arange(len(sinus)) / fs
    with_ectopic += 1.5 * np.exp(-0.5 * ((t - early) / 0.025) ** 2)  # twice as wide a QRS, no P wave
    plain = record_features(sinus, fs, extended=True)
    ectopic = record_features(with_ectopic, fs, extended=True)
    assert plain.shape == ectopic.shape == (len(EXTENDED_FEATURE_NAMES),)
    assert np.array_equal(plain[: len(FEATURE_NAMES)], record_features(sinus, fs), equal_nan=True)

    def event(row: np.ndarray, name: str) -> float:
        return float(row[EXTENDED_FEATURE_NAMES.index(name)])

    assert event(plain, "beat_corr_min") > 0.95 > 0.7 > event(ectopic, "beat_corr_min")
    assert event(plain, "frac_beats_wide") == 0 < event(ectopic, "frac_beats_wide") <= 2 / 36
    assert event(plain, "prematurity_min") == pytest.approx(1, abs=0.02)
    assert event(ectopic, "prematurity_min") == pytest.approx(0.3 / 0.8, abs=0.02)
    assert event(ectopic, "compensation_max") == pytest.approx(1.3 / 0.3, abs=0.1)
    assert event(plain, "compensation_max") == pytest.approx(1, abs=0.02)

    rng = np.random.default_rng(3)
    sinus_rr = 0.8 + 0.01 * np.sin(np.arange(40) / 3)  # slow, smooth variability: predictable
    af_rr = rng.uniform(0.45, 1.1, 40)
    calm, chaotic = event_features(sinus_rr, None, fs), event_features(af_rr, None, fs)
    names = list(EVENT_FEATURES)
    assert np.isnan(calm[names.index("beat_corr_min")])  # no beats given: morphology undefined, not zero
    for name in ("rr_sample_entropy", "rr_cosen"):
        assert np.isfinite(chaotic[names.index(name)]) and chaotic[names.index(name)] > calm[names.index(name)]
    assert np.isnan(event_features(np.full(8, 0.8), None, fs)[names.index("rr_sample_entropy")])
