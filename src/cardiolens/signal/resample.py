"""Changing the sampling rate (polyphase filtering via scipy.signal.resample_poly)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import scipy.signal

from cardiolens.errors import RecordError
from cardiolens.signal.record import Record


def resample(x: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample along the last axis from ``fs_in`` to ``fs_out`` Hz (anti-aliasing included).

    The rate ratio is approximated by a fraction with denominator <= 1000 (exact for every rate pair
    in common use: 300->100, 360->100, 500->100, 125->50, 257->100 ...).

    Example:
        >>> resample(np.zeros(3000), 300, 100).shape
        (1000,)
    """
    if not (fs_in > 0 and fs_out > 0):
        raise RecordError(f"sampling rates must be positive, got {fs_in} -> {fs_out}")
    if np.isclose(fs_in, fs_out, rtol=1e-9):
        return np.asarray(x)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    y = scipy.signal.resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1)
    return y.astype(np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else np.float64, copy=False)


def resample_record(record: Record, fs: float) -> Record:
    """Return ``record`` at ``fs`` Hz; annotation sample indices are rescaled to the new rate."""
    if np.isclose(record.fs, fs, rtol=1e-9):
        return record
    signal = resample(record.signal, record.fs, fs)
    ann = record.annotations
    if ann is not None:
        ann = type(ann)(np.round(ann.sample * fs / record.fs).astype(np.int64), ann.symbol, ann.aux)
    meta = {**record.metadata, "resampled_from_hz": record.fs}
    return record.replace(signal=signal, fs=fs, annotations=ann, metadata=meta)
