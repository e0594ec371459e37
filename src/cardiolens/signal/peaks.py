"""Beat detection: ECG R peaks and PPG systolic (pulse) peaks, numpy/scipy only (neurokit2 optional).

Methods are named after their authors and year, as in NeuroKit.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import scipy.signal

from cardiolens.errors import RecordError
from cardiolens.signal.filters import bandpass

ECG_METHODS = ("pantompkins1985", "neurokit")
PPG_METHODS = ("elgendi2013", "neurokit")
DEFAULT_ECG_METHOD = "pantompkins1985"
DEFAULT_PPG_METHOD = "elgendi2013"


def _as_1d(signal: np.ndarray, fs: float, min_seconds: float) -> np.ndarray:
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise RecordError(f"beat detection needs one lead (1-D), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise RecordError("beat detection needs finite samples (the lead holds NaN/inf)")
    if x.size < min_seconds * fs:
        raise RecordError(f"beat detection needs at least {min_seconds:g} s of signal, got {x.size / fs:.2f} s")
    return x


def _pantompkins1985(x: np.ndarray, fs: float) -> np.ndarray:
    """Pan & Tompkins (1985) energy detector: 5-15 Hz band-pass, derivative, squaring, 150 ms
    integration, then peaks above a threshold that adapts to the local signal level (2 s windows)."""
    filtered = bandpass(x, fs, 5.0, min(15.0, 0.45 * fs), order=2)
    energy = np.gradient(filtered) ** 2
    integrated = scipy.ndimage.uniform_filter1d(energy, max(int(0.15 * fs), 1))
    # local level: a high percentile over a sliding 2 s window, so amplitude changes are followed
    level = scipy.ndimage.maximum_filter1d(integrated, int(2 * fs))
    level = scipy.ndimage.uniform_filter1d(level, int(2 * fs))
    # a floor relative to the record's strongest beats keeps beat-free stretches from promoting noise
    floor = 0.05 * np.percentile(integrated, 99)
    height = np.maximum(0.25 * level, floor)
    candidates, _ = scipy.signal.find_peaks(integrated, height=height, distance=max(int(0.25 * fs), 1))
    # refine each candidate to the largest |band-passed| deflection within +-75 ms (handles inverted QRS)
    half = int(0.075 * fs)
    refined = []
    for c in candidates:
        a, b = max(c - half, 0), min(c + half + 1, x.size)
        refined.append(a + int(np.argmax(np.abs(filtered[a:b]))))
    return np.unique(np.asarray(refined, dtype=np.int64))


def ecg_peaks(signal: np.ndarray, fs: float, method: str = DEFAULT_ECG_METHOD) -> np.ndarray:
    """Sample indices of the R peaks of one ECG lead.

    Args:
        signal: 1-D ECG (raw or cleaned).
        fs: sampling rate in Hz.
        method: ``"pantompkins1985"`` (scipy only, fast) or ``"neurokit"`` (neurokit2's default).
    """
    x = _as_1d(signal, fs, 1.0)
    if method == "pantompkins1985":
        return _pantompkins1985(x, fs)
    if method == "neurokit":
        import neurokit2 as nk  # imported here: neurokit2 takes seconds to import

        cleaned = nk.ecg_clean(x, sampling_rate=int(round(fs)), method="neurokit")
        _, info = nk.ecg_peaks(cleaned, sampling_rate=int(round(fs)), method="neurokit")
        return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)
    raise ValueError(f"unknown ECG peak method {method!r}; choose one of {ECG_METHODS}")


def _elgendi2013(x: np.ndarray, fs: float) -> np.ndarray:
    """Elgendi et al. (2013) two-moving-average PPG systolic peak detector."""
    filtered = bandpass(x, fs, 0.5, min(8.0, 0.45 * fs), order=2)
    squared = np.clip(filtered, 0, None) ** 2
    ma_peak = scipy.ndimage.uniform_filter1d(squared, max(int(0.111 * fs), 1))
    ma_beat = scipy.ndimage.uniform_filter1d(squared, max(int(0.667 * fs), 1))
    blocks = ma_peak > ma_beat + 0.02 * squared.mean()
    edges = np.flatnonzero(np.diff(np.r_[0, blocks.astype(np.int8), 0]))
    peaks = []
    for start, stop in zip(edges[0::2], edges[1::2], strict=True):
        if stop - start >= int(0.111 * fs):
            peaks.append(start + int(np.argmax(filtered[start:stop])))
    peaks = np.asarray(peaks, dtype=np.int64)
    # two pulses closer than 300 ms (200 bpm) are one: keep the taller
    keep = []
    for p in peaks:
        if keep and p - keep[-1] < 0.3 * fs:
            if filtered[p] > filtered[keep[-1]]:
                keep[-1] = p
        else:
            keep.append(p)
    return np.asarray(keep, dtype=np.int64)


def ppg_peaks(signal: np.ndarray, fs: float, method: str = DEFAULT_PPG_METHOD) -> np.ndarray:
    """Sample indices of the systolic peaks of a PPG.

    Args:
        signal: 1-D PPG.
        fs: sampling rate in Hz.
        method: ``"elgendi2013"`` (scipy only) or ``"neurokit"`` (neurokit2's ``ppg_findpeaks``).
    """
    x = _as_1d(signal, fs, 2.0)
    if method == "elgendi2013":
        return _elgendi2013(x, fs)
    if method == "neurokit":
        import neurokit2 as nk

        cleaned = nk.ppg_clean(x, sampling_rate=int(round(fs)))
        info = nk.ppg_findpeaks(cleaned, sampling_rate=int(round(fs)))
        return np.asarray(info["PPG_Peaks"], dtype=np.int64)
    raise ValueError(f"unknown PPG peak method {method!r}; choose one of {PPG_METHODS}")


def heart_rate(peaks: np.ndarray, fs: float) -> np.ndarray:
    """Instantaneous rate in beats per minute between successive peaks (one value fewer than peaks)."""
    return 60.0 * fs / np.diff(np.asarray(peaks, dtype=np.float64))
