"""The synthetic axis-shift beats of benchmarks/aami_mitbih.py (``beat-features-gbm-axis-shift``)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from aami_mitbih import AXIS_SHIFT_EDGE, axis_shift_beats, scale_qrs  # noqa: E402
from cardiolens.tasks.aami_features import FEATURE_NAMES, MORPHOLOGY_FEATURES  # noqa: E402

FS = 250.0


def beat(n: int = 500) -> np.ndarray:
    """A P wave, a QRS and a T wave on a baseline of 0.2, the R peak at the window's centre."""
    t = (np.arange(n) - n // 2) / FS
    return (
        0.2
        + 0.15 * np.exp(-(((t + 0.18) / 0.03) ** 2))
        + np.exp(-((t / 0.015) ** 2))
        + 0.3 * np.exp(-(((t - 0.3) / 0.06) ** 2))
    )


def test_scale_qrs_flips_the_qrs_about_the_baseline_and_leaves_p_and_t_waves_alone():
    x = np.vstack([beat(), beat(), beat()])
    out = scale_qrs(x, FS, np.array([-1.0, 0.5, 1.0]))
    c = x.shape[1] // 2
    assert np.isclose(out[0, c] - 0.2, -(x[0, c] - 0.2), atol=1e-3)  # R flipped about the baseline
    assert np.isclose(out[1, c] - 0.2, 0.5 * (x[1, c] - 0.2), atol=1e-3)
    assert np.allclose(out[2], x[2])  # scale 1 changes nothing
    outside = np.abs(np.arange(x.shape[1]) - c) / FS >= AXIS_SHIFT_EDGE
    assert np.allclose(out[:, outside], x[:, outside])  # P wave (R - 0.18 s) and T wave (R + 0.3 s) untouched
    assert np.abs(np.diff(out[0])).max() <= np.abs(np.diff(x[0])).max() + 1e-9  # tapered: no new step


def test_axis_shift_beats_copies_a_share_of_the_training_records_normal_beats_only():
    rng = np.random.default_rng(1)
    records = ["100"] * 60 + ["101"] * 40 + ["102"] * 50
    targets = np.array([0] * 50 + [2] * 10 + [0] * 30 + [1] * 10 + [0] * 50)  # N, S, V, F = 0, 1, 2, 3
    windows = np.stack([np.stack([beat() * rng.uniform(0.9, 1.1), beat()]) for _ in records])
    beats = SimpleNamespace(
        signals=list(windows), item_ids=np.array([f"{r}:{i}" for i, r in enumerate(records)]), fs=FS
    )
    base = rng.standard_normal((len(records), len(FEATURE_NAMES)))
    train = np.array([r != "102" for r in records])  # record 102 is the fold's test record
    x, y = axis_shift_beats(beats, base, targets, train, seed=0)
    assert len(x) == 5 + 3 and np.all(y == 0)  # 10 % of 50 and of 30 N beats; none from 102
    names = list(FEATURE_NAMES)
    morphology = [names.index(n) for n in MORPHOLOGY_FEATURES]
    morphology += [names.index(f"{n}_in_record") for n in MORPHOLOGY_FEATURES]
    kept = [i for i in range(len(names)) if i not in morphology]
    sources = [int(np.flatnonzero(np.all(base[:, kept] == row[kept], axis=1))[0]) for row in x]
    assert all(targets[s] == 0 and records[s] != "102" for s in sources)  # copies of training N beats
    assert not np.allclose(x[:, morphology], base[sources][:, morphology])  # their QRS was reshaped
    corr_qrs = x[:, names.index("corr_qrs")]
    assert corr_qrs.min() < 0.9  # some copies differ in shape from the record's median beat
    again, _ = axis_shift_beats(beats, base, targets, train, seed=0)
    assert np.array_equal(again, x)  # the seed fixes the draw


def test_late_v_beats_keep_a_v_beats_shape_and_take_a_normal_beat_of_the_same_records_timing():
    from aami_mitbih import late_v_beats

    rng = np.random.default_rng(2)
    records = np.array(["100"] * 40 + ["101"] * 40 + ["102"] * 40)
    targets = np.array(([0] * 30 + [2] * 8 + [1] * 2) * 3)  # N, V, S per record
    base = rng.standard_normal((len(records), len(FEATURE_NAMES)))
    train = records != "102"
    x, y = late_v_beats(base, targets, records, train, seed=0)
    assert len(x) == 2 + 2 and np.all(y == 2)  # a quarter of 8 V beats in each training record
    names = list(FEATURE_NAMES)
    shape = [names.index(n) for n in MORPHOLOGY_FEATURES] + [names.index(f"{n}_in_record") for n in MORPHOLOGY_FEATURES]
    timing = [i for i in range(len(names)) if i not in shape]
    for row in x:
        source = int(np.flatnonzero(np.all(base[:, shape] == row[shape], axis=1))[0])
        donor = int(np.flatnonzero(np.all(base[:, timing] == row[timing], axis=1))[0])
        assert targets[source] == 2 and targets[donor] == 0  # a V beat's shape, a normal beat's timing
        assert records[source] == records[donor] != "102"  # from the same training record
