"""Amplitude normalisation along the time axis."""

from __future__ import annotations

import numpy as np

METHODS = ("zscore", "minmax", "robust")


def normalize(x: np.ndarray, method: str = "zscore", axis: int = -1) -> np.ndarray:
    """Scale each channel (along ``axis``).

    Args:
        method: ``"zscore"`` (zero mean, unit standard deviation), ``"minmax"`` (to 0..1) or
            ``"robust"`` (median 0, interquartile range 1; insensitive to spikes and artefacts).

    A constant channel has no scale: it maps to zeros (never NaN).
    """
    x = np.asarray(x, dtype=np.float64)
    if method == "zscore":
        centre, scale = x.mean(axis=axis, keepdims=True), x.std(axis=axis, keepdims=True)
    elif method == "minmax":
        centre = x.min(axis=axis, keepdims=True)
        scale = x.max(axis=axis, keepdims=True) - centre
    elif method == "robust":
        q1, centre, q3 = np.percentile(x, [25, 50, 75], axis=axis, keepdims=True)
        scale = q3 - q1
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    safe = np.where(scale > 0, scale, 1.0)
    return np.where(scale > 0, (x - centre) / safe, 0.0)
