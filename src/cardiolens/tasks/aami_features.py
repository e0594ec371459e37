"""Beat features for AAMI classification that transfer between patients (for :mod:`cardiolens.tasks.trees`).

Grouped cross-validation on MIT-BIH trains on 17-18 patients and tests on others. A network reading
raw windows learns the training patients' beat shapes; what transfers is how a beat differs from the
*same patient's* usual beat and rhythm. So every feature here is relative to the record itself:

- morphology (:data:`MORPHOLOGY_FEATURES`): the beat against the record's median beat (the
  ``template=True`` channel of ``mitbih-aami``), in units of that median beat's QRS height;
- rhythm: the five RR features of :func:`~cardiolens.tasks.tasks_aami.rr_features` and the local RR
  irregularity (:data:`IRREGULARITY_FEATURES`), which tells a premature beat in a regular rhythm (S)
  from an irregular rhythm (atrial fibrillation, whose beats AAMI calls N);
- the RR and morphology features once more, each standardised within its record (median and
  interquartile range over the record's beats), so "unusual for this patient" is a number.

Everything is computed from the signal and the beat positions of the record, never from labels, so
a test patient's features are available before any label is. It does use the whole record (its median
beat and feature distribution): this is offline (Holter) analysis, not beat-by-beat real time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cardiolens.errors import CardiolensError
from cardiolens.tasks.suite import TaskData
from cardiolens.tasks.tasks_aami import RR_FEATURES, WINDOW_SECONDS, beat_windows, median_beat, rr_features

MORPHOLOGY_FEATURES = (
    "corr_qrs",  # correlation with the median beat over R +- 0.1 s
    "corr_beat",  # ... over R - 0.25 s .. R + 0.45 s
    "corr_p",  # ... over the P-wave region, R - 0.25 s .. R - 0.08 s
    "qrs_height",  # peak-to-peak over R +- 0.1 s
    "slope_ratio",  # summed |slope| over R +- 0.1 s, beat / median beat
    "qrs_time_above_30pct",  # seconds within R +- 0.1 s where |beat| > 0.3
    "rms_difference",  # RMS of beat - median beat, R - 0.25 s .. R + 0.45 s
    "qrs_max",
    "qrs_min",
    "qrs_max_time",  # seconds from the annotation to the QRS maximum
    "qrs_min_time",
)
IRREGULARITY_HALF_WIDTHS = (4, 8, 16)
IRREGULARITY_FEATURES = tuple(f"rr_irregularity_{h}" for h in IRREGULARITY_HALF_WIDTHS)


# How common each beat's shape is in its own record, and how it differs from its neighbours' beats
# (:func:`shape_context_features`): a ventricular beat is rare and unlike the beats around it even
# where the record's median beat drifts or is itself unusual (records whose QRS changes through the
# recording, bigeminy that pulls the median beat towards the ectopic shape)
PREVALENCE_LEVELS = (0.8, 0.9, 0.95)
LOCAL_TEMPLATE_HALF_WIDTH = 15  # the local median beat: the beat and 15 beats either side
LOCAL_PREVALENCE_HALF_WIDTH = 50
SHAPE_CONTEXT_FEATURES = (
    *(f"qrs_prevalence_{round(100 * level)}" for level in PREVALENCE_LEVELS),  # share of the record's beats
    "qrs_prevalence_local_90",  # ... of the 100 neighbouring beats, QRS correlation >= 0.9
    "corr_qrs_local",  # correlation with the local median beat over R +- 0.1 s
    "rms_difference_local",  # RMS of beat - local median beat, R - 0.25 s .. R + 0.45 s
)

# Polarity-free QRS features (:func:`envelope_features`): the beat's |slope| envelope against the
# median beat's, which says how wide and when the QRS is but not which way it points, so a normal
# beat whose QRS flips polarity (a record whose axis shifts) differs from a wide ventricular beat
ENVELOPE_FEATURES = (
    "slope_envelope_corr_qrs",  # correlation of the smoothed |slope|, beat vs median beat, R +- 0.1 s
    "slope_width_ratio",  # span of the central 80 % of |slope| over R +- 0.15 s, beat / median beat
)
# MORPHOLOGY_FEATURES that change sign or order when a QRS flips polarity
POLARITY_SENSITIVE = ("corr_qrs", "corr_beat", "rms_difference", "qrs_max", "qrs_min", "qrs_max_time", "qrs_min_time")


def feature_names(leads: int = 1) -> list[str]:
    """Column names of :func:`aami_feature_matrix` for items of ``leads`` leads."""
    morphology = [n if leads == 1 else f"{n}_lead{i}" for i in range(leads) for n in MORPHOLOGY_FEATURES]
    return [*RR_FEATURES, *morphology, *IRREGULARITY_FEATURES, *(f"{n}_in_record" for n in (*RR_FEATURES, *morphology))]


FEATURE_NAMES = tuple(feature_names(1))


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1) + 1e-12)


def morphology_features(beats: Any, templates: Any, fs: float) -> np.ndarray:
    """:data:`MORPHOLOGY_FEATURES` of beat windows against their record's median beat.

    Args:
        beats: (N, window) one lead's beat windows, the annotation at sample ``window // 2``.
        templates: (N, window) the median beat of each beat's record (same lead, same alignment).
        fs: sampling rate; windows must reach 0.25 s before and 0.45 s after the annotation.

    Returns:
        (N, 11) float64. Amplitudes are in units of the median beat's QRS height (peak-to-peak over
        R +- 0.1 s) after removing each window's median (its baseline), so a record's gain does not
        matter.
    """
    x = np.asarray(beats, dtype=np.float64)
    m = np.asarray(templates, dtype=np.float64)
    if x.ndim != 2 or x.shape != m.shape:
        raise CardiolensError(f"morphology_features: beats {x.shape} and templates {m.shape} must both be (N, window)")
    c = x.shape[1] // 2

    def samples(seconds: float) -> int:
        return int(round(seconds * fs))

    if c - samples(0.25) < 0 or c + samples(0.45) > x.shape[1]:
        raise CardiolensError(
            f"morphology_features: windows of {x.shape[1]} samples at {fs:g} Hz do not reach 0.25 s before "
            "and 0.45 s after the beat"
        )
    qrs = slice(c - samples(0.1), c + samples(0.1) + 1)
    beat = slice(c - samples(0.25), c + samples(0.45))
    p_wave = slice(c - samples(0.25), c - samples(0.08))
    height = np.ptp(m[:, qrs], axis=1, keepdims=True) + 1e-6
    xs = (x - np.median(x, axis=1, keepdims=True)) / height
    ms = (m - np.median(m, axis=1, keepdims=True)) / height
    slope_x = np.abs(np.diff(xs, axis=1))[:, qrs].sum(axis=1)
    slope_m = np.abs(np.diff(ms, axis=1))[:, qrs].sum(axis=1)
    start = qrs.start
    return np.column_stack(
        [
            _correlation(xs[:, qrs], ms[:, qrs]),
            _correlation(xs[:, beat], ms[:, beat]),
            _correlation(xs[:, p_wave], ms[:, p_wave]),
            np.ptp(xs[:, qrs], axis=1),
            slope_x / (slope_m + 1e-6),
            (np.abs(xs[:, qrs]) > 0.3).sum(axis=1) / fs,
            np.sqrt(((xs - ms)[:, beat] ** 2).mean(axis=1)),
            xs[:, qrs].max(axis=1),
            xs[:, qrs].min(axis=1),
            (np.argmax(xs[:, qrs], axis=1) + start - c) / fs,
            (np.argmin(xs[:, qrs], axis=1) + start - c) / fs,
        ]
    )


def shape_context_features(windows: Any, fs: float) -> np.ndarray:
    """:data:`SHAPE_CONTEXT_FEATURES` of one record's beats, from its beat windows alone (no labels).

    Args:
        windows: (N, window) one lead's beat windows in the record's order, the beat at ``window // 2``;
            windows must reach 0.25 s before and 0.45 s after it.
        fs: sampling rate.

    Returns:
        (N, 6) float64: the share of the record's beats (itself included) whose QRS (R +- 0.1 s)
        correlates with this beat's at :data:`PREVALENCE_LEVELS` or more; the same share among the
        beat's 100 neighbours at 0.9; its QRS correlation with, and RMS difference from, the median
        of itself and its 30 neighbours (in units of that local median beat's QRS height).
    """
    x = np.asarray(windows, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise CardiolensError(f"shape_context_features: need (beats, window) windows, got {x.shape}")
    n, c = len(x), x.shape[1] // 2
    qrs = slice(c - int(round(0.1 * fs)), c + int(round(0.1 * fs)) + 1)
    beat = slice(c - int(round(0.25 * fs)), c + int(round(0.45 * fs)))
    if beat.start < 0 or beat.stop > x.shape[1]:
        raise CardiolensError(
            f"shape_context_features: windows of {x.shape[1]} samples at {fs:g} Hz do not reach 0.25 s before "
            "and 0.45 s after the beat"
        )
    q = x[:, qrs] - x[:, qrs].mean(axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True) + 1e-12
    similar = q @ q.T  # (N, N) QRS correlations
    prevalence = [(similar >= level).mean(axis=1) for level in PREVALENCE_LEVELS]
    offsets = np.arange(-LOCAL_PREVALENCE_HALF_WIDTH, LOCAL_PREVALENCE_HALF_WIDTH + 1)
    neighbours = np.clip(np.arange(n)[:, None] + offsets[offsets != 0][None, :], 0, n - 1)
    local_prevalence = (np.take_along_axis(similar, neighbours, axis=1) >= 0.9).mean(axis=1)
    # the local median beat: clipping at the record's ends repeats its first or last beats
    around = np.clip(
        np.arange(n)[:, None] + np.arange(-LOCAL_TEMPLATE_HALF_WIDTH, LOCAL_TEMPLATE_HALF_WIDTH + 1), 0, n - 1
    )
    segment = x[:, beat] - np.median(x[:, beat], axis=1, keepdims=True)
    local = np.stack([np.median(segment[i], axis=0) for i in around])  # (N, beat samples)
    in_qrs = slice(qrs.start - beat.start, qrs.stop - beat.start)
    height = np.ptp(local[:, in_qrs], axis=1) + 1e-6
    return np.column_stack(
        [
            *prevalence,
            local_prevalence,
            _correlation(segment[:, in_qrs], local[:, in_qrs]),
            np.sqrt(((segment - local) ** 2).mean(axis=1)) / height,
        ]
    )


def shape_context_matrix(data: TaskData) -> np.ndarray:
    """:data:`SHAPE_CONTEXT_FEATURES` of ``mitbih-aami`` items (first lead), then the same standardised
    within each record (:func:`standardise_by_record`): (N, 12), columns :func:`shape_context_names`.

    Computed over each record's kept beats (items), in the order of their positions."""
    windows = np.stack([s[0] for s in data.signals])
    records = np.array([i.split(":")[0] for i in data.item_ids.tolist()])
    positions = np.array([int(i.split(":")[1]) for i in data.item_ids.tolist()])
    out = np.empty((len(data), len(SHAPE_CONTEXT_FEATURES)))
    for r in dict.fromkeys(records.tolist()):
        k = np.flatnonzero(records == r)
        k = k[np.argsort(positions[k], kind="stable")]
        out[k] = shape_context_features(windows[k], data.fs)
    return np.column_stack([out, standardise_by_record(out, records)])


def _central_span(energy: np.ndarray, share: float = 0.8) -> np.ndarray:
    """Samples between the points where each row's cumulative energy passes (1 - share) / 2 and (1 + share) / 2."""
    cumulative = np.cumsum(energy, axis=1)
    total = cumulative[:, -1:] + 1e-12
    start = np.argmax(cumulative >= total * (1 - share) / 2, axis=1)
    end = np.argmax(cumulative >= total * (1 + share) / 2, axis=1)
    return (end - start + 1).astype(np.float64)


def envelope_features(beats: Any, templates: Any, fs: float) -> np.ndarray:
    """:data:`ENVELOPE_FEATURES` of beat windows against their record's median beat (as :func:`morphology_features`).

    Returns:
        (N, 2) float64: the correlation of the beat's and the median beat's |slope| (smoothed over
        20 ms) over R +- 0.1 s, and the span holding the central 80 % of the beat's |slope| over
        R +- 0.15 s over the same span of the median beat. Both are unchanged when a beat is negated.
    """
    x = np.asarray(beats, dtype=np.float64)
    m = np.asarray(templates, dtype=np.float64)
    if x.ndim != 2 or x.shape != m.shape:
        raise CardiolensError(f"envelope_features: beats {x.shape} and templates {m.shape} must both be (N, window)")
    c = x.shape[1] // 2
    half = int(round(0.15 * fs))
    if c - half < 1 or c + half > x.shape[1]:
        raise CardiolensError(
            f"envelope_features: windows of {x.shape[1]} samples at {fs:g} Hz do not reach R +- 0.15 s"
        )
    kernel = np.ones(max(int(round(0.02 * fs)), 1))
    kernel /= kernel.size

    def envelope(w: np.ndarray) -> np.ndarray:
        slope = np.abs(np.diff(w, axis=1, prepend=w[:, :1]))
        return np.apply_along_axis(np.convolve, 1, slope, kernel, mode="same")

    ex, em = envelope(x), envelope(m)
    qrs = slice(c - int(round(0.1 * fs)), c + int(round(0.1 * fs)) + 1)
    wide = slice(c - half, c + half + 1)
    return np.column_stack(
        [_correlation(ex[:, qrs], em[:, qrs]), _central_span(ex[:, wide]) / _central_span(em[:, wide])]
    )


def envelope_matrix(data: TaskData) -> np.ndarray:
    """:data:`ENVELOPE_FEATURES` of ``mitbih-aami`` items loaded with ``template=True`` (first lead), then
    the same standardised within each record: (N, 4), columns :func:`envelope_names`."""
    windows = np.stack(data.signals)
    n_leads = len(data.leads) // 2
    records = np.array([i.split(":")[0] for i in data.item_ids.tolist()])
    out = envelope_features(windows[:, 0], windows[:, n_leads], data.fs)
    return np.column_stack([out, standardise_by_record(out, records)])


def envelope_names() -> list[str]:
    """Column names of :func:`envelope_matrix`."""
    return [*ENVELOPE_FEATURES, *(f"{n}_in_record" for n in ENVELOPE_FEATURES)]


def shape_context_names() -> list[str]:
    """Column names of :func:`shape_context_matrix`."""
    return [*SHAPE_CONTEXT_FEATURES, *(f"{n}_in_record" for n in SHAPE_CONTEXT_FEATURES)]


def rr_irregularity(samples: Any, half_widths: Sequence[int] = IRREGULARITY_HALF_WIDTHS) -> np.ndarray:
    """Local RR irregularity of one record's beats: the mean |change of log RR| over ``2h + 1`` beats.

    Args:
        samples: the record's beat positions (increasing), at least 2.
        half_widths: ``h`` of each moving mean.

    Returns:
        (beats, len(half_widths)); near 0 in a regular rhythm whatever its rate, about 0.2 or more
        in atrial fibrillation. The first beat's pre-RR is taken as the record's median RR.
    """
    t = np.asarray(samples, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2 or np.any(np.diff(t) <= 0):
        raise CardiolensError("rr_irregularity: need at least 2 strictly increasing beat positions")
    rr = np.diff(t, prepend=t[0] - np.median(np.diff(t)))
    change = np.abs(np.diff(np.log(rr), prepend=np.log(rr[0])))
    # a centred moving sum with zeros past the ends, over 2h + 1 beats; padding first keeps one value
    # per beat when a record has fewer beats than the window (np.convolve's "same" would not)
    return np.column_stack(
        [np.convolve(np.pad(change, h), np.ones(2 * h + 1) / (2 * h + 1), mode="valid") for h in half_widths]
    )


def standardise_by_record(features: Any, records: Any) -> np.ndarray:
    """Each feature minus its record's median, divided by its record's interquartile range (+ 1e-3)."""
    f = np.asarray(features, dtype=np.float64)
    rec = np.asarray(records)
    out = np.empty_like(f)
    for r in np.unique(rec):
        k = rec == r
        low, mid, high = np.percentile(f[k], [25, 50, 75], axis=0)
        out[k] = (f[k] - mid) / (high - low + 1e-3)
    return out


def aami_feature_matrix(data: TaskData) -> np.ndarray:
    """The features of ``mitbih-aami`` items loaded with ``template=True``: (N, len(FEATURE_NAMES)) for
    one lead; with more leads the morphology features (and their standardised copies) come once per
    lead, in lead order (:func:`feature_names`).

    Beat positions and records come from the item ids (``record:sample``); the irregularity is
    computed over the record's kept beats (class Q and the first and last beat are not items).
    """
    n_leads = len(data.leads) // 2
    if len(data.leads) % 2 or not all(name.endswith(" median") for name in data.leads[n_leads:]):
        raise CardiolensError(
            "aami_feature_matrix needs mitbih-aami items loaded with template=True "
            f"(leads [lead, ..., 'lead median', ...]), got leads {data.leads}"
        )
    if data.extra is None or data.extra.shape[1] != len(RR_FEATURES):
        raise CardiolensError("aami_feature_matrix needs the items' RR features (data.extra)")
    windows = np.stack(data.signals)  # (N, 2 * leads, window): the beats, then their median beats
    morphology = np.column_stack(
        [morphology_features(windows[:, i], windows[:, n_leads + i], data.fs) for i in range(n_leads)]
    )
    records = np.array([i.split(":")[0] for i in data.item_ids.tolist()])
    positions = np.array([int(i.split(":")[1]) for i in data.item_ids.tolist()])
    irregular = np.empty((len(data), len(IRREGULARITY_HALF_WIDTHS)))
    for r in dict.fromkeys(records.tolist()):
        k = np.flatnonzero(records == r)
        irregular[k] = rr_irregularity(positions[k])
    return _feature_columns(np.asarray(data.extra, dtype=np.float64), morphology, irregular, records)


def _feature_columns(rr: np.ndarray, morphology: np.ndarray, irregular: np.ndarray, records: Any) -> np.ndarray:
    """The columns of :data:`FEATURE_NAMES` in order: raw features, then RR and morphology standardised per record."""
    return np.column_stack(
        [
            rr,
            morphology,
            irregular,
            standardise_by_record(rr, records),
            standardise_by_record(morphology, records),
        ]
    )


def record_beat_features(signal: Any, fs: float, beats: Any, beats_fs: float) -> tuple[np.ndarray, np.ndarray]:
    """:data:`FEATURE_NAMES` of the beats of one single-lead recording, as the AAMI trees read them.

    The same features :func:`aami_feature_matrix` gives the ``mitbih-aami`` items, computed from a
    signal and beat positions instead of a MIT-BIH folder: every beat enters the RR intervals and the
    median beat, and every beat with both RR intervals is classified (not the first and the last).

    Args:
        signal: (samples,) or (1, samples), one ECG lead at ``fs`` (MIT-BIH's trees read 250 Hz).
        fs: its sampling rate.
        beats: R-peak positions as sample indices at ``beats_fs``, increasing, at least 3 (the
            record's own rate keeps the RR intervals as precise as the detector made them).
        beats_fs: the rate of ``beats``.

    Returns:
        ``(features, kept)``: (beats kept, len(FEATURE_NAMES)) float64 and the indices into
        ``beats`` of the beats they describe.

    Raises:
        CardiolensError: a signal that is not one lead, fewer than 3 beats, or positions that do not increase.
    """
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise CardiolensError(f"record_beat_features needs one lead, (samples,) or (1, samples); got {x.shape}")
    samples = np.asarray(beats, dtype=np.int64)
    rr = rr_features(samples, beats_fs).astype(np.float64)
    kept = np.flatnonzero(np.isfinite(rr).all(axis=1))
    centres = np.round(samples * fs / beats_fs).astype(np.int64)  # as the mitbih-aami items place them
    windows = beat_windows(x[None], centres, int(round(WINDOW_SECONDS * fs)))
    typical = median_beat(windows)[0]  # every beat enters the median beat
    classified = windows[kept, 0]
    morphology = morphology_features(classified, np.broadcast_to(typical, classified.shape), fs)
    one_record = np.zeros(len(kept), dtype=np.int64)
    return _feature_columns(rr[kept], morphology, rr_irregularity(samples[kept]), one_record), kept


__all__ = [
    "ENVELOPE_FEATURES",
    "FEATURE_NAMES",
    "IRREGULARITY_FEATURES",
    "MORPHOLOGY_FEATURES",
    "POLARITY_SENSITIVE",
    "SHAPE_CONTEXT_FEATURES",
    "aami_feature_matrix",
    "envelope_features",
    "envelope_matrix",
    "envelope_names",
    "feature_names",
    "morphology_features",
    "record_beat_features",
    "rr_irregularity",
    "shape_context_features",
    "shape_context_matrix",
    "shape_context_names",
    "standardise_by_record",
]
