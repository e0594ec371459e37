"""The cluster bootstrap helper of benchmarks/_common.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from _common import cluster_bootstrap_weights, percentile_interval  # noqa: E402


def test_weights_keep_each_stratum_size_and_are_reproducible():
    clusters = ["a", "a", "b", "c", "d", "d", "e"]
    strata = ["x", "x", "x", "y", "y", "y", "y"]  # x: a, b; y: c, d, e
    labels, w = cluster_bootstrap_weights(clusters, reps=500, seed=3, strata=strata)
    assert labels == ["a", "b", "c", "d", "e"]
    assert w.shape == (500, 5)
    assert (w[:, :2].sum(axis=1) == 2).all() and (w[:, 2:].sum(axis=1) == 3).all()
    assert w.min() >= 0 and w.max() > 1  # drawn with replacement
    _, again = cluster_bootstrap_weights(clusters, reps=500, seed=3, strata=strata)
    np.testing.assert_array_equal(w, again)
    _, other = cluster_bootstrap_weights(clusters, reps=500, seed=4, strata=strata)
    assert not np.array_equal(w, other)


def test_ratio_interval_covers_the_mean_and_is_zero_width_for_a_constant():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(40), 5)
    values = rng.normal(2.0, 1.0, size=patients.size)
    labels, w = cluster_bootstrap_weights(patients, reps=2000, seed=0)
    member = (np.asarray(labels)[:, None] == patients.astype(str)[None, :]).astype(float)  # (P, N)
    replicates = (w @ (member @ values)) / (w @ member.sum(axis=1))
    lo, hi = percentile_interval(replicates)
    assert lo < values.mean() < hi and hi - lo < 1.0
    const = (w @ (member @ np.full(patients.size, 3.0))) / (w @ member.sum(axis=1))
    assert percentile_interval(const) == pytest.approx([3.0, 3.0])


def test_a_cluster_in_two_strata_is_refused():
    with pytest.raises(ValueError, match="strata"):
        cluster_bootstrap_weights(["a", "a"], reps=10, seed=0, strata=["x", "y"])
