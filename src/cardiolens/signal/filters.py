"""Zero-phase filters for heart signals (numpy + ``scipy.signal``, never torch).

Every function takes a 1-D signal, a ``(channels, samples)`` array or a
:class:`~cardiolens.signal.Record`, filters along the last axis with ``scipy.signal.sosfiltfilt`` (so
waves keep their timing), and returns the same kind of object it was given: arrays come back as
float64 arrays of the same shape, Records as new Records (the input is never modified).

Bad input surfaces as a :class:`~cardiolens.errors.RecordError` that names the signal and the
problem: NaNs, an empty or too-short signal (shorter than the padding ``sosfiltfilt`` needs), a
cut-off at or above the Nyquist frequency, or a mains frequency the sampling rate cannot carry.

Example:
    >>> import numpy as np
    >>> fs = 250.0
    >>> t = np.arange(int(10 * fs)) / fs
    >>> x = np.sin(2 * np.pi * 1.2 * t) + 0.5 * np.sin(2 * np.pi * 50 * t)
    >>> y = notch(x, fs, freq=50.0)
    >>> bool(np.std(y - np.sin(2 * np.pi * 1.2 * t)) < 0.05)
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import signal as sps
from scipy.ndimage import median_filter

from cardiolens.errors import RecordError
from cardiolens.signal.leads import OTHER_SIGNAL_NAMES, modality
from cardiolens.signal.record import Record

# the lead classification lives in cardiolens.signal.leads; the name is kept for existing callers
lead_modality = modality


def describe(x: Any) -> str:
    """How error messages name a plain array: its kind and shape."""
    shape = getattr(x, "shape", None)
    return f"signal array of shape {tuple(shape)}" if shape is not None else "signal"


def as_signal(x: Any, fs: float | None, what: str, where: str | None = None) -> tuple[np.ndarray, float]:
    """Validate a 1-D or (channels, samples) numeric array and a sampling rate.

    Args:
        x: the signal (array-like).
        fs: sampling rate in Hz.
        what: the operation, for error messages (``"bandpass"``).
        where: the source named in errors (default: the array's shape).

    Returns:
        ``(x as float64 array, fs as float)``.

    Raises:
        RecordError: non-numeric, empty, more than 2-D, NaN/inf, or a missing/invalid rate.
    """
    where = where or describe(x)
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise RecordError(f"{what}: signal must be numeric, got dtype {arr.dtype}", where)
    if arr.ndim not in (1, 2):
        raise RecordError(f"{what}: signal must be 1-D or (channels, samples), got shape {arr.shape}", where)
    if arr.size == 0:
        raise RecordError(f"{what}: signal is empty (shape {arr.shape})", where)
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(arr.size - np.count_nonzero(finite))
        raise RecordError(
            f"{what}: signal holds {bad} NaN/inf values of {arr.size}; interpolate or crop them first", where
        )
    return arr, check_fs(fs, what, where)


def check_fs(fs: float | None, what: str, where: str) -> float:
    """Return ``fs`` as a positive finite float, or raise a RecordError saying what is wrong."""
    if fs is None:
        raise RecordError(f"{what}: the sampling rate fs is required for a plain array", where)
    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise RecordError(f"{what}: sampling rate must be a number of Hz, got {fs!r}", where) from None
    if not np.isfinite(value) or value <= 0:
        raise RecordError(f"{what}: sampling rate must be a positive number of Hz, got {fs!r}", where)
    return value


def design(kind: str, cutoff: float | tuple[float, float], fs: float, order: int, where: str) -> np.ndarray:
    """Butterworth second-order sections, refusing cut-offs the sampling rate cannot carry."""
    nyquist = fs / 2.0
    cuts = np.atleast_1d(np.asarray(cutoff, dtype=np.float64))
    for c in cuts:
        if not np.isfinite(c) or c <= 0:
            raise RecordError(f"{kind}: cut-off must be a positive number of Hz, got {c:g}", where)
        if c >= nyquist:
            raise RecordError(
                f"{kind}: cut-off {c:g} Hz is at or above the Nyquist frequency ({nyquist:g} Hz at fs={fs:g} Hz); "
                "lower the cut-off or use a higher sampling rate",
                where,
            )
    if len(cuts) == 2 and cuts[0] >= cuts[1]:
        raise RecordError(f"{kind}: needs low < high, got low={cuts[0]:g} Hz >= high={cuts[1]:g} Hz", where)
    if order < 1:
        raise RecordError(f"{kind}: filter order must be at least 1, got {order}", where)
    btype = {"bandpass": "bandpass", "highpass": "highpass", "lowpass": "lowpass"}[kind]
    return sps.butter(order, cuts if len(cuts) == 2 else cuts[0], btype=btype, fs=fs, output="sos")


def padlen(sos: np.ndarray) -> int:
    """The edge padding ``scipy.signal.sosfiltfilt`` uses by default (its own formula)."""
    zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * (2 * len(sos) + 1 - zeros)


def filtfilt(sos: np.ndarray, x: np.ndarray, fs: float, what: str, where: str) -> np.ndarray:
    """``sosfiltfilt`` along the last axis, with a clear error for too-short signals."""
    need = padlen(sos)
    n = x.shape[-1]
    if n <= need:
        raise RecordError(
            f"{what}: signal has {n} samples ({n / fs:.3g} s), too short for this filter, which needs more "
            f"than {need} samples; use a longer signal or a lower filter order",
            where,
        )
    return sps.sosfiltfilt(sos, x, axis=-1)


def _apply(x: Any, fs: float | None, what: str, fn: Callable[[np.ndarray, float, str], np.ndarray]) -> Any:
    """Run ``fn(array, fs, where)`` on an array or on a Record's signal (returning a new Record)."""
    if isinstance(x, Record):
        where = str(x.source or x.name)
        if fs is not None and not np.isclose(float(fs), x.fs):
            raise RecordError(f"{what}: fs={fs:g} was given but the record is sampled at {x.fs:g} Hz", where)
        arr, rate = as_signal(x.signal, x.fs, what, where)
        return x.replace(signal=fn(arr, rate, where))
    arr, rate = as_signal(x, fs, what)
    return fn(arr, rate, describe(x))


def bandpass(x: Any, fs: float | None, low: float, high: float, *, order: int = 3) -> Any:
    """Zero-phase Butterworth band-pass filter.

    Args:
        x: 1-D signal, (channels, samples) array or Record.
        fs: sampling rate in Hz (``None`` for a Record).
        low: lower cut-off in Hz.
        high: upper cut-off in Hz (must be below fs/2).
        order: Butterworth order per edge (the zero-phase pass applies it twice).

    Returns:
        The filtered signal, same shape (or a new Record).

    Raises:
        RecordError: cut-offs outside (0, fs/2), low >= high, NaNs, or a signal too short to filter.
    """
    return _apply(
        x, fs, "bandpass", lambda a, r, w: filtfilt(design("bandpass", (low, high), r, order, w), a, r, "bandpass", w)
    )


def highpass(x: Any, fs: float | None, cutoff: float, *, order: int = 3) -> Any:
    """Zero-phase Butterworth high-pass filter (see :func:`bandpass` for arguments and errors)."""
    return _apply(
        x, fs, "highpass", lambda a, r, w: filtfilt(design("highpass", cutoff, r, order, w), a, r, "highpass", w)
    )


def lowpass(x: Any, fs: float | None, cutoff: float, *, order: int = 3) -> Any:
    """Zero-phase Butterworth low-pass filter (see :func:`bandpass` for arguments and errors)."""
    return _apply(
        x, fs, "lowpass", lambda a, r, w: filtfilt(design("lowpass", cutoff, r, order, w), a, r, "lowpass", w)
    )


def notch(x: Any, fs: float | None, freq: float = 50.0, *, quality: float = 30.0) -> Any:
    """Remove mains interference (50 Hz in Europe, 60 Hz in the Americas) with a zero-phase IIR notch.

    Args:
        x: 1-D signal, (channels, samples) array or Record.
        fs: sampling rate in Hz (``None`` for a Record).
        freq: the frequency to remove in Hz.
        quality: quality factor: ``freq / quality`` is the -3 dB width of the notch.

    Returns:
        The filtered signal, same shape (or a new Record).

    Raises:
        RecordError: ``freq`` at or above fs/2 (a signal sampled that slowly cannot contain it, so
            there is nothing to remove: skip the notch), NaNs, or a signal too short to filter.
    """

    def run(a: np.ndarray, r: float, w: str) -> np.ndarray:
        if not np.isfinite(freq) or freq <= 0:
            raise RecordError(f"notch: frequency must be a positive number of Hz, got {freq!r}", w)
        if freq >= r / 2:
            raise RecordError(
                f"notch: {freq:g} Hz is at or above the Nyquist frequency ({r / 2:g} Hz at fs={r:g} Hz), so the "
                "signal cannot contain it; skip the notch filter at this sampling rate",
                w,
            )
        b, a_ = sps.iirnotch(freq, quality, fs=r)
        return filtfilt(sps.tf2sos(b, a_), a, r, "notch", w)

    return _apply(x, fs, "notch", run)


def remove_baseline(x: Any, fs: float | None, method: str = "highpass", *, cutoff: float = 0.5) -> Any:
    """Remove baseline wander.

    Args:
        x: 1-D signal, (channels, samples) array or Record.
        fs: sampling rate in Hz (``None`` for a Record).
        method: ``"highpass"`` (zero-phase Butterworth high-pass at ``cutoff``; fast, the default) or
            ``"dechazal2004"`` (subtract the baseline estimated by a 200 ms then a 600 ms median
            filter, de Chazal et al. 2004; keeps ST levels better, slower).
        cutoff: high-pass cut-off in Hz for ``method="highpass"``.

    Returns:
        The signal without its baseline, same shape (or a new Record).

    Raises:
        RecordError: unknown method, NaNs, cut-off above Nyquist, or a signal too short.
    """
    if method == "highpass":
        return highpass(x, fs, cutoff)
    if method in ("dechazal2004", "median"):

        def run(a: np.ndarray, r: float, w: str) -> np.ndarray:
            k1 = int(round(0.2 * r)) | 1  # odd widths keep the filters centred
            k2 = int(round(0.6 * r)) | 1
            if a.shape[-1] < k2:
                raise RecordError(
                    f"remove_baseline: signal has {a.shape[-1]} samples, shorter than the 600 ms median window "
                    f"({k2} samples)",
                    w,
                )
            size = (1, k1) if a.ndim == 2 else k1
            base = median_filter(a, size=size, mode="nearest")
            size = (1, k2) if a.ndim == 2 else k2
            base = median_filter(base, size=size, mode="nearest")
            return a - base

        return _apply(x, fs, "remove_baseline", run)
    raise RecordError(f"remove_baseline: unknown method {method!r}; choose 'highpass' or 'dechazal2004'", describe(x))


def clean_ecg(x: Any, fs: float | None, *, low: float = 0.5, high: float = 40.0, powerline: float | None = None) -> Any:
    """The default ECG cleaning pipeline: zero-phase 0.5-40 Hz band-pass, optional mains notch.

    The band keeps the QRS complex, P and T waves and ST levels (0.5 Hz is the usual diagnostic
    lower edge) and removes baseline wander and most muscle noise. When the sampling rate cannot
    carry ``high`` (fs/2 <= high, e.g. 40 Hz at 50 Hz) the low-pass edge is lowered to 0.45 * fs:
    the acquisition's anti-aliasing has already band-limited such a signal.

    Args:
        x: 1-D ECG, (leads, samples) array or Record.
        fs: sampling rate in Hz (``None`` for a Record).
        low: high-pass edge in Hz.
        high: low-pass edge in Hz.
        powerline: mains frequency to notch out (50 or 60), or ``None`` for no notch.

    Returns:
        The cleaned ECG, same shape (or a new Record).
    """

    def run(a: np.ndarray, r: float, w: str) -> np.ndarray:
        top = min(high, 0.45 * r)
        y = filtfilt(design("bandpass", (low, top), r, 3, w), a, r, "clean_ecg", w)
        if powerline is not None and powerline < r / 2:
            b, a_ = sps.iirnotch(powerline, 30.0, fs=r)
            y = filtfilt(sps.tf2sos(b, a_), y, r, "clean_ecg", w)
        return y

    return _apply(x, fs, "clean_ecg", run)


def clean_ppg(x: Any, fs: float | None, *, low: float = 0.5, high: float = 8.0) -> Any:
    """The default PPG cleaning pipeline: zero-phase 0.5-8 Hz Butterworth band-pass (Elgendi 2013).

    Args:
        x: 1-D PPG, (channels, samples) array or Record.
        fs: sampling rate in Hz (``None`` for a Record).
        low: high-pass edge in Hz.
        high: low-pass edge in Hz (lowered to 0.45 * fs when the rate cannot carry it).

    Returns:
        The cleaned PPG, same shape (or a new Record).
    """
    return _apply(
        x,
        fs,
        "clean_ppg",
        lambda a, r, w: filtfilt(design("bandpass", (low, min(high, 0.45 * r)), r, 3, w), a, r, "clean_ppg", w),
    )


def clean(record: Record, *, powerline: float | None = None) -> Record:
    """Clean every lead of a Record with the default pipeline of its modality.

    ECG leads go through :func:`clean_ecg`, PPG leads (by name) through
    :func:`clean_ppg`; other signals (respiration, blood pressure) are left as they are.

    Args:
        record: the record.
        powerline: mains frequency to notch out of ECG leads (50 or 60), or ``None``.

    Returns:
        A new Record with ``metadata["cleaned"] = True``.
    """
    if not isinstance(record, Record):
        raise RecordError("clean() takes a Record; use clean_ecg / clean_ppg for arrays", describe(record))
    rows = []
    for lead, unit, row in zip(record.leads, record.units, record.signal, strict=True):
        kind = lead_modality(lead, unit)
        try:
            if kind == "PPG":
                rows.append(clean_ppg(row, record.fs))
            elif kind == "ECG":
                rows.append(clean_ecg(row, record.fs, powerline=powerline))
            else:
                rows.append(row.astype(np.float64))
        except RecordError as exc:  # the array functions know no file: name the record and lead
            raise RecordError(f"lead {lead}: {exc.problem}", record.source or record.name) from None
    return record.replace(signal=np.vstack(rows), metadata={**record.metadata, "cleaned": True})


__all__ = [
    "OTHER_SIGNAL_NAMES",
    "bandpass",
    "clean",
    "clean_ecg",
    "clean_ppg",
    "highpass",
    "lead_modality",
    "lowpass",
    "notch",
    "remove_baseline",
]
