"""Beat detection tasks: a beat probability at every sample, decoded into beats and scored the way
the R-peak benchmark scores detectors (``benchmarks/rpeaks_mitdb.py``).

- ``mitbih-beats``: ECG R peaks, MIT-BIH Arrhythmia Database, the first signal of each record (MLII;
  V5 in 102, 104 and 114, as the R-peak benchmark reads them), at 100 Hz.
- ``bidmc-ppg-beats``: finger-PPG systolic peaks, BIDMC PPG and Respiration Dataset, at 50 Hz
  (HeartGPT's PPG rate), against pulse peaks located from the simultaneous ECG.

**Targets.** One output, ``beat``: 1 within +-50 ms (ECG; +-60 ms for PPG) of every reference beat,
0 elsewhere (:func:`beat_targets`). A box rather than a single sample gives the loss enough
positives to learn from and still puts the probability's maximum on the beat.

**Decoding** (:func:`decode_beats`): local maxima of the probability at or above a threshold, at
least a refractory period of 300 ms apart (the higher maximum wins, so a P or T wave the model half
believes in loses to its QRS complex), shortened for fast rhythms by the rule of the ``cardiolens``
R-peak detector (60 % of the median RR, at least 200 ms).

**Scoring.** Reference beats are read back from the targets (the centre of every run of ones; a run
cut by the edge of an item is completed from the known box width, :func:`target_beats`). Detections
match reference beats one to one within 150 ms (:func:`cardiolens.tasks.metrics.match_peaks`, the
R-peak benchmark's matcher and tolerance; PPG: the same 150 ms, the tolerance of Charlton et al.'s
PPG beat detector assessment, ``peterhcharlton/ppg-beats``). Se, +P and F1 are gross (summed over
items); F1 is the score key. The decoding threshold is 0.5 unless one is given; choose it on
validation data with :func:`choose_threshold`.

**Items** are about 60 s long, cut halfway between two reference beats so that no beat straddles
two items; groups are patients (MIT-BIH record ids, 201 and 202 being one man; BIDMC record ids).
MIT-BIH's ventricular flutter/fibrillation episodes (``[`` .. ``]``, record 207 only) hold no beat
annotations and are left out, as the R-peak benchmark's "whole record, VF excluded" scoring leaves them
out; pieces shorter than 10 s (between two episodes, or between untrusted PPG blocks) are not items.

**Using a model**: :func:`detect_beats` (a record in, beats at its own sample indices out; the
shipped ``beats-ecg``), :func:`locate_beats` (a probability curve in), :func:`heartgpt_beat_probabilities`
(HeartGPT's published PPG beat model over a whole signal).

**PPG reference** (:func:`ppg_reference`), written here because BIDMC has no beat annotations:

1. R peaks of ECG lead II with ``ecg_peaks`` (method ``cardiolens``); the ECG is trusted in 10-s
   blocks where a second detector (neurokit2's default) finds the same beats within 150 ms, after
   removing the record's median offset between the two detectors (their fiducial points differ by
   up to 160 ms on wide or inverted QRS complexes). Records with no such block are left out.
2. The ECG-to-PPG delay of the record (pulse arrival time plus the monitor's PPG delay, 0.5-0.8 s in
   BIDMC) is the lag in 0-1.2 s at which the R-peak-triggered average of the 0.5-8 Hz band-passed PPG
   is highest.
3. The pulse peak of each R peak is the highest local maximum of the 8 Hz low-passed PPG within
   +-150 ms of R peak + delay whose prominence is at least 5 % of the record's 5-95 % PPG range
   (smaller bumps are dicrotic waves or noise); an R peak with no such maximum has no pulse peak.
4. Only pulse peaks in the trusted blocks shifted by the delay are references; the rest of the record
   is left out, as MIT-BIH's flutter episodes are.

Each task is defined at one rate (its targets and the scoring tolerance are in samples at that rate);
loading it at another rate is refused.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.signal import find_peaks
from tqdm.auto import tqdm

from cardiolens.datasets import BIDMC, MITBIH
from cardiolens.errors import CardiolensError, DatasetError, ModelInputError, RecordError
from cardiolens.signal.filters import bandpass, lowpass
from cardiolens.signal.leads import PREFERRED_ECG_LEADS, modality
from cardiolens.signal.peaks import ecg_peaks
from cardiolens.signal.record import Record
from cardiolens.signal.resample import resample
from cardiolens.tasks.metrics import match_peaks
from cardiolens.tasks.suite import Task, TaskData, get_task, register_task

log = logging.getLogger(__name__)

ECG_FS = 100.0
PPG_FS = 50.0
TOLERANCE_S = 0.150
ECG_HALF_WIDTH_S = 0.050
PPG_HALF_WIDTH_S = 0.060
REFRACTORY_S = 0.300
MIN_REFRACTORY_S = 0.200
SEGMENT_S = 60.0
MIN_ITEM_S = 10.0
THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.05, 0.951, 0.05))
PPG_BLOCK_S = 10.0
PPG_MAX_LAG_S = 1.2
PPG_SEARCH_S = 0.150
PPG_PROMINENCE = 0.05
BEAT_CLASSES = ("beat",)


# -- targets, decoding, matching --------------------------------------------------------------------
def _half(fs: float, half_width_s: float) -> int:
    return int(round(half_width_s * fs))


def beat_targets(beats: Any, n: int, fs: float, half_width_s: float = ECG_HALF_WIDTH_S) -> np.ndarray:
    """Per-sample target (1, n): 1 within ``half_width_s`` of every beat, 0 elsewhere.

    Args:
        beats: beat sample indices (those outside ``0..n-1`` still mark the samples their box reaches).
        n: samples of the item.
        fs: sampling rate in Hz.
        half_width_s: half width of the box in seconds.

    Example:
        >>> beat_targets([2, 8], 10, 100.0, 0.01).astype(int).tolist()
        [[0, 1, 1, 1, 0, 0, 0, 1, 1, 1]]
    """
    h = _half(fs, half_width_s)
    y = np.zeros((1, n), dtype=np.float32)
    for b in np.asarray(beats, dtype=np.int64).tolist():
        lo, hi = max(0, b - h), min(n, b + h + 1)
        if lo < hi:
            y[0, lo:hi] = 1.0
    return y


def target_beats(target: Any, fs: float, half_width_s: float = ECG_HALF_WIDTH_S) -> np.ndarray:
    """The reference beats a :func:`beat_targets` array encodes: the centre of every run of ones.

    A run cut by the item's first or last sample is shorter than a full box; its beat is placed one
    half width inside its far end, and at the item's edge when that lies outside the item (its peak
    is then the edge sample, where :func:`decode_beats` can find it).
    """
    y = np.asarray(target)
    y = (y[0] if y.ndim == 2 else y.reshape(-1)) >= 0.5
    n = y.size
    edges = np.flatnonzero(np.diff(np.r_[0, y.astype(np.int8), 0]))
    starts, stops = edges[0::2], edges[1::2]  # runs [start, stop)
    h = _half(fs, half_width_s)
    centres = (starts + stops - 1) // 2
    short = stops - starts < 2 * h + 1
    left = short & (starts == 0) & (stops < n)
    right = short & (stops == n) & (starts > 0)
    centres[left] = stops[left] - 1 - h
    centres[right] = starts[right] + h
    return np.clip(centres, 0, max(n - 1, 0)).astype(np.int64)


def _maxima(p: np.ndarray, threshold: float, distance: int) -> np.ndarray:
    # padded below any threshold so that a maximum on the first or last sample counts too
    peaks, _ = find_peaks(np.r_[-1.0, p, -1.0], height=threshold, distance=max(1, distance))
    return peaks.astype(np.int64) - 1


def decode_beats(
    probability: Any,
    fs: float,
    threshold: float = 0.5,
    refractory_s: float = REFRACTORY_S,
    min_refractory_s: float = MIN_REFRACTORY_S,
) -> tuple[np.ndarray, np.ndarray]:
    """Beats from a per-sample beat probability: local maxima >= ``threshold``, a refractory period apart.

    Of two maxima closer than ``refractory_s`` the higher is kept (a P or T wave the model half
    believes in loses to its QRS complex). As the ``cardiolens`` R-peak detector does, a fast rhythm
    is not halved: when the maxima are on average closer than ``refractory_s / 0.6`` and the shortest
    refractory period (``min_refractory_s``) finds clearly more beats (5 %, at least 2), the period
    becomes 60 % of their median interval (at least ``min_refractory_s``). A maximum on the first or
    last sample counts (a beat cut by the edge of the signal).

    Args:
        probability: (samples,) or (1, samples) probabilities.
        fs: their sampling rate in Hz.
        threshold: smallest probability of a beat.
        refractory_s, min_refractory_s: the refractory period and its lower bound for fast rhythms.

    Returns:
        ``(peaks, confidence)``: int64 sample indices and the probability at each.

    Example:
        >>> p = np.zeros(300); p[[50, 70, 200]] = [0.9, 0.6, 0.8]
        >>> decode_beats(p, 100.0)[0].tolist()
        [50, 200]
    """
    p = np.asarray(probability, dtype=np.float64)
    if p.ndim == 2 and p.shape[0] == 1:
        p = p[0]
    if p.ndim != 1:
        raise CardiolensError(f"decode_beats: expects one probability per sample, got shape {p.shape}")
    dead = int(round(refractory_s * fs))
    shortest = min(dead, int(round(min_refractory_s * fs)))
    peaks = _maxima(p, threshold, dead)
    if peaks.size >= 3 and shortest < dead and np.median(np.diff(peaks)) < dead / 0.6:
        quick = _maxima(p, threshold, shortest)
        if quick.size > peaks.size + max(2, 0.05 * peaks.size):
            peaks = _maxima(p, threshold, max(shortest, int(0.6 * np.median(np.diff(quick)))))
    return peaks, p[peaks]


def detection_rates(tp: int, fn: int, fp: int) -> dict[str, float]:
    """Sensitivity, positive predictivity and F1 (fractions; NaN when undefined)."""
    nan = float("nan")
    return {
        "f1": 2 * tp / (2 * tp + fn + fp) if 2 * tp + fn + fp else nan,
        "se": tp / (tp + fn) if tp + fn else nan,
        "ppv": tp / (tp + fp) if tp + fp else nan,
    }


class _Counts:
    """TP/FN/FP of one (target, probability, threshold), remembered while both arrays live.

    The bootstrap in :func:`cardiolens.tasks.finetune.summarise` scores the same items hundreds of
    times; decoding and matching each item once makes that cheap.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.store: dict[tuple[int, int, float], tuple[Any, Any, tuple[int, int, int]]] = {}

    def get(self, y: np.ndarray, p: np.ndarray, t: float, compute: Any) -> tuple[int, int, int]:
        key = (id(y), id(p), t)
        hit = self.store.get(key)
        if hit is not None and hit[0]() is y and hit[1]() is p:
            return hit[2]
        value = compute()
        if len(self.store) >= self.limit:
            self.store.clear()
        try:
            self.store[key] = (weakref.ref(y), weakref.ref(p), value)
        except TypeError:  # not weak-referenceable (never for numpy arrays): just do not remember
            pass
        return value


def beat_counts(
    targets: list[Any],
    probs: list[Any],
    threshold: float,
    *,
    fs: float,
    half_width_s: float,
    tolerance_s: float = TOLERANCE_S,
    cache: _Counts | None = None,
) -> np.ndarray:
    """Summed (TP, FN, FP) of decoded beats against the targets' beats over items."""
    tolerance = int(round(tolerance_s * fs))
    total = np.zeros(3, dtype=np.int64)
    for y, p in zip(targets, probs, strict=True):

        def compute(y: Any = y, p: Any = p) -> tuple[int, int, int]:
            ref = target_beats(y, fs, half_width_s)
            det, _ = decode_beats(np.asarray(p)[0] if np.ndim(p) == 2 else p, fs, threshold)
            tp, _ = match_peaks(ref, det, tolerance)
            return tp, int(ref.size - tp), int(det.size - tp)

        if cache is not None and isinstance(y, np.ndarray) and isinstance(p, np.ndarray):
            total += cache.get(y, p, float(threshold), compute)
        else:
            total += compute()
    return total


def make_beat_score(fs: float, half_width_s: float, tolerance_s: float = TOLERANCE_S) -> Any:
    """The ``score(targets, probs, thresholds=None)`` of a beat detection task (see the module notes)."""
    cache = _Counts()

    def score(targets: Any, probs: Any, thresholds: Any = None) -> dict[str, Any]:
        t = 0.5 if thresholds is None else float(np.ravel(thresholds)[0])
        tp, fn, fp = beat_counts(
            list(targets),
            list(probs),
            t,
            fs=fs,
            half_width_s=half_width_s,
            tolerance_s=tolerance_s,
            cache=cache,
        ).tolist()
        return {**detection_rates(tp, fn, fp), "tp": tp, "fn": fn, "fp": fp, "threshold": t}

    score.__doc__ = (
        "Se, +P and F1 of beats decoded at the threshold (0.5 unless given) "
        f"against the targets' beats, matched within {tolerance_s * 1000:g} ms at {fs:g} Hz."
    )
    return score


def choose_threshold(task: Task | str, targets: Any, probs: Any, grid: Any = THRESHOLDS) -> float:
    """The decoding threshold with the best F1 on (validation) items; ties go to the one nearest 0.5."""
    task = get_task(task) if isinstance(task, str) else task
    best, best_t = -1.0, 0.5
    for t in sorted(grid, key=lambda v: abs(v - 0.5)):
        f1 = task.score(targets, probs, [t])["f1"]
        if np.isfinite(f1) and f1 > best:
            best, best_t = f1, float(t)
    return best_t


# -- items ------------------------------------------------------------------------------------------
def complement(excluded: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """Spans ``[a, b)`` of ``0..n`` outside the ``excluded`` spans (given with inclusive ends)."""
    spans, a = [], 0
    for s, e in sorted(excluded):
        if s > a:
            spans.append((a, min(s, n)))
        a = max(a, e + 1)
    if a < n:
        spans.append((a, n))
    return spans


def segment_spans(
    spans: list[tuple[int, int]], beats: Any, fs: float, segment_s: float = SEGMENT_S, min_s: float = MIN_ITEM_S
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Cut spans ``[a, b)`` into items of about ``segment_s``, each cut halfway between two beats.

    The last item of a span is between half and one and a half segments long; spans shorter than
    ``min_s`` are not used.

    Returns:
        ``(items, dropped)``: item spans ``[start, stop)`` and the spans that were too short.
    """
    beats = np.asarray(beats, dtype=np.int64)
    seg, minimum = int(round(segment_s * fs)), int(round(min_s * fs))
    items, dropped = [], []
    for a, b in spans:
        if b - a < minimum:
            dropped.append((a, b))
            continue
        inner = beats[(beats >= a) & (beats < b)]
        start = a
        while b - start >= seg + seg // 2:
            target = start + seg
            k = int(np.searchsorted(inner, target))
            cut = int((inner[k - 1] + inner[k]) // 2) if 0 < k < inner.size else target
            if cut <= start + minimum or cut >= b - minimum:
                cut = target
            items.append((start, cut))
            start = cut
        items.append((start, b))
    return items, dropped


def _check_fs(task: str, fs: float, expected: float) -> None:
    if abs(float(fs) - expected) > 1e-6:
        raise CardiolensError(
            f"{task} is defined at {expected:g} Hz (its targets and scoring tolerance are in samples at that rate); "
            f"got fs={fs:g} Hz. Use a backbone at {expected:g} Hz (a GPT pretrained at that rate, or a CNN "
            f"checkpoint whose config says fs={expected:g})"
        )


def _record_ids(db: Any, records: list[Any]) -> list[str]:
    """Record ids from ``records``; item ids (``record:start``, as in a model's ``split.json``) name their record."""
    names = [str(r).split(":")[0] if isinstance(r, str) else r for r in records]
    return list(dict.fromkeys(str(db.row(r)["record_id"]) for r in names))


def _cut_items(
    x: np.ndarray,
    fs_record: float,
    fs: float,
    beats: np.ndarray,
    items: list[tuple[int, int]],
    half_width_s: float,
) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """Signal and target of each item at ``fs``; the item spans and beats are at the record's rate."""
    xr = resample(x, fs_record, fs).astype(np.float32)
    br = np.round(beats * fs / fs_record).astype(np.int64)
    signals, targets, starts = [], [], []
    for a, b in items:
        a2, b2 = int(round(a * fs / fs_record)), min(xr.size, int(round(b * fs / fs_record)))
        inside = br[(beats >= a) & (beats < b)] - a2
        signals.append(xr[None, a2:b2].copy())
        targets.append(beat_targets(inside, b2 - a2, fs, half_width_s))
        starts.append(a)
    return signals, targets, starts


# -- MIT-BIH ---------------------------------------------------------------------------------------
def mitbih_reference(db: MITBIH, record_id: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Reference beats (samples at 360 Hz) and ventricular flutter episodes ``[`` .. ``]`` (inclusive)."""
    beats = db.beats(record_id)["sample"].to_numpy(dtype=np.int64)
    ann = db.annotations(record_id)
    episodes, start = [], None
    for s, sym in zip(ann.sample.tolist(), ann.symbol, strict=True):
        if sym == "[":
            start = s
        elif sym == "]" and start is not None:
            episodes.append((start, s))
            start = None
    if start is not None:
        episodes.append((start, int(db.row(record_id)["n_samples"]) - 1))
    return beats, episodes


def _load_mitbih(
    root: Path,
    fs: float,
    *,
    records: list[str] | None = None,
    segment_seconds: float = SEGMENT_S,
    leads: str = "first",
    progress: bool = True,
) -> TaskData:
    """MIT-BIH items; ``leads="all"`` adds every record's other leads (V1, V2, V4, V5) as items of their
    own with the same beat targets: more QRS shapes to train on. The annotations mark each beat's
    time, which all leads share; item ids of the extra leads end in ``:<lead>``."""
    _check_fs("mitbih-beats", fs, ECG_FS)
    if leads not in ("first", "all"):
        raise DatasetError(f"mitbih-beats: leads must be 'first' or 'all', got {leads!r}")
    db = MITBIH(root)
    ids = list(db.record_ids) if records is None else _record_ids(db, records)
    signals, targets, item_ids, groups = [], [], [], []
    lead_names, dropped, n_beats = {}, {}, 0
    for rid in tqdm(ids, desc=f"reading MIT-BIH ({fs:g} Hz)", disable=not progress, unit="rec"):
        record = db.load(rid)
        beats, episodes = mitbih_reference(db, rid)
        items, short = segment_spans(complement(episodes, record.n_samples), beats, record.fs, segment_seconds)
        for k in range(record.signal.shape[0] if leads == "all" else 1):
            sig, tgt, starts = _cut_items(record.signal[k], record.fs, fs, beats, items, ECG_HALF_WIDTH_S)
            signals += sig
            targets += tgt
            item_ids += [f"{rid}:{s}" + (f":{record.leads[k]}" if k else "") for s in starts]
            groups += [db.patient_of(rid)] * len(sig)
        lead_names[rid] = record.leads[0] if leads == "first" else list(record.leads)
        n_beats += sum(int(((beats >= a) & (beats < b)).sum()) for a, b in items)
        if short or episodes:
            dropped[rid] = {"vf_episodes": episodes, "short_spans": short}
    return TaskData(
        signals=signals,
        targets=targets,
        item_ids=np.array(item_ids),
        groups=np.array(groups),
        strata=None,
        fs=fs,
        leads=["MLII"],
        info={
            "dataset": str(root),
            "records": len(ids),
            "beats": n_beats,
            "lead_per_record": lead_names,
            "left_out": dropped,
            "reference": "MIT-BIH .atr beat annotations (N L R B A a J S V r F e j n E / f Q ?)",
            "target": f"1 within +-{ECG_HALF_WIDTH_S * 1000:g} ms of each beat",
            "tolerance_ms": TOLERANCE_S * 1000,
        },
    )


# -- BIDMC PPG ---------------------------------------------------------------------------------------
@dataclass
class PulseReference:
    """PPG pulse peaks located from the simultaneous ECG (see :func:`ppg_reference`).

    Attributes:
        pulses: pulse peak samples (at the record's rate), inside ``spans`` only.
        r_peaks: the ECG R peaks they come from.
        spans: ``[a, b)`` sample spans of the PPG where the reference holds (trusted ECG, shifted by the delay).
        lag_s: the ECG-to-PPG delay of the record.
        detector_offset_s: median offset of the second QRS detector from the first (removed before comparing).
        trusted_fraction: share of the 10-s ECG blocks where both QRS detectors agree.
    """

    pulses: np.ndarray
    r_peaks: np.ndarray
    spans: list[tuple[int, int]]
    lag_s: float
    detector_offset_s: float
    trusted_fraction: float


def _nearest_offsets(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each sample of ``a``, the signed distance to the nearest sample of ``b``."""
    j = np.clip(np.searchsorted(b, a), 1, b.size - 1)
    left, right = b[j - 1] - a, b[j] - a
    return np.where(np.abs(left) <= np.abs(right), left, right)


def ppg_reference(ecg: Any, ppg: Any, fs: float, *, block_s: float = PPG_BLOCK_S) -> PulseReference:
    """Pulse peaks of a PPG located from the simultaneous ECG (both at ``fs``); rules in the module notes.

    Raises:
        RecordError: the ECG or PPG cannot be read by the detectors (flat, too short).
    """
    ecg = np.asarray(ecg, dtype=np.float64)
    ppg = np.asarray(ppg, dtype=np.float64)
    n = ppg.size
    tolerance = int(round(TOLERANCE_S * fs))
    r = ecg_peaks(ecg, fs)
    r2 = ecg_peaks(ecg, fs, method="neurokit")
    block = int(round(block_s * fs))
    n_blocks = n // block
    offset = 0
    if r.size > 1 and r2.size > 1:
        d = _nearest_offsets(r, r2)
        close = d[np.abs(d) < 0.3 * fs]
        offset = int(np.median(close)) if close.size else 0
        r2 = r2 - offset
    good = np.zeros(n_blocks, dtype=bool)
    for k in range(n_blocks):
        a1 = r[(r >= k * block) & (r < (k + 1) * block)]
        a2 = r2[(r2 >= k * block) & (r2 < (k + 1) * block)]
        tp, _ = match_peaks(a1, a2, tolerance)
        good[k] = a1.size > 0 and tp == a1.size == a2.size
    if not good.any():
        return PulseReference(np.zeros(0, np.int64), r, [], float("nan"), offset / fs, 0.0)
    # the record's ECG-to-PPG delay: peak of the R-triggered average of the band-passed PPG
    bp = bandpass(ppg, fs, 0.5, 8.0)
    bp = (bp - bp.mean()) / max(bp.std(), 1e-12)
    lags = np.arange(int(round(PPG_MAX_LAG_S * fs)))
    trusted_r = r[(r // block < n_blocks) & good[np.minimum(r // block, n_blocks - 1)] & (r + lags[-1] < n)]
    lag = int(np.argmax([bp[trusted_r + q].mean() for q in lags])) if trusted_r.size else 0
    lp = lowpass(ppg, fs, 8.0)
    lo, hi = np.percentile(lp, [5, 95])
    candidates, _ = find_peaks(lp, prominence=PPG_PROMINENCE * max(hi - lo, 1e-12))
    search = int(round(PPG_SEARCH_S * fs))
    pulses = []
    if candidates.size:
        for x in (r + lag).tolist():
            k = int(np.searchsorted(candidates, x))
            near = [c for c in candidates[max(0, k - 1) : k + 1].tolist() if abs(c - x) <= search]
            if near:
                pulses.append(max(near, key=lambda c: lp[c]))
    kept: list[int] = []
    for c in np.unique(np.asarray(pulses, dtype=np.int64)).tolist():
        if kept and c - kept[-1] < REFRACTORY_S * fs:  # two R peaks on one pulse: one pulse peak
            if lp[c] > lp[kept[-1]]:
                kept[-1] = c
        else:
            kept.append(c)
    pulses = np.asarray(kept, dtype=np.int64)
    # trusted ECG blocks, shifted by the delay into PPG time
    spans = []
    for k in np.flatnonzero(good).tolist():
        a, b = k * block + lag, min(n, (k + 1) * block + lag)
        if spans and spans[-1][1] == a:
            spans[-1] = (spans[-1][0], b)
        elif a < b:
            spans.append((a, b))
    inside = np.zeros(pulses.size, dtype=bool)
    for a, b in spans:
        inside |= (pulses >= a) & (pulses < b)
    return PulseReference(pulses[inside], r, spans, lag / fs, offset / fs, float(good.mean()))


def _load_bidmc(
    root: Path,
    fs: float,
    *,
    records: list[str] | None = None,
    segment_seconds: float = SEGMENT_S,
    progress: bool = True,
) -> TaskData:
    _check_fs("bidmc-ppg-beats", fs, PPG_FS)
    db = BIDMC(root)
    ids = list(db.record_ids) if records is None else _record_ids(db, records)
    signals, targets, item_ids, groups = [], [], [], []
    per_record, skipped, n_beats = {}, [], 0
    for rid in tqdm(ids, desc=f"reading BIDMC ({fs:g} Hz)", disable=not progress, unit="rec"):
        try:
            ecg, ppg = db.ecg(rid), db.ppg(rid)
            ref = ppg_reference(ecg.signal[0], ppg.signal[0], ppg.fs)
        except CardiolensError as exc:
            skipped.append(f"{rid}: {exc}")
            continue
        if not ref.spans:
            skipped.append(f"{rid}: no 10-s ECG block where the two QRS detectors agree")
            continue
        items, _ = segment_spans(ref.spans, ref.pulses, ppg.fs, segment_seconds)
        sig, tgt, starts = _cut_items(ppg.signal[0], ppg.fs, fs, ref.pulses, items, PPG_HALF_WIDTH_S)
        signals += sig
        targets += tgt
        item_ids += [f"{rid}:{s}" for s in starts]
        groups += [db.patient_of(rid)] * len(sig)
        used = sum(int(((ref.pulses >= a) & (ref.pulses < b)).sum()) for a, b in items)
        n_beats += used
        per_record[rid] = {
            "lag_s": round(ref.lag_s, 3),
            "detector_offset_s": round(ref.detector_offset_s, 3),
            "trusted_fraction": round(ref.trusted_fraction, 3),
            "pulses": used,
        }
    return TaskData(
        signals=signals,
        targets=targets,
        item_ids=np.array(item_ids),
        groups=np.array(groups),
        strata=None,
        fs=fs,
        leads=["PLETH"],
        info={
            "dataset": str(root),
            "records": len(per_record),
            "beats": n_beats,
            "per_record": per_record,
            "skipped": skipped,
            "reference": "PPG pulse peaks located from ECG lead II R peaks (see cardiolens.tasks.tasks_beats)",
            "target": f"1 within +-{PPG_HALF_WIDTH_S * 1000:g} ms of each pulse peak",
            "tolerance_ms": TOLERANCE_S * 1000,
        },
    )


ECG_PROTOCOL = (
    "5-fold cross-validation grouped by patient over the MIT-BIH records found (26 in ../shared/data), "
    "60-s items of the first signal at 100 Hz, ventricular flutter episodes left out; beats matched within 150 ms"
)
PPG_PROTOCOL = (
    "5-fold cross-validation grouped by patient over the BIDMC records with trusted ECG, 60-s items of the "
    "finger PPG at 50 Hz; reference pulse peaks located from ECG lead II; peaks matched within 150 ms"
)

MITBIH_BEATS = register_task(
    Task(
        name="mitbih-beats",
        kind="per-sample",
        description="ECG beat (R-peak) detection: a beat probability per sample, MIT-BIH Arrhythmia annotations",
        modality="ECG",
        fs=ECG_FS,
        window_seconds=10.0,
        min_seconds=5.0,
        classes=BEAT_CLASSES,
        load=_load_mitbih,
        score=make_beat_score(ECG_FS, ECG_HALF_WIDTH_S),
        score_key="f1",
        folds=5,
        protocol=ECG_PROTOCOL,
        dataset="MIT-BIH Arrhythmia Database folder (NNN.hea/.dat/.atr)",
    )
)

BIDMC_PPG_BEATS = register_task(
    Task(
        name="bidmc-ppg-beats",
        kind="per-sample",
        description="finger-PPG pulse peak detection: a beat probability per sample, BIDMC, ECG-derived reference",
        modality="PPG",
        fs=PPG_FS,
        window_seconds=10.0,
        min_seconds=5.0,
        classes=BEAT_CLASSES,
        load=_load_bidmc,
        score=make_beat_score(PPG_FS, PPG_HALF_WIDTH_S),
        score_key="f1",
        folds=5,
        protocol=PPG_PROTOCOL,
        dataset="BIDMC PPG and Respiration Dataset folder (bidmcNN.hea/.dat)",
    )
)


# -- using a beat model -----------------------------------------------------------------------------
def _choose_lead(record: Record, wanted: str, model_lead: str, lead: str | None, name: str) -> str:
    where = str(record.metadata.get("path") or record.source or record.name)
    if lead is not None:
        chosen = record.leads[record.lead_index(lead)]
        if modality(chosen) != wanted:
            raise RecordError(f"{name} finds beats in {wanted}; lead {chosen!r} is {modality(chosen)}", where)
        return chosen
    usable = [x for x in record.leads if modality(x) == wanted]
    if not usable:
        raise RecordError(
            f"{name} finds beats in {wanted}; the record has no {wanted} lead (leads: {', '.join(record.leads)})",
            where,
        )
    upper = {x.upper(): x for x in usable}
    for preferred in (model_lead.upper(), *PREFERRED_ECG_LEADS):
        if preferred in upper:
            return upper[preferred]
    return usable[0]


def refine_beats(signal: Any, fs: float, beats: Any, modality: str = "ECG", search_s: float = 0.05) -> np.ndarray:
    """Move each beat to the extremum of the signal itself within +-``search_s``, at the signal's own rate.

    A model at 100 Hz (50 Hz for PPG) places beats to within a sample or two of its rate; this puts
    them on the R peak (ECG: the main deflection from the window's median, in the record's dominant
    polarity unless a beat's opposite deflection is more than twice as large, as ``ecg_peaks``
    refines its beats) or on the systolic maximum (PPG), on a signal smoothed over ~8 ms. The
    windows of two beats never overlap (beats are at least 200 ms apart), so the order is kept.
    """
    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    beats = np.asarray(beats, dtype=np.int64)
    if beats.size == 0:
        return beats
    r = max(1, int(round(search_s * fs)))
    idx = np.clip(beats[:, None] + np.arange(-r, r + 1)[None, :], 0, x.size - 1)  # (beats, 2r+1)
    k = max(0, int(round(0.004 * fs)))
    win = np.mean([x[np.clip(idx + s, 0, x.size - 1)] for s in range(-k, k + 1)], axis=0)
    rows = np.arange(beats.size)
    if modality == "PPG":
        return idx[rows, np.argmax(win, axis=1)]
    win = win - np.median(win, axis=1, keepdims=True)
    up_at, down_at = np.argmax(win, axis=1), np.argmin(win, axis=1)
    up, down = win[rows, up_at], -win[rows, down_at]
    if np.median(up) >= np.median(down):
        at = np.where(down > 2 * up, down_at, up_at)
    else:
        at = np.where(up > 2 * down, up_at, down_at)
    return idx[rows, at]


def locate_beats(
    probability: Any, model_fs: float, signal: Any, fs: float, threshold: float = 0.5, modality: str = "ECG"
) -> tuple[np.ndarray, np.ndarray]:
    """Beats at the signal's own rate from a model's beat probability at ``model_fs``.

    :func:`decode_beats`, then each beat mapped to the signal's samples and moved onto its peak
    (:func:`refine_beats`). What :func:`detect_beats` returns, and what the benchmark scores.

    Returns:
        ``(samples, confidence)``: int64 indices into ``signal`` and the probability of each beat.
    """
    x = np.asarray(signal).reshape(-1)
    peaks, confidence = decode_beats(probability, model_fs, threshold)
    samples = np.clip(np.round(peaks * fs / model_fs).astype(np.int64), 0, max(x.size - 1, 0))
    return refine_beats(x, fs, samples, modality), confidence


# a classical beat within 150 ms of a reference beat lies within 100 ms of that beat's +-50 ms target box
FUSION_SUPPORT_S = TOLERANCE_S - ECG_HALF_WIDTH_S


def fuse_beats(
    classical: Any,
    probability: Any,
    model_fs: float,
    signal: Any,
    fs: float,
    keep_threshold: float,
    add_threshold: float | None,
    *,
    support_s: float = FUSION_SUPPORT_S,
    gap_s: float = TOLERANCE_S,
    modality: str = "ECG",
) -> np.ndarray:
    """Beats of a classical detector checked and completed by a model's beat probability.

    1. A classical beat is kept when the model's probability within +-``support_s`` of it reaches
       ``keep_threshold`` (a low threshold: it drops the classical detector's noise and T-wave
       detections that the model does not believe in at all; 0 keeps every classical beat).
    2. A beat the model finds at ``add_threshold`` (a high threshold; :func:`locate_beats`) is added
       when no kept classical beat lies within ``gap_s`` of it (a beat the classical detector missed;
       None adds nothing).

    Args:
        classical: beat sample indices at ``fs`` (e.g. ``ecg_peaks(signal, fs)``).
        probability: the model's per-sample beat probability over the same signal at ``model_fs``.
        model_fs: the probability's sampling rate in Hz.
        signal: the signal itself at ``fs`` (added beats are moved onto its peaks).
        fs: the signal's sampling rate in Hz.
        keep_threshold, add_threshold: the two thresholds (choose them on validation records).
        support_s: half width of the window searched for the model's support of a classical beat.
        gap_s: an added beat must be farther than this from every kept classical beat.
        modality: ``"ECG"`` or ``"PPG"`` (where added beats are moved, :func:`refine_beats`).

    Returns:
        Sorted int64 beat sample indices at ``fs``.

    Example:
        >>> x = np.exp(-0.5 * ((np.arange(3600)[:, None] - [360, 1440, 2520]) / 3) ** 2).sum(1)  # R peaks, 360 Hz
        >>> p = np.zeros(1000); p[[100, 400, 700]] = 0.9  # the model sees them (100 Hz)
        >>> fuse_beats([360, 900, 1440], p, 100.0, x, 360.0, 0.1, 0.8).tolist()  # 900: dropped, 2520: added
        [360, 1440, 2520]
    """
    p = np.asarray(probability, dtype=np.float64).reshape(-1)
    beats = np.asarray(classical, dtype=np.int64).reshape(-1)
    if p.size == 0:
        raise CardiolensError("fuse_beats: empty probability curve")
    at = np.clip(np.round(beats * model_fs / fs).astype(np.int64), 0, p.size - 1)  # beats at the model's rate
    r = int(round(support_s * model_fs))
    window = np.clip(at[:, None] + np.arange(-r, r + 1)[None, :], 0, p.size - 1)  # (beats, 2r+1)
    support = p[window].max(axis=1) if beats.size else np.zeros(0)
    kept = np.sort(beats[support >= keep_threshold])
    if add_threshold is None:
        return kept
    found, _ = locate_beats(p, model_fs, signal, fs, add_threshold, modality)
    if kept.size and found.size:
        pos = np.searchsorted(kept, found)
        before, after = kept[np.clip(pos - 1, 0, kept.size - 1)], kept[np.clip(pos, 0, kept.size - 1)]
        nearest = np.minimum(np.abs(found - before), np.abs(after - found))
        found = found[nearest > gap_s * fs]
    return np.unique(np.r_[kept, found]).astype(np.int64)


def detect_beats(
    model: Any, record: Record, lead: str | None = None, threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Beats of one lead of ``record`` found by a beat detection model (``beats-ecg``, a fine-tuned checkpoint).

    The lead is resampled to the model's rate, read in overlapping windows
    (:func:`cardiolens.tasks.finetune.predict_items`, overlaps averaged), decoded with
    :func:`decode_beats` at the model's validation threshold, and the beats are mapped back to the
    record's sample indices and moved onto the R peak (systolic peak for PPG) of the lead at the
    record's own rate (:func:`locate_beats`).

    Args:
        model: a shipped name, a checkpoint, or a :class:`~cardiolens.models.TaskModel` of a per-sample task.
        record: the recording.
        lead: the lead to read (default: the model's lead name, else a preferred lead of its modality).
        threshold: decoding threshold (default: the model's, chosen on validation data).

    Returns:
        ``(samples, confidence)``: int64 beat sample indices at the record's rate, and the model's
        probability at each beat.

    Raises:
        ModelInputError: the model is not a per-sample beat detector.
        RecordError: no lead of the model's modality (or a lead of another modality named), a record
            shorter than the task's minimum, or a signal the model cannot read (NaN, flat).

    Example:
        >>> from cardiolens.analysis import simulated_record
        >>> samples, confidence = detect_beats("beats-ecg", simulated_record(10))  # doctest: +SKIP
    """
    from cardiolens.tasks.finetune import predict_items
    from cardiolens.tasks.predict import as_task_model, model_input

    task_model = as_task_model(model)
    cfg = task_model.config
    if cfg.kind != "per-sample":
        raise ModelInputError(f"{cfg.name} is a {cfg.kind} model for {cfg.task}, not a beat detector")
    try:
        task = get_task(cfg.task)
        wanted, minimum = task.modality, task.min_seconds
    except CardiolensError:  # a per-sample task registered elsewhere: its lead name decides
        wanted, minimum = modality(cfg.leads[0]), cfg.min_samples / cfg.fs
    chosen = _choose_lead(record, wanted, cfg.leads[0], lead, cfg.name)
    if record.duration < minimum:
        raise RecordError(
            f"{record.duration:.1f} s of signal is shorter than the {minimum:g} s {cfg.name} needs",
            str(record.metadata.get("path") or record.source or record.name),
        )
    signal, _ = model_input(task_model, record, chosen)
    with torch.inference_mode():
        curve = predict_items(task_model, [signal])[0]  # (1, samples) at the model's rate
    t = threshold if threshold is not None else (cfg.thresholds or [0.5])[0]
    x = record.signal[record.lead_index(chosen)]
    return locate_beats(curve[0], cfg.fs, x, record.fs, t, wanted)


@torch.no_grad()
def heartgpt_beat_probabilities(
    model: torch.nn.Module, signal: np.ndarray, stride: int = 100, batch_size: int = 64
) -> np.ndarray:
    """Per-sample beat probability of a HeartGPT-style beat model (``PPGPT_beat_5k_iters.zip``) over a signal.

    As HeartGPT's published GUI does: windows of the model's context (500 samples at 50 Hz) every
    ``stride`` samples, each min-max tokenised on its own, the per-token sigmoid outputs averaged
    where windows overlap. ``signal`` is 1-D at the model's rate; signals shorter than the context run
    as one window.
    """
    from cardiolens.signal.tokenize import tokenize
    from cardiolens.tasks.finetune import window_starts

    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    block = model.config.block_size
    n = x.size
    sums, counts = np.zeros(n), np.zeros(n)
    starts = window_starts(n, block, stride) if n >= block else [0]
    width = min(block, n)
    model.eval()
    for s in range(0, len(starts), batch_size):
        chunk = starts[s : s + batch_size]
        tokens, _ = tokenize(np.stack([x[a : a + width] for a in chunk]))
        probs = model.predict_proba(torch.as_tensor(tokens)).float().numpy().reshape(len(chunk), width)
        for a, p in zip(chunk, probs, strict=True):
            sums[a : a + width] += p
            counts[a : a + width] += 1
    return sums / np.maximum(counts, 1)


__all__ = [
    "BEAT_CLASSES",
    "BIDMC_PPG_BEATS",
    "MITBIH_BEATS",
    "PulseReference",
    "beat_counts",
    "beat_targets",
    "choose_threshold",
    "complement",
    "decode_beats",
    "detect_beats",
    "detection_rates",
    "heartgpt_beat_probabilities",
    "locate_beats",
    "make_beat_score",
    "mitbih_reference",
    "ppg_reference",
    "refine_beats",
    "segment_spans",
    "target_beats",
]
