"""Amplitude normalisation along the time axis."""

from __future__ import annotations

from typing import Any

import numpy as np

from cardiolens.errors import RecordError
from cardiolens.signal.filters import as_signal, describe
from cardiolens.signal.record import Record

METHODS = ("zscore", "minmax", "robust")


def normalize(x: Any, method: str = "zscore", axis: int = -1) -> Any:
    """Scale each channel along ``axis``.

    Args:
        x: 1-D signal, (channels, samples) array, or a Record (whose units become ``"NU"``,
            normalised units).
        method: ``"zscore"`` (zero mean, unit standard deviation), ``"minmax"`` (to 0..1) or
            ``"robust"`` (median 0, interquartile range 1; insensitive to spikes and artefacts; the
            standard deviation stands in for an interquartile range of 0).
        axis: the time axis of an array (Records are always scaled along time).

    Returns:
        float64 array of the same shape (or a new Record). A constant channel has no scale: it maps
        to zeros, never NaN, so a flat lead stays visibly flat.

    Raises:
        RecordError: unknown method, or NaN/inf/empty input.

    Example:
        >>> normalize(np.array([1.0, 2.0, 3.0]), "minmax").tolist()
        [0.0, 0.5, 1.0]
    """
    if method not in METHODS:
        raise RecordError(f"normalize: method must be one of {', '.join(METHODS)}, got {method!r}", describe(x))
    if isinstance(x, Record):
        where = str(x.source or x.name)
        arr, _ = as_signal(x.signal, x.fs, "normalize", where)
        return x.replace(signal=_scale(arr, method, -1), units=["NU"] * x.n_channels)
    arr = np.asarray(x)
    if arr.ndim == 0 or arr.size == 0:
        raise RecordError("normalize: signal is empty", describe(x))
    if not np.all(np.isfinite(arr.astype(np.float64, copy=False))):
        raise RecordError("normalize: signal holds NaN/inf values; interpolate or crop them first", describe(x))
    return _scale(arr.astype(np.float64), method, axis)


def _scale(x: np.ndarray, method: str, axis: int) -> np.ndarray:
    if method == "zscore":
        centre, scale = x.mean(axis=axis, keepdims=True), x.std(axis=axis, keepdims=True)
    elif method == "minmax":
        centre = x.min(axis=axis, keepdims=True)
        scale = x.max(axis=axis, keepdims=True) - centre
    else:
        q1, centre, q3 = np.percentile(x, [25, 50, 75], axis=axis, keepdims=True)
        # a mostly constant lead with a few excursions has IQR 0: fall back to its standard deviation
        scale = np.where(q3 > q1, q3 - q1, x.std(axis=axis, keepdims=True))
    # a constant channel is tested exactly (its std can come out as 1e-16, not 0)
    usable = (np.ptp(x, axis=axis, keepdims=True) > 0) & (scale > 0)
    safe = np.where(usable, scale, 1.0)
    return np.where(usable, (x - centre) / safe, 0.0)


__all__ = ["METHODS", "normalize"]
