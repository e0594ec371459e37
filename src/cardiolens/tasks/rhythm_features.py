"""Record-level rhythm features of a single-lead ECG, for a boosted-tree rhythm classifier (CinC 2017).

The CinC 2017 entries that scored best combined a network with features an electrophysiologist
would name: how irregular the RR intervals are (atrial fibrillation), whether a P wave precedes the
QRS, how alike the beats are, and how much of the signal is noise. This module computes such
features from one lead with the package's own cleaning and R-peak detector:

- rhythm (:data:`RR_FEATURES`): heart rate, spread and successive differences of the RR intervals
  relative to the record's median RR, their percentiles, pauses and early beats;
- morphology (:data:`MORPHOLOGY_FEATURES`): each beat against the record's median beat, the P-wave
  region (present and alike from beat to beat in sinus rhythm, absent or replaced by f-waves in AF),
  the T wave, QRS width;
- signal (:data:`SIGNAL_FEATURES`): the share of power per frequency band, peakedness, steep
  jumps, clipping: what sets noisy recordings apart;
- the median beat's shape (:data:`TEMPLATE_FEATURES`), read every 20 ms from 250 ms before to 430 ms
  after the R peak in units of its QRS height (bundle-branch blocks, ST and T changes);
- rhythm in 20-beat windows (:data:`WINDOW_FEATURES`): the most and least irregular stretch of the
  record (paroxysmal AF, or an irregular stretch that is noise);
- agreement of two R-peak detectors and the amplitude of 2-s segments (:data:`QUALITY_FEATURES`):
  where detectors disagree or the amplitude jumps, the beat features are not to be trusted.

:data:`FEATURE_NAMES` are the groups above, the set the shipped ``rhythm-ecg-trees`` reads.
:data:`EXTENDED_FEATURE_NAMES` add :data:`EVENT_FEATURES` (``extended=True``): single events that a
percentile over a 30-s record's 30-40 beats averages away (the one beat least like the median beat,
the earliest beat, the longest pause after a short interval, the share of wide beats) and the sample
entropy of the RR intervals (with COSEn, Lake & Moorman 2011, an AF detector for short records).

A record with too few beats for a feature gets NaN there; histogram gradient boosting takes NaN as
a value of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import signal as sps
from scipy import stats
from tqdm.auto import tqdm

from cardiolens.errors import CardiolensError
from cardiolens.signal import filters, peaks
from cardiolens.tasks.metrics import match_peaks

RR_FEATURES = (
    "beats",
    "heart_rate_bpm",
    "rr_cv",  # standard deviation / mean of RR
    "rmssd_rel",  # RMS of successive differences / median RR
    "median_abs_drr_rel",
    "frac_abs_drr_over_50ms",
    "frac_abs_drr_over_10pct",
    "frac_abs_drr_over_20pct",
    "sd1_over_sd2",  # Poincare plot: short-term over long-term spread
    "drr_pairs_alike",  # share of pairs of successive differences within 3 % of the median RR
    "rr_rel_p2",
    "rr_rel_p10",
    "rr_rel_p25",
    "rr_rel_p75",
    "rr_rel_p90",
    "rr_rel_p98",
    "frac_rr_over_1_5",  # pauses (or missed beats)
    "frac_rr_under_0_7",  # early beats (or false detections)
    "rr_skewness",
    "drr_turning_rate",  # how often the successive difference changes sign
    "abs_drr_rel_p90",
    "abs_drr_rel_mean_lowest_80pct",
    "frac_early_then_late",  # an RR under 0.85 x median followed by one over 1.1 x: ectopic beat + pause
    "rr_autocorr_lag1",  # negative in bigeminy (short, long, short, ...)
    "rr_autocorr_lag2",
    "heart_rate_min_5_beats",
    "heart_rate_max_5_beats",
    "heart_rate_range_5_beats",
)
MORPHOLOGY_FEATURES = (
    "beat_corr_median",  # correlation of each beat with the median beat
    "frac_beats_corr_under_0_8",
    "beat_corr_p10",
    "p_wave_corr_median",  # ... over the P-wave region, R - 0.25 s .. R - 0.08 s
    "frac_p_wave_corr_under_0_5",
    "template_p_wave_std",  # in units of the median beat's QRS height
    "p_wave_spread",  # beat-to-beat standard deviation over the P-wave region
    "template_t_wave_mean",  # R + 0.15 s .. R + 0.40 s
    "template_t_wave_ptp",
    "template_qrs_width_s",
    "beat_spread",
    "template_qrs_height",  # in signal units
    "template_max_abs_rel",
    "beat_qrs_peak_rel_mean",
    "template_st_level",  # R + 0.06 s .. R + 0.12 s
    "odd_beat_qrs_width_s",  # median QRS width of the beats that correlate under 0.8 with the median beat
    "odd_beat_qrs_height_rel",
)
SIGNAL_FEATURES = (
    "power_0_1hz",
    "power_1_5hz",
    "power_5_15hz",
    "power_15_40hz",
    "power_over_40hz",
    "kurtosis",
    "skewness",
    "frac_steep_samples",  # |slope| over 5x its median
    "duration_s",
    "frac_near_extreme",  # samples within 1 % of the largest deviation: clipping
)
TEMPLATE_TIMES_S = tuple(round(-0.25 + 0.02 * k, 2) for k in range(35))
TEMPLATE_FEATURES = tuple(f"median_beat_at_{round(1000 * t):+d}ms" for t in TEMPLATE_TIMES_S)
WINDOW_BEATS, WINDOW_STEP = 20, 5  # RR intervals per window, and between window starts
WINDOW_FEATURES = (
    "window_irregular_max",  # share of successive RR differences over 10 % of the window's median RR
    "window_irregular_min",
    "frac_windows_irregular",  # windows with more than half their differences over 10 %
    "window_rmssd_rel_max",
    "window_rmssd_rel_min",
    "window_heart_rate_cv",
)
QUALITY_FEATURES = (
    "detectors_agree_of_ours",  # R peaks also found by neurokit2's detector (within 100 ms) / ours
    "detectors_agree_of_theirs",  # ... / neurokit2's
    "detectors_count_ratio",
    "frac_segments_over_3x_amplitude",  # 2-s segments whose range exceeds 3x the median segment's
    "frac_segments_under_0_3x_amplitude",
    "segment_amplitude_cv",
)
EVENT_FEATURES = (
    "beat_corr_min",  # the beat least like the median beat (one ectopic beat in a record)
    "frac_beats_wide",  # beats whose QRS is over 1.3x as wide as the median beat's
    "prematurity_min",  # the smallest RR over the mean of the 3 RR before it
    "compensation_max",  # the largest ratio of an RR to the RR before it (ectopic beat, then pause)
    "rr_sample_entropy",  # SampEn of the RR intervals, m = 2, r = 0.2 x their standard deviation
    "rr_cosen",  # SampEn with m = 1, r = 30 ms, + ln(2 r / mean RR) (coefficient of sample entropy)
)
COSEN_TOLERANCE_S = 0.03
FEATURE_NAMES = (
    *RR_FEATURES,
    *MORPHOLOGY_FEATURES,
    *SIGNAL_FEATURES,
    *TEMPLATE_FEATURES,
    *WINDOW_FEATURES,
    *QUALITY_FEATURES,
)
EXTENDED_FEATURE_NAMES = (*FEATURE_NAMES, *EVENT_FEATURES)
MIN_SECONDS = 2.0


def _autocorrelation(rr: np.ndarray, lag: int) -> float:
    a, b = rr[:-lag], rr[lag:]
    return float(np.corrcoef(a, b)[0, 1]) if np.std(a) > 0 and np.std(b) > 0 else 0.0


def _qrs_width(beat: np.ndarray, centre: int, half: int, fs: float) -> float:
    """Seconds between the first and last sample within ``half`` of ``centre`` whose |slope| exceeds
    a quarter of the largest there."""
    slope = np.abs(np.diff(beat))[centre - half : centre + half]
    steep = np.flatnonzero(slope > 0.25 * slope.max())
    return (steep[-1] - steep[0]) / fs if len(steep) else np.nan


def rr_features(rr: Any) -> list[float]:
    """:data:`RR_FEATURES` of a record's RR intervals in seconds (NaN when fewer than 5)."""
    rr = np.asarray(rr, dtype=np.float64)
    if len(rr) < 5:
        return [np.nan] * len(RR_FEATURES)
    median = np.median(rr)
    d = np.diff(rr)
    rel = rr / median
    sd1 = np.std(d) / np.sqrt(2)
    sd2 = np.sqrt(max(2 * np.var(rr) - sd1**2, 1e-12))
    abs_d = np.abs(d) / median
    alike = np.abs(d[:, None] - d[None, :]) < 0.03 * median
    local = np.convolve(rr, np.ones(5) / 5, mode="valid")  # mean RR over 5 beats
    return [
        len(rr),
        60 / np.mean(rr),
        np.std(rr) / np.mean(rr),
        np.sqrt(np.mean(d**2)) / median,
        np.median(abs_d),
        np.mean(np.abs(d) > 0.05),
        np.mean(abs_d > 0.1),
        np.mean(abs_d > 0.2),
        sd1 / sd2,
        alike.mean(),
        *np.percentile(rel, [2, 10, 25, 75, 90, 98]),
        np.mean(rel > 1.5),
        np.mean(rel < 0.7),
        stats.skew(rel) if np.ptp(rel) > 1e-9 else 0.0,  # a constant rhythm: no skew (scipy would warn)
        np.mean(np.sign(d[1:]) != np.sign(d[:-1])) if len(d) > 2 else np.nan,
        np.percentile(abs_d, 90),
        np.sort(abs_d)[: int(0.8 * len(abs_d))].mean() if len(abs_d) > 5 else np.nan,
        np.mean((rel[:-1] < 0.85) & (rel[1:] > 1.1)),
        _autocorrelation(rr, 1),
        _autocorrelation(rr, 2),
        60 / local.max(),
        60 / local.min(),
        60 / local.min() - 60 / local.max(),
    ]


def _samples(seconds: float, fs: float) -> int:
    return int(round(seconds * fs))


def _beat_windows(x: Any, beats: Any, fs: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The whole beats of a cleaned lead, R - 0.25 s .. R + 0.45 s, each less its median (beats, samples),
    and their sample-wise median, the median beat; None when fewer than 3 beats are whole."""
    x = np.asarray(x, dtype=np.float64)
    pre, post = _samples(0.25, fs), _samples(0.45, fs)
    r = np.asarray(beats, dtype=np.int64)
    r = r[(r >= pre) & (r < len(x) - post)]
    if len(r) < 3:
        return None
    windows = np.stack([x[i - pre : i + post] for i in r])
    windows = windows - np.median(windows, axis=1, keepdims=True)
    return windows, np.median(windows, axis=0)


def morphology_features(x: Any, beats: Any, fs: float) -> list[float]:
    """:data:`MORPHOLOGY_FEATURES` of a cleaned lead ``x`` and its R peaks (NaN when fewer than 3 whole beats)."""
    return _morphology(_beat_windows(x, beats, fs), fs)


def _correlations(windows: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Each window's correlation with the template (NaN for a flat window)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array([np.corrcoef(w, template)[0, 1] for w in windows])


def _morphology(beat_windows: tuple[np.ndarray, np.ndarray] | None, fs: float) -> list[float]:
    if beat_windows is None:
        return [np.nan] * len(MORPHOLOGY_FEATURES)
    windows, template = beat_windows

    def samples(seconds: float) -> int:
        return _samples(seconds, fs)

    pre = samples(0.25)
    qrs = slice(pre - samples(0.1), pre + samples(0.1))
    height = np.ptp(template[qrs]) + 1e-6
    p_wave = slice(0, pre - samples(0.08))
    t_wave = slice(pre + samples(0.15), pre + samples(0.40))
    corr = _correlations(windows, template)
    p_corr = _correlations(windows[:, p_wave], template[p_wave])
    odd = windows[corr < 0.8]
    return [
        np.median(corr),
        np.mean(corr < 0.8),
        np.percentile(corr, 10),
        np.nanmedian(p_corr) if np.isfinite(p_corr).any() else np.nan,
        np.nanmean(p_corr < 0.5),
        np.std(template[p_wave]) / height,
        np.std(windows[:, p_wave], axis=0).mean() / height,
        template[t_wave].mean() / height,
        np.ptp(template[t_wave]) / height,
        _qrs_width(template, pre, samples(0.15), fs),
        np.std(windows, axis=0).mean() / height,
        height,
        np.max(np.abs(template)) / height,
        np.mean(np.abs(windows[:, qrs]).max(axis=1) / height),
        template[pre + samples(0.06) : pre + samples(0.12)].mean() / height,
        np.nanmedian([_qrs_width(b, pre, samples(0.15), fs) for b in odd]) if len(odd) else np.nan,
        np.median(np.ptp(odd[:, qrs], axis=1)) / height if len(odd) else np.nan,
    ]


def signal_features(raw: Any, cleaned: Any, fs: float) -> list[float]:
    """:data:`SIGNAL_FEATURES` of a lead as recorded (``raw``) and after cleaning."""
    raw = np.asarray(raw, dtype=np.float64)
    x = np.asarray(cleaned, dtype=np.float64)
    # Welch segments of about 3.4 s (1,024 samples at 300 Hz)
    f, power = sps.welch(raw, fs, nperseg=min(len(raw), int(round(fs * 1024 / 300))))
    total = power.sum() + 1e-12

    def band(low: float, high: float) -> float:
        return power[(f >= low) & (f < high)].sum() / total

    slope = np.abs(np.diff(x))
    deviation = np.abs(raw - np.median(raw))
    return [
        band(0, 1),
        band(1, 5),
        band(5, 15),
        band(15, 40),
        band(40, fs),
        stats.kurtosis(x),
        stats.skew(x),
        np.mean(slope > 5 * np.median(slope)),
        len(raw) / fs,
        np.mean(deviation > 0.99 * deviation.max()),
    ]


def template_features(x: Any, beats: Any, fs: float) -> list[float]:
    """:data:`TEMPLATE_FEATURES`: the median beat at :data:`TEMPLATE_TIMES_S` from the R peak, over
    its QRS height (range within 100 ms of the R peak); NaN when fewer than 3 beats are whole."""
    return _template(_beat_windows(x, beats, fs), fs)


def _template(beat_windows: tuple[np.ndarray, np.ndarray] | None, fs: float) -> list[float]:
    if beat_windows is None:
        return [np.nan] * len(TEMPLATE_FEATURES)
    template = beat_windows[1]
    pre, qrs = _samples(0.25, fs), _samples(0.1, fs)
    height = np.ptp(template[pre - qrs : pre + qrs]) + 1e-6
    at = (np.asarray(TEMPLATE_TIMES_S) + 0.25) * fs  # samples into the window
    return list(np.interp(at, np.arange(len(template)), template) / height)


def window_features(rr: Any) -> list[float]:
    """:data:`WINDOW_FEATURES` of RR intervals in seconds, over windows of :data:`WINDOW_BEATS`
    intervals every :data:`WINDOW_STEP` (NaN when the record has fewer than one window)."""
    rr = np.asarray(rr, dtype=np.float64)
    if len(rr) < WINDOW_BEATS:
        return [np.nan] * len(WINDOW_FEATURES)
    windows = np.lib.stride_tricks.sliding_window_view(rr, WINDOW_BEATS)[::WINDOW_STEP]  # (windows, beats)
    median = np.median(windows, axis=1)
    d = np.diff(windows, axis=1)
    irregular = np.mean(np.abs(d) > 0.1 * median[:, None], axis=1)
    rmssd = np.sqrt(np.mean(d**2, axis=1)) / median
    rate = 60 / median
    return [
        irregular.max(),
        irregular.min(),
        np.mean(irregular > 0.5),
        rmssd.max(),
        rmssd.min(),
        rate.std() / rate.mean(),
    ]


def quality_features(cleaned: Any, beats: Any, fs: float) -> list[float]:
    """:data:`QUALITY_FEATURES` of a cleaned lead and the R peaks found in it by the default detector."""
    x = np.asarray(cleaned, dtype=np.float64)
    ours = np.asarray(beats, dtype=np.int64)
    try:
        theirs = np.sort(np.asarray(peaks.ecg_peaks(x, fs, method="neurokit"), dtype=np.int64))
    except CardiolensError:  # neurokit2 finds nothing in some noise-only records
        theirs = np.zeros(0, dtype=np.int64)
    both = match_peaks(ours, theirs, _samples(0.1, fs))[0]
    segment = _samples(2.0, fs)
    n = len(x) // segment
    ranges = np.ptp(x[: n * segment].reshape(n, segment), axis=1) if n else np.array([np.nan])
    typical = np.median(ranges) + 1e-9
    return [
        both / max(len(ours), 1),
        both / max(len(theirs), 1),
        len(theirs) / max(len(ours), 1),
        np.mean(ranges > 3 * typical),
        np.mean(ranges < 0.3 * typical),
        np.std(ranges) / typical,
    ]


def _sample_entropy(x: np.ndarray, dimension: int, tolerance: float) -> float:
    """neurokit2's sample entropy. Where no template of ``dimension + 1`` points matches (infinite
    entropy): the log of the number of template pairs, at least what a single match would give, so a
    very irregular series stays finite and above the regular ones."""
    import neurokit2 as nk

    value = nk.entropy_sample(x, dimension=dimension, tolerance=tolerance)[0]
    if np.isfinite(value):
        return float(value)
    pairs = (len(x) - dimension) * (len(x) - dimension - 1) / 2
    return float(np.log(max(pairs, 1.0)))


def event_features(rr: Any, beat_windows: tuple[np.ndarray, np.ndarray] | None, fs: float) -> list[float]:
    """:data:`EVENT_FEATURES` of RR intervals in seconds and :func:`_beat_windows` (NaN where too few beats)."""
    rr = np.asarray(rr, dtype=np.float64)
    if beat_windows is None:
        corr_min = wide = np.nan
    else:
        windows, template = beat_windows
        pre, half = _samples(0.25, fs), _samples(0.15, fs)
        corr = _correlations(windows, template)
        widths = np.array([_qrs_width(w, pre, half, fs) for w in windows])
        corr_min = np.nanmin(corr) if np.isfinite(corr).any() else np.nan
        wide = np.nanmean(widths > 1.3 * _qrs_width(template, pre, half, fs)) if np.isfinite(widths).any() else np.nan
    if len(rr) < 5:
        return [corr_min, wide] + [np.nan] * (len(EVENT_FEATURES) - 2)
    before = np.convolve(rr, np.ones(3) / 3, mode="valid")[:-1]  # mean of rr[i-3:i] for i >= 3
    rhythm = [np.min(rr[3:] / before), np.max(rr[1:] / rr[:-1])]
    if len(rr) < 10 or np.std(rr) == 0:
        return [corr_min, wide, *rhythm, np.nan, np.nan]
    return [
        corr_min,
        wide,
        *rhythm,
        _sample_entropy(rr, 2, 0.2 * np.std(rr)),
        _sample_entropy(rr, 1, COSEN_TOLERANCE_S) + np.log(2 * COSEN_TOLERANCE_S / np.mean(rr)),
    ]


def record_features(signal: Any, fs: float, extended: bool = False) -> np.ndarray:
    """The :data:`FEATURE_NAMES` of one single-lead ECG (samples,) or (1, samples), in signal units;
    with ``extended``, the :data:`EXTENDED_FEATURE_NAMES`.

    Cleans it (:func:`cardiolens.signal.filters.clean_ecg`) and finds its R peaks
    (:func:`cardiolens.signal.peaks.ecg_peaks`, the package default detector).

    Raises:
        CardiolensError: more than one lead, non-finite samples, or under :data:`MIN_SECONDS` of signal.
    """
    raw = np.asarray(signal, dtype=np.float64)
    if raw.ndim == 2 and raw.shape[0] == 1:
        raw = raw[0]
    if raw.ndim != 1:
        raise CardiolensError(f"rhythm features need one lead (samples,), got shape {np.shape(signal)}")
    if len(raw) < MIN_SECONDS * fs:
        raise CardiolensError(f"rhythm features need at least {MIN_SECONDS:g} s of signal, got {len(raw) / fs:.2f} s")
    if not np.isfinite(raw).all():
        raise CardiolensError("rhythm features: the signal has NaN or infinite samples")
    cleaned = filters.clean_ecg(raw, fs)
    r = np.asarray(peaks.ecg_peaks(cleaned, fs), dtype=np.int64)
    rr = np.diff(r) / fs
    beat_windows = _beat_windows(cleaned, r, fs)  # read once for the morphology and the median-beat shape
    rows = (
        rr_features(rr)
        + _morphology(beat_windows, fs)
        + signal_features(raw, cleaned, fs)
        + _template(beat_windows, fs)
        + window_features(rr)
        + quality_features(cleaned, r, fs)
        + (event_features(rr, beat_windows, fs) if extended else [])
    )
    return np.asarray(rows, dtype=np.float64)


def rhythm_feature_matrix(
    signals: Sequence[Any], fs: float, progress: bool = True, extended: bool = False
) -> np.ndarray:
    """(records, len(FEATURE_NAMES)) features of single-lead records (e.g. ``cinc2017-rhythm`` items at 300 Hz);
    with ``extended``, (records, len(EXTENDED_FEATURE_NAMES))."""
    rows = [
        record_features(s, fs, extended)
        for s in tqdm(signals, desc="rhythm features", unit="rec", disable=not progress, mininterval=2)
    ]
    names = EXTENDED_FEATURE_NAMES if extended else FEATURE_NAMES
    return np.stack(rows) if rows else np.empty((0, len(names)))


__all__ = [
    "EVENT_FEATURES",
    "EXTENDED_FEATURE_NAMES",
    "FEATURE_NAMES",
    "MORPHOLOGY_FEATURES",
    "QUALITY_FEATURES",
    "RR_FEATURES",
    "SIGNAL_FEATURES",
    "TEMPLATE_FEATURES",
    "WINDOW_FEATURES",
    "event_features",
    "morphology_features",
    "quality_features",
    "record_features",
    "rhythm_feature_matrix",
    "rr_features",
    "signal_features",
    "template_features",
    "window_features",
]
