"""Zero-phase filters (scipy.signal Butterworth + sosfiltfilt) and default cleaning pipelines."""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import scipy.signal

from cardiolens.errors import RecordError


def _check_cutoffs(fs: float, *cutoffs: float | None) -> None:
    nyquist = fs / 2
    for f in cutoffs:
        if f is not None and not 0 < f < nyquist:
            raise RecordError(
                f"cut-off {f:g} Hz must lie between 0 and the Nyquist frequency {nyquist:g} Hz (fs={fs:g})"
            )


def _apply(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    # sosfiltfilt pads by 3 * (2 * sections + 1) samples on each side; shorter input cannot be filtered
    need = 3 * (2 * len(sos) + 1) + 1
    if x.shape[-1] <= need:
        raise RecordError(f"signal of {x.shape[-1]} samples is too short to filter (needs more than {need})")
    return scipy.signal.sosfiltfilt(sos, x, axis=-1)


def bandpass(x: np.ndarray, fs: float, low: float, high: float, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth band-pass between ``low`` and ``high`` Hz along the last axis."""
    _check_cutoffs(fs, low, high)
    if low >= high:
        raise RecordError(f"band-pass needs low < high, got {low:g} >= {high:g} Hz")
    return _apply(scipy.signal.butter(order, [low, high], btype="bandpass", fs=fs, output="sos"), x)


def highpass(x: np.ndarray, fs: float, cutoff: float, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth high-pass."""
    _check_cutoffs(fs, cutoff)
    return _apply(scipy.signal.butter(order, cutoff, btype="highpass", fs=fs, output="sos"), x)


def lowpass(x: np.ndarray, fs: float, cutoff: float, order: int = 3) -> np.ndarray:
    """Zero-phase Butterworth low-pass."""
    _check_cutoffs(fs, cutoff)
    return _apply(scipy.signal.butter(order, cutoff, btype="lowpass", fs=fs, output="sos"), x)


def notch(x: np.ndarray, fs: float, freq: float = 50.0, quality: float = 30.0) -> np.ndarray:
    """Remove mains interference at ``freq`` Hz (50 or 60) with a zero-phase IIR notch."""
    _check_cutoffs(fs, freq)
    b, a = scipy.signal.iirnotch(freq, quality, fs=fs)
    return _apply(scipy.signal.tf2sos(b, a), x)


def remove_baseline(x: np.ndarray, fs: float, method: str = "highpass", cutoff: float = 0.5) -> np.ndarray:
    """Remove baseline wander.

    Args:
        method: ``"highpass"`` (Butterworth at ``cutoff`` Hz) or ``"median"`` (subtract a 200 ms then
            600 ms median-filtered baseline, de Chazal et al. 2004), which keeps ST levels intact.
    """
    if method == "highpass":
        return highpass(x, fs, cutoff)
    if method == "median":
        x = np.asarray(x, dtype=np.float64)
        k1, k2 = (int(round(s * fs)) // 2 * 2 + 1 for s in (0.2, 0.6))
        size = [1] * (x.ndim - 1)
        baseline = scipy.ndimage.median_filter(x, size=size + [k1], mode="nearest")
        baseline = scipy.ndimage.median_filter(baseline, size=size + [k2], mode="nearest")
        return x - baseline
    raise ValueError(f"method must be 'highpass' or 'median', got {method!r}")


def clean_ecg(x: np.ndarray, fs: float) -> np.ndarray:
    """Default ECG cleaning: 0.5-40 Hz band-pass (baseline wander and mains/EMG noise out).

    The upper edge drops to 0.45 * fs for low rates (e.g. 100 Hz records keep up to 40 Hz; 50 Hz keep 22.5).
    """
    return bandpass(x, fs, 0.5, min(40.0, 0.45 * fs))


def clean_ppg(x: np.ndarray, fs: float) -> np.ndarray:
    """Default PPG cleaning: 0.5-8 Hz band-pass (Elgendi's recommended band for pulse peaks)."""
    return bandpass(x, fs, 0.5, min(8.0, 0.45 * fs))
