"""Changing the sampling rate: polyphase filtering with ``scipy.signal.resample_poly``.

The rate ratio ``fs_out / fs_in`` is turned into a fraction ``up / down`` (denominator at most
``max_denominator``, 1000 by default), which is exact for every pair of rates in common use
(300->100, 360->100, 500->100, 125->50, 128->100, 257->100, 100->250) and for rates given with
up to a few decimals. ``resample_poly`` applies an anti-aliasing FIR filter, so downsampling does
not fold high-frequency noise into the band.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import signal as sps

from cardiolens.errors import RecordError
from cardiolens.signal.filters import as_signal, check_fs, describe
from cardiolens.signal.record import Annotations, Record

log = logging.getLogger(__name__)


def rate_ratio(fs_in: float, fs_out: float, max_denominator: int = 1000) -> tuple[int, int]:
    """The integers ``(up, down)`` with ``up / down`` closest to ``fs_out / fs_in``.

    Args:
        fs_in: the current rate in Hz.
        fs_out: the wanted rate in Hz.
        max_denominator: largest ``down`` allowed (bounds the FIR filter's length).

    Returns:
        ``(up, down)`` in lowest terms.

    Example:
        >>> rate_ratio(360, 100)
        (5, 18)
    """
    # decimal strings make 0.1-style rates exact fractions instead of their binary approximations
    exact = Fraction(repr(float(fs_out))) / Fraction(repr(float(fs_in)))
    ratio = exact.limit_denominator(max_denominator)
    return ratio.numerator, ratio.denominator


def resample(x: Any, fs_in: float, fs_out: float, *, max_denominator: int = 1000) -> np.ndarray:
    """Resample along the last axis from ``fs_in`` to ``fs_out`` Hz (anti-aliasing included).

    Args:
        x: 1-D signal or (channels, samples) array.
        fs_in: the signal's rate in Hz.
        fs_out: the wanted rate in Hz.
        max_denominator: bound on ``down`` in the rational approximation of the ratio; when the
            ratio is not exactly representable the output rate is ``fs_in * up / down`` (the
            relative difference is logged; it is below 1e-6 for rates with a few decimals).

    Returns:
        The resampled signal with ``ceil(n * up / down)`` samples (the input's float dtype is kept;
        integer input comes back as float64). Equal rates return the input unchanged.

    Raises:
        RecordError: NaN/inf or empty input, rates that are not positive numbers, or a rate more than
            ``max_denominator`` times the wanted one.

    Example:
        >>> resample(np.zeros(3000), 300, 100).shape
        (1000,)
    """
    where = describe(x)
    fs_in = check_fs(fs_in, "resample", where)
    fs_out = check_fs(fs_out, "resample", where)
    arr, _ = as_signal(x, fs_in, "resample", where)
    original = np.asarray(x)
    if np.isclose(fs_in, fs_out, rtol=1e-9):
        return original
    up, down = rate_ratio(fs_in, fs_out, max_denominator)
    if up < 1:  # the ratio rounds to 0: more than max_denominator times fewer samples
        raise RecordError(
            f"resample: cannot go from {fs_in:g} Hz to {fs_out:g} Hz (more than {max_denominator}x fewer samples); "
            "check the recording's sampling rate",
            where,
        )
    achieved = fs_in * up / down
    if not np.isclose(achieved, fs_out, rtol=1e-9):
        log.info("resample %g -> %g Hz approximated as %d/%d (%.9g Hz)", fs_in, fs_out, up, down, achieved)
    # 'line' padding extends the signal's trend at the ends instead of zeros, so an offset or a
    # slope does not ring at the edges
    y = sps.resample_poly(arr, up, down, axis=-1, padtype="line")
    dtype = original.dtype if original.dtype.kind == "f" else np.float64
    return y.astype(dtype, copy=False)


def resample_record(record: Record, fs: float, *, max_denominator: int = 1000) -> Record:
    """Return ``record`` at ``fs`` Hz, with annotation sample indices moved to the new rate.

    Args:
        record: the record.
        fs: the wanted rate in Hz.
        max_denominator: see :func:`resample`.

    Returns:
        A new Record (the same one when the rate already matches) with
        ``metadata["resampled_from_hz"]`` set to the old rate; annotation samples are
        ``round(sample * up / down)``, kept inside the new signal.

    Raises:
        RecordError: a rate that is not a positive number.
    """
    where = record.source or record.name
    fs = check_fs(fs, "resample_record", str(where))
    if np.isclose(record.fs, fs, rtol=1e-9):
        return record
    up, down = rate_ratio(record.fs, fs, max_denominator)
    try:
        signal = resample(record.signal, record.fs, fs, max_denominator=max_denominator)
    except RecordError as exc:
        raise RecordError(exc.problem, where) from None
    ann = record.annotations
    if ann is not None:
        moved = np.round(ann.sample.astype(np.float64) * up / down).astype(np.int64)
        ann = Annotations(np.clip(moved, 0, signal.shape[-1] - 1), list(ann.symbol), list(ann.aux))
    meta = {**record.metadata, "resampled_from_hz": record.fs}
    return record.replace(signal=signal, fs=record.fs * up / down, annotations=ann, metadata=meta)


__all__ = ["rate_ratio", "resample", "resample_record"]
