"""The label-free shape smoothing of benchmarks/aami_mitbih.py (``beat-features-gbm-shape-smoothed``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

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
