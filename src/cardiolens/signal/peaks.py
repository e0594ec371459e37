"""Beat detection: ECG R peaks and PPG systolic (pulse) peaks, numpy/scipy only (neurokit2 optional).

Methods are named after their authors and year as in NeuroKit, except cardiolens' own ECG
detector, ``"cardiolens"``, which combines published rules (see :func:`ecg_peaks`).

ECG methods:
    - ``"cardiolens"`` (default): scipy only; Se 99.84 % / +P 99.89 % (EC57 scoring) on the 26 MIT-BIH records
      in ../shared/data (benchmarks/rpeaks_mitdb.py, docs/BENCHMARKS.md), faster than neurokit2.
    - ``"neurokit"``: ``nk.ecg_clean`` + ``nk.ecg_peaks`` with neurokit2's default method.
    - ``"neurokit:<name>"``: any other neurokit2 detector (``"neurokit:pantompkins1985"``,
      ``"neurokit:hamilton2002"``, ``"neurokit:elgendi2010"``, ...), cleaned the way neurokit2
      cleans for that method.

PPG methods:
    - ``"elgendi2013"`` (default): the two-moving-averages detector, scipy only.
    - ``"neurokit"``: ``nk.ppg_clean`` + ``nk.ppg_peaks`` (Elgendi's method as neurokit2 implements it).

Example:
    >>> import numpy as np
    >>> fs = 250.0
    >>> x = np.zeros(int(10 * fs))
    >>> x[np.arange(125, 2400, 200)] = 1.0  # a spike every 0.8 s
    >>> ecg_peaks(np.convolve(x, np.hanning(15), "same"), fs).tolist()[:3]
    [125, 325, 525]
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from scipy import signal as sps
from scipy.ndimage import uniform_filter1d

from cardiolens.errors import RecordError
from cardiolens.signal.filters import as_signal, describe, design, filtfilt
from cardiolens.signal.record import Record

ECG_METHODS = ("cardiolens", "neurokit")
PPG_METHODS = ("elgendi2013", "neurokit")
DEFAULT_ECG_METHOD = "cardiolens"
DEFAULT_PPG_METHOD = "elgendi2013"
# neurokit2 detectors that have a cleaning method of the same name (the others use "neurokit")
_NK_CLEAN_METHODS = ("neurokit", "biosppy", "pantompkins1985", "hamilton2002", "elgendi2010", "engzeemod2012")


def _one_lead(signal: Any, fs: float | None, lead: str | int | None, what: str) -> tuple[np.ndarray, float, str]:
    """A 1-D float64 lead and its rate from an array or a Record, with clear errors."""
    if isinstance(signal, Record):
        where = str(signal.source or signal.name)
        if lead is None:
            if signal.n_channels != 1:
                raise RecordError(
                    f"{what}: the record has {signal.n_channels} leads ({', '.join(signal.leads)}); choose one "
                    "with lead=",
                    where,
                )
            lead = 0
        if fs is not None and not np.isclose(float(fs), signal.fs):
            raise RecordError(f"{what}: fs={fs:g} was given but the record is sampled at {signal.fs:g} Hz", where)
        x, rate = as_signal(signal.signal[signal.lead_index(lead)], signal.fs, what, where)
        return x, rate, where
    where = describe(signal)
    x, rate = as_signal(signal, fs, what, where)
    if x.ndim == 2:
        if x.shape[0] != 1:
            raise RecordError(f"{what}: needs one lead (1-D), got shape {x.shape}; pass one row", where)
        x = x[0]
    return x, rate, where


def _median(values: deque) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


def _ecg_peaks_cardiolens(
    x: np.ndarray,
    fs: float,
    where: str,
    *,
    band: tuple[float, float] = (5.0, 20.0),
    window: float = 0.1,
    refractory: float = 0.3,
    min_refractory: float = 0.2,
    threshold: float = 0.3125,
    memory: int = 8,
    searchback: float = 1.5,
    searchback_threshold: float = 0.5,
    twave_window: float = 0.36,
    twave_slope: float = 0.5,
    search: float = 0.1,
) -> np.ndarray:
    """cardiolens' R-peak detector (see :func:`ecg_peaks` for the algorithm and its sources)."""
    low, high = band
    high = min(high, 0.45 * fs)
    if high <= low * 1.5:
        raise RecordError(
            f"ecg_peaks: fs={fs:g} Hz is too low to detect QRS complexes (the {low:g}-{band[1]:g} Hz QRS band "
            "does not fit below the Nyquist frequency)",
            where,
        )
    filtered = filtfilt(design("bandpass", (low, high), fs, 2, where), x, fs, "ecg_peaks", where)
    if np.ptp(x) == 0:  # a flat lead has no beats (filtering its offset leaves only rounding noise)
        return np.zeros(0, dtype=np.int64)
    slope = np.gradient(filtered)
    # squared slope integrated over ~100 ms (a centred moving average keeps the timing)
    energy = uniform_filter1d(slope * slope, max(1, int(round(window * fs))))
    rules = dict(
        threshold=threshold,
        memory=memory,
        searchback=searchback,
        searchback_threshold=searchback_threshold,
        twave=twave_window * fs,
        twave_slope=twave_slope,
    )
    dead = max(1, int(round(refractory * fs)))
    centres = _qrs_centres(energy, slope, fs, dead, **rules)
    shortest = max(1, int(round(min_refractory * fs)))
    median_rr = np.median(np.diff(centres)) if centres.size >= 3 else np.inf
    if shortest < dead and median_rr < 2 * dead:
        # a fast rhythm may lose beats to the refractory period (and halve its rate): look again
        # with the shortest one; when that finds clearly more beats (5 %, at least 2), keep them,
        # detected with a refractory period of 60 % of their median RR
        quick = _qrs_centres(energy, slope, fs, shortest, **rules)
        more = quick.size > centres.size + max(2, 0.05 * centres.size)
        if median_rr >= dead / 0.6:
            # RR intervals just under the refractory period (200-240 bpm) show as every second beat, a
            # median RR of 0.5-0.6 s, the range of an ordinary 100-120 bpm too; there the extra beats
            # are kept only when they look like the missed half: about twice as many, at half the RR
            more = more and quick.size >= 1.6 * centres.size and abs(np.median(np.diff(quick)) / median_rr - 0.5) < 0.1
        if more:
            dead = max(shortest, int(0.6 * np.median(np.diff(quick))))
            centres = quick if dead == shortest else _qrs_centres(energy, slope, fs, dead, **rules)
    if centres.size == 0:
        return np.zeros(0, dtype=np.int64)
    return _refine(x, fs, centres, search, dead)


def _qrs_centres(
    energy: np.ndarray,
    slope: np.ndarray,
    fs: float,
    dead: int,
    *,
    threshold: float,
    memory: int,
    searchback: float,
    searchback_threshold: float,
    twave: float,
    twave_slope: float,
) -> np.ndarray:
    """Sample indices of the QRS complexes (energy peaks) accepted by the adaptive-threshold rules."""
    n = energy.size
    # candidates: local maxima of the energy at least `dead` apart, the larger one winning
    cand, _ = sps.find_peaks(energy, distance=dead)
    if cand.size == 0:
        return cand.astype(np.int64)
    # heights as RMS slopes (square root of the energy), which scale linearly with the amplitude,
    # so the thresholds follow amplitude changes in proportion
    rms = np.sqrt(np.maximum(energy[cand], 0.0))  # a running sum can dip a hair below 0
    height = rms.tolist()
    half = max(1, int(round(0.06 * fs)))
    around = np.clip(cand[:, None] + np.arange(-half, half + 1)[None, :], 0, n - 1)  # (candidates, 2 half + 1)
    steep = np.abs(slope[around]).max(axis=1).tolist()  # steepest slope of each candidate's QRS
    pos = cand.tolist()

    # initial levels from the first 8 s: for beats the median of the top third of the candidates
    # (at least half the largest, for slow rhythms with few beats among many small candidates), for
    # noise the median RMS slope of all samples; both adapt within `memory` beats
    early = cand < 8 * fs
    first = np.sort(rms[early] if np.any(early) else rms)[::-1]
    q0 = max(float(np.median(first[: max(1, first.size // 3)])), 0.5 * float(first[0]))
    n0 = float(np.sqrt(max(np.median(energy[: max(1, int(8 * fs))]), 0.0)))
    floor = float(np.sqrt(max(np.median(energy[:: max(1, n // 100_000)]), 0.0)))  # the typical RMS slope
    qrs_levels = deque([q0] * memory, maxlen=memory)
    noise_levels = deque([n0] * memory, maxlen=memory)
    rr: deque = deque(maxlen=memory)
    qrs_level, noise_level = q0, n0
    beats: list[int] = []  # indices into cand
    pending: list[int] = []  # candidates rejected since the last beat, for search-back
    decayed = -np.inf  # when the beat level was last halved
    expected = fs  # the RR interval expected (median of the last ones; 1 s until two are known)
    for i in range(len(pos)):
        c = pos[i]
        thr = noise_level + threshold * (qrs_level - noise_level)
        if beats and pending and c - pos[beats[-1]] > searchback * expected:
            # search-back: a beat is overdue, take the largest rejected candidate that is no T wave
            last = beats[-1]
            ok = [j for j in pending if not (pos[j] - pos[last] < twave and steep[j] < twave_slope * steep[last])]
            best = max(ok, key=height.__getitem__) if ok else -1
            if ok and height[best] > searchback_threshold * thr:
                rr.append(pos[best] - pos[last])
                expected = _median(rr) if len(rr) >= 2 else fs
                beats.append(best)
                qrs_levels.append(height[best])
                qrs_level = _median(qrs_levels)
                pending = [j for j in pending if j > best]
                thr = noise_level + threshold * (qrs_level - noise_level)
            elif (
                c - pos[beats[-1]] > 2 * searchback * expected
                and c - decayed > expected
                and sum(height[j] > 8 * floor for j in pending) >= 2
            ):
                # three RR intervals without a beat, yet rejected candidates stand far above the
                # record's typical slope: the beat level was set by an artefact or the amplitude
                # fell. Halve it (once per RR) until beats show; a pause with only noise leaves it alone
                qrs_levels = deque([v / 2 for v in qrs_levels], maxlen=memory)
                qrs_level /= 2
                decayed = c
                thr = noise_level + threshold * (qrs_level - noise_level)
        if height[i] > thr:
            if beats and c - pos[beats[-1]] < twave and steep[i] < twave_slope * steep[beats[-1]]:
                # within 360 ms of a beat and much less steep: a T wave (Pan & Tompkins 1985)
                noise_levels.append(height[i])
                noise_level = _median(noise_levels)
                pending.append(i)
                continue
            if beats:
                rr.append(c - pos[beats[-1]])
                expected = _median(rr) if len(rr) >= 2 else fs
            beats.append(i)
            qrs_levels.append(height[i])
            qrs_level = _median(qrs_levels)
            pending = []
        else:
            noise_levels.append(height[i])
            noise_level = _median(noise_levels)
            pending.append(i)
    return cand[np.asarray(beats, dtype=np.int64)]


def _refine(x: np.ndarray, fs: float, centres: np.ndarray, search: float, dead: int) -> np.ndarray:
    """Move each QRS (energy centre) to its R peak: the main deflection within +-``search`` s.

    The deflection is measured from the window's median (a local baseline) on a lightly smoothed
    signal. The record's dominant polarity (upright or inverted QRS) is used for every beat unless
    the opposite deflection of a beat is more than twice as large (an ectopic beat of another shape).
    """
    r = max(1, int(round(search * fs)))
    idx = np.clip(centres[:, None] + np.arange(-r, r + 1)[None, :], 0, x.size - 1)  # (beats, 2r+1)
    # a centred moving average over ~8 ms, computed only inside the windows
    k = max(0, int(round(0.004 * fs)))
    win = np.mean([x[np.clip(idx + s, 0, x.size - 1)] for s in range(-k, k + 1)], axis=0)
    win = win - np.median(win, axis=1, keepdims=True)
    up_at, down_at = np.argmax(win, axis=1), np.argmin(win, axis=1)
    rows = np.arange(len(centres))
    up, down = win[rows, up_at], -win[rows, down_at]
    if np.median(up) >= np.median(down):
        at = np.where(down > 2 * up, down_at, up_at)
    else:
        at = np.where(up > 2 * down, up_at, down_at)
    peaks = idx[rows, at]
    amp = np.maximum(up, down)
    # two beats refined onto (nearly) the same wave: keep the larger
    order = np.argsort(peaks, kind="stable")
    peaks, amp = peaks[order], amp[order]
    keep = np.ones(peaks.size, dtype=bool)
    close = np.flatnonzero(np.diff(peaks) < dead // 2)
    for k in close:
        drop = k if amp[k] < amp[k + 1] else k + 1
        keep[drop] = False
    return peaks[keep].astype(np.int64)


def _neurokit_ecg(x: np.ndarray, fs: float, name: str, where: str) -> np.ndarray:
    import neurokit2 as nk  # imported here: neurokit2 takes seconds to import

    rate = int(round(fs)) if float(fs).is_integer() else fs
    try:
        clean_method = name if name in _NK_CLEAN_METHODS else "neurokit"
        cleaned = nk.ecg_clean(x, sampling_rate=rate, method=clean_method)
        _, info = nk.ecg_peaks(cleaned, sampling_rate=rate, method=name)
    except ValueError as exc:
        raise RecordError(f"ecg_peaks: neurokit2 method {name!r} failed: {exc}", where) from None
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def ecg_peaks(
    signal: Any, fs: float | None = None, method: str = DEFAULT_ECG_METHOD, *, lead: str | int | None = None, **kwargs
) -> np.ndarray:
    """Sample indices of the R peaks of one ECG lead.

    The default method, ``"cardiolens"``, is a Pan-Tompkins-style detector with Hamilton-Tompkins
    thresholds, written for this package with scipy only (no published algorithm exactly, hence
    its own name):

    1. zero-phase 5-20 Hz Butterworth band-pass (order 2), derivative, squaring, 100 ms moving
       average (Pan & Tompkins 1985), so the energy peaks at the centre of each QRS complex
       whatever its polarity;
    2. candidate beats: local maxima of the energy at least 300 ms apart, the larger one winning,
       which removes P waves before and T waves right after each QRS. When the rhythm may be fast
       (median RR under 600 ms, which includes 200-240 bpm seen as every second beat) and a 200 ms
       refractory period finds clearly more beats, the refractory period becomes 60 % of their
       median RR, so rates up to about 280 bpm are followed;
    3. a candidate is a beat when its RMS slope exceeds ``noise + 0.3125 * (signal - noise)``, with
       signal and noise the medians of the last 8 beat and non-beat candidates (Hamilton & Tompkins
       1986); within 360 ms of a beat a candidate less than half as steep is a T wave (Pan &
       Tompkins 1985);
    4. search-back: when no beat came for 1.5 median RR intervals, the largest rejected candidate
       above half the threshold that is no T wave is a beat (Hamilton & Tompkins 1986); when three
       RR intervals pass without one while rejected candidates stand far above the record's typical
       slope (an artefact set the beat level, or the amplitude dropped), the beat level is halved
       once per RR until beats are found again;
    5. each beat moves to its R peak: the main deflection within +-100 ms of a lightly smoothed
       (8 ms) signal, measured from the window's median, in the record's dominant polarity unless
       the beat's opposite deflection is more than twice as large; inverted leads therefore give
       their (negative) R peaks at the same samples as the upright lead.

    One parameter set serves every record (chosen on the MIT-BIH records in ../shared/data; see
    docs/BENCHMARKS.md). Keyword arguments override it: ``band``, ``window``, ``refractory``,
    ``min_refractory``, ``threshold``, ``memory``, ``searchback``, ``searchback_threshold``,
    ``twave_window``, ``twave_slope``, ``search``.

    Args:
        signal: 1-D ECG (raw or cleaned, any units), or a Record.
        fs: sampling rate in Hz (taken from a Record).
        method: ``"cardiolens"``, ``"neurokit"`` or ``"neurokit:<neurokit2 method>"``.
        lead: the lead of a multi-lead Record (name or index).
        **kwargs: parameters of the ``"cardiolens"`` detector.

    Returns:
        int64 sample indices, increasing.

    Raises:
        RecordError: NaN/inf, empty or too-short signal, more than one lead, a rate too low for
            the QRS band, or an unknown method.
    """
    x, rate, where = _one_lead(signal, fs, lead, "ecg_peaks")
    if method == "cardiolens":
        return _ecg_peaks_cardiolens(x, rate, where, **kwargs)
    if method == "neurokit" or method.startswith("neurokit:"):
        if kwargs:
            raise RecordError(f"ecg_peaks: method {method!r} takes no extra parameters, got {sorted(kwargs)}", where)
        return _neurokit_ecg(x, rate, method.split(":", 1)[1] if ":" in method else "neurokit", where)
    raise RecordError(
        f"ecg_peaks: unknown method {method!r}; choose one of {', '.join(ECG_METHODS)} or 'neurokit:<name>'", where
    )


def _ppg_peaks_elgendi2013(
    x: np.ndarray, fs: float, where: str, *, peak_window: float = 0.111, beat_window: float = 0.667, beta: float = 0.02
) -> np.ndarray:
    """Elgendi et al. (2013), PLoS ONE 8(10):e76585: band-pass 0.5-8 Hz, clip negatives, square,
    then blocks where a 111 ms moving average exceeds a 667 ms one (plus an offset of ``beta``
    times the mean); each block at least 111 ms wide holds one systolic peak, its maximum."""
    filtered = filtfilt(design("bandpass", (0.5, min(8.0, 0.45 * fs)), fs, 2, where), x, fs, "ppg_peaks", where)
    if np.ptp(x) == 0:  # a flat lead has no pulses (filtering its offset leaves only rounding noise)
        return np.zeros(0, dtype=np.int64)
    squared = np.clip(filtered, 0, None) ** 2
    w1 = max(1, int(round(peak_window * fs)))
    ma_peak = uniform_filter1d(squared, w1)
    ma_beat = uniform_filter1d(squared, max(1, int(round(beat_window * fs))))
    blocks = ma_peak > ma_beat + beta * squared.mean()
    edges = np.flatnonzero(np.diff(np.r_[0, blocks.astype(np.int8), 0]))
    starts, stops = edges[0::2], edges[1::2]
    wide = stops - starts >= w1
    peaks = np.asarray(
        [a + int(np.argmax(filtered[a:b])) for a, b in zip(starts[wide], stops[wide], strict=True)], dtype=np.int64
    )
    # two pulses closer than 300 ms (200 bpm) are one: keep the taller
    keep: list[int] = []
    for p in peaks.tolist():
        if keep and p - keep[-1] < 0.3 * fs:
            if filtered[p] > filtered[keep[-1]]:
                keep[-1] = p
        else:
            keep.append(p)
    return np.asarray(keep, dtype=np.int64)


def ppg_peaks(
    signal: Any, fs: float | None = None, method: str = DEFAULT_PPG_METHOD, *, lead: str | int | None = None, **kwargs
) -> np.ndarray:
    """Sample indices of the systolic (pulse) peaks of a PPG.

    Args:
        signal: 1-D PPG, or a Record.
        fs: sampling rate in Hz (taken from a Record).
        method: ``"elgendi2013"`` (scipy only; keyword arguments ``peak_window``, ``beat_window``,
            ``beta`` override the published 111 ms / 667 ms / 0.02) or ``"neurokit"``.
        lead: the lead of a multi-lead Record.

    Returns:
        int64 sample indices, increasing. Elgendi's blocks hold one pulse each, so pulses closer than
        about 300 ms merge: above about 200 bpm the rate reads as half (the ECG detector follows up to
        about 280 bpm).

    Raises:
        RecordError: NaN/inf, empty or too-short signal, more than one lead, or an unknown method.
    """
    x, rate, where = _one_lead(signal, fs, lead, "ppg_peaks")
    if rate < 18.0:  # the 0.5-8 Hz pulse band needs 8 Hz below 0.45 * fs
        raise RecordError(f"ppg_peaks: fs={rate:g} Hz is too low for pulse detection (needs >= 18 Hz)", where)
    if method == "elgendi2013":
        return _ppg_peaks_elgendi2013(x, rate, where, **kwargs)
    if method == "neurokit":
        import neurokit2 as nk

        r = int(round(rate)) if float(rate).is_integer() else rate
        cleaned = nk.ppg_clean(x, sampling_rate=r)
        _, info = nk.ppg_peaks(cleaned, sampling_rate=r)
        return np.asarray(info["PPG_Peaks"], dtype=np.int64)
    raise RecordError(f"ppg_peaks: unknown method {method!r}; choose one of {', '.join(PPG_METHODS)}", where)


def rr_intervals(peaks: Any, fs: float) -> np.ndarray:
    """Intervals between successive peaks in seconds (one value fewer than peaks).

    Raises:
        RecordError: peaks that are not increasing, or a bad rate.
    """
    p = np.asarray(peaks, dtype=np.float64).ravel()
    if p.size > 1 and np.any(np.diff(p) <= 0):
        raise RecordError("peaks must be strictly increasing sample indices", describe(peaks))
    if not (np.isfinite(fs) and fs > 0):
        raise RecordError(f"sampling rate must be a positive number of Hz, got {fs!r}", describe(peaks))
    return np.diff(p) / float(fs)


def heart_rate(peaks: Any, fs: float) -> np.ndarray:
    """Instantaneous rate in beats per minute between successive peaks (one value fewer than peaks).

    Example:
        >>> heart_rate(np.array([0, 250, 500]), 250.0).tolist()
        [60.0, 60.0]
    """
    return 60.0 / rr_intervals(peaks, fs)


__all__ = [
    "DEFAULT_ECG_METHOD",
    "DEFAULT_PPG_METHOD",
    "ECG_METHODS",
    "PPG_METHODS",
    "ecg_peaks",
    "heart_rate",
    "ppg_peaks",
    "rr_intervals",
]
