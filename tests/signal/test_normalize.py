"""Normalisation: each method's scale, constant channels, Records and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from cardiolens import Record, RecordError
from cardiolens.signal.normalize import normalize


@pytest.mark.parametrize("method", ["zscore", "minmax", "robust"])
def test_axis_and_shape(method: str) -> None:
    x = np.random.default_rng(2).normal(3, 2, (4, 300))
    rows = normalize(x, method)
    cols = normalize(x.T, method, axis=0)
    assert np.allclose(rows, cols.T)


def test_robust_ignores_a_spike_and_handles_a_zero_iqr() -> None:
    x = np.r_[np.random.default_rng(0).normal(0, 1, 999), 1e6]
    y = normalize(x, "robust")
    assert np.percentile(y[:-1], 75) - np.percentile(y[:-1], 25) == pytest.approx(1, abs=0.05)
    mostly_flat = np.r_[np.zeros(990), np.ones(10)]
    assert np.all(np.isfinite(normalize(mostly_flat, "robust"))) and normalize(mostly_flat, "robust").max() > 0


@pytest.mark.parametrize("method", ["zscore", "minmax", "robust"])
def test_constant_input_gives_zeros_not_nan(method: str) -> None:
    assert normalize(np.full((2, 50), 4.2), method).tolist() == np.zeros((2, 50)).tolist()


def test_record_gets_normalised_units() -> None:
    rec = Record(np.vstack([np.arange(10.0), np.arange(10.0) * 3]), 10, leads=["I", "II"], units="mV")
    out = normalize(rec, "minmax")
    assert out.units == ["NU", "NU"] and np.allclose(out.signal, np.vstack([np.arange(10) / 9] * 2))


@pytest.mark.parametrize(
    "x,method,problem",
    [(np.r_[1.0, np.nan], "zscore", "NaN"), (np.array([]), "zscore", "empty"), (np.ones(3), "l2", "method")],
)
def test_refusals(x: np.ndarray, method: str, problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        normalize(x, method)
