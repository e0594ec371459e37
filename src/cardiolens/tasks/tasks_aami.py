"""AAMI heartbeat classification on the MIT-BIH Arrhythmia Database: ``mitbih-aami``.

Each *item* is one annotated beat: a window of ``WINDOW_SECONDS`` (2 s) of lead MLII centred on the
beat's reference annotation (the R peak), resampled to the backbone's rate (100 Hz for the CNN
preset and the GPTs), plus five RR features (:func:`rr_features`) the head reads next to the
backbone's features. Targets are the AAMI EC57 classes N / S / V / F (:data:`AAMI_TASK_CLASSES`).

What is left out, and why (as AAMI EC57 and de Chazal et al. 2004 do):

- the four paced records 102, 104, 107, 217 (``include_paced=False``); paced beats are class Q;
- class Q (paced, fusion of paced and normal, unclassifiable beats): 8 beats in the 22 non-paced
  records here, too few to learn or score;
- the first and the last beat of every record, whose pre- or post-RR interval is undefined.

Option ``template=True`` adds, for every lead, a second channel: the record's median beat (the
sample-wise median of all its beat windows, the beat at the centre), so a model can compare each beat
with the patient's usual one. The median is computed from the record's own signal and annotated beat
positions (no labels), so it is available for a test patient too.

RR intervals come from *every* beat annotation of the record (Q beats included), so an excluded
beat still delimits its neighbours' intervals. Windows that reach past a record's ends are padded
with the edge value.

Protocol: cross-validation grouped by record (patient; records 201 and 202 are one man) within the
provided records: the 22 DS1 records of ``../shared/data/mitdb-ds1.zip``. ``benchmarks/aami_mitbih.py``
also runs the inter-patient split of de Chazal et al. (train DS1, test DS2) for users with all 48
records (``train_records``/``test_records``: the items get a fixed split, ``info["split"]``). That
split, as published, puts record 201 in DS1 and 202 (the same man) in DS2; it is kept as published.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cardiolens.datasets import MITBIH
from cardiolens.datasets.mitbih import DS1, DS2, PACED
from cardiolens.errors import CardiolensError, DatasetError
from cardiolens.signal.resample import resample
from cardiolens.tasks.suite import Task, TaskData, register_task

log = logging.getLogger(__name__)

AAMI_TASK_CLASSES = ("N", "S", "V", "F")
WINDOW_SECONDS = 2.0
LOCAL_RR_BEATS = 10
OTHER_LEAD = "other"  # in ``leads``: whatever lead of the record is not asked for by name
RR_FEATURES = ("log_pre_rr", "log_post_rr", "log_pre_local", "log_post_local", "log_local_rr")
RECORD_SETS = {
    "DS1": tuple(str(r) for r in DS1),
    "DS2": tuple(str(r) for r in DS2),
    "PACED": tuple(str(r) for r in PACED),
}
PROTOCOL = (
    "cross-validation grouped by record (patient) within the provided MIT-BIH records, paced records "
    "102 104 107 217 and class Q excluded (AAMI EC57)"
)


# -- pure functions -------------------------------------------------------------------------------
def rr_features(samples: Any, fs: float, local_beats: int = LOCAL_RR_BEATS) -> np.ndarray:
    """RR features of every beat of a record, normalised by the record's own rhythm.

    For beat ``i`` with pre-RR ``t[i] - t[i-1]`` and post-RR ``t[i+1] - t[i]``, the record mean RR
    ``R`` (mean of all its RR intervals) and the local mean RR ``L`` (mean of the ``local_beats`` RR
    intervals centred on the beat: ``rr[i - local_beats//2 + 1 .. i + local_beats//2]`` where ``rr[j]``
    is the pre-RR of beat ``j``, clipped at the record's ends), the five features are::

        log(pre / R), log(post / R), log(pre / L), log(post / L), log(L / R)

    Normalising by the record's rhythm (instead of seconds) is what lets a model trained on some
    patients read another's prematurity (a premature S beat has ``pre / L`` well below 1 whatever
    the heart rate); the logarithm centres a regular rhythm at 0.

    Args:
        samples: beat positions (sample indices, increasing), at least 3 beats.
        fs: their sampling rate.
        local_beats: RR intervals averaged for the local mean.

    Returns:
        (beats, 5) float32; the first and the last row are NaN (pre- or post-RR undefined).

    Raises:
        CardiolensError: fewer than 3 beats, or positions that do not increase.

    Example:
        >>> rr_features([0, 100, 200, 250, 400], fs=100)[2].round(3)  # the beat at 200: regular pre-RR, short post
        array([ 0.   , -0.693,  0.   , -0.693,  0.   ], dtype=float32)
    """
    t = np.asarray(samples, dtype=np.float64) / float(fs)
    if t.ndim != 1 or len(t) < 3:
        raise CardiolensError(f"rr_features: need at least 3 beat positions, got {t.size}")
    rr = np.diff(t)  # rr[j - 1] is the pre-RR of beat j
    if np.any(rr <= 0):
        raise CardiolensError("rr_features: beat positions must be strictly increasing")
    n = len(t)
    pre = np.full(n, np.nan)
    post = np.full(n, np.nan)
    pre[1:] = rr
    post[:-1] = rr
    record_mean = rr.mean()
    # local mean over the pre-RRs of beats i - k//2 + 1 .. i + k//2 (clipped), via a cumulative sum
    cum = np.concatenate([[0.0], np.cumsum(rr)])  # cum[m] = sum of rr[:m]
    half = max(1, local_beats // 2)
    j = np.arange(n) - 1  # index into rr of each beat's pre-RR
    lo = np.clip(j - half + 1, 0, len(rr) - 1)
    hi = np.clip(j + half, 0, len(rr) - 1) + 1
    local = (cum[hi] - cum[lo]) / (hi - lo)
    with np.errstate(invalid="ignore"):
        feats = np.stack(
            [
                np.log(pre / record_mean),
                np.log(post / record_mean),
                np.log(pre / local),
                np.log(post / local),
                np.log(local / record_mean),
            ],
            axis=1,
        )
    feats[0] = np.nan
    feats[-1] = np.nan
    return feats.astype(np.float32)


def beat_windows(signal: np.ndarray, centres: Any, window: int) -> np.ndarray:
    """Windows of ``window`` samples centred on ``centres`` (sample ``centre - window // 2`` first).

    Args:
        signal: (leads, samples).
        centres: sample index of each beat.
        window: samples per window.

    Returns:
        (beats, leads, window) float32; parts outside the record repeat its first or last value.
    """
    x = np.asarray(signal, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise CardiolensError(f"beat_windows: signal must be (leads, samples), got {x.shape}")
    c = np.asarray(centres, dtype=np.int64)
    index = c[:, None] - window // 2 + np.arange(window)[None, :]  # (beats, window)
    index = np.clip(index, 0, x.shape[1] - 1)
    return np.ascontiguousarray(x[:, index].transpose(1, 0, 2))  # (beats, leads, window)


def record_set(spec: str | Iterable[str | int] | None) -> list[str] | None:
    """Record ids from a named set (``DS1``, ``DS2``, ``PACED``), a comma list, or a list; None stays None.

    Example:
        >>> record_set("DS1")[:3]
        ['101', '106', '108']
        >>> record_set("100,101")
        ['100', '101']
    """
    if spec is None:
        return None
    if isinstance(spec, str):
        names = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = [str(s).strip() for s in spec]
    out: list[str] = []
    for name in names:
        if name.upper() in RECORD_SETS:
            out.extend(RECORD_SETS[name.upper()])
        elif name.isdigit():
            out.append(name.zfill(3))
        else:
            raise CardiolensError(
                f"unknown MIT-BIH record or record set {name!r}; sets: {', '.join(RECORD_SETS)}, or record numbers"
            )
    return list(dict.fromkeys(out))


def missing_records(db: MITBIH, records: Sequence[str]) -> list[str]:
    """The records of ``records`` that the catalogue's folder lacks."""
    return [r for r in records if r not in db]


def _require_records(db: MITBIH, records: Sequence[str], what: str) -> None:
    missing = missing_records(db, records)
    if missing:
        raise DatasetError(
            f"{db.root}: {what} needs MIT-BIH records that are not in this folder: {' '.join(missing)} "
            f"({len(missing)} of {len(records)}; the folder has {len(db)}: {' '.join(db.record_ids)})"
        )


# -- loading --------------------------------------------------------------------------------------
def median_beat(windows: np.ndarray) -> np.ndarray:
    """The sample-wise median of a record's beat windows (beats, leads, window) -> (leads, window)."""
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim != 3 or len(w) == 0:
        raise CardiolensError(f"median_beat: need (beats, leads, window) windows, got {w.shape}")
    return np.median(w, axis=0).astype(np.float32)


def _record_items(
    db: MITBIH, rid: str, fs: float, leads: Sequence[str], window: int, template: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows, RR features, AAMI classes, beat samples (at 360 Hz) and symbols of one record's kept beats."""
    record = db.load(rid)
    names = [str(x) for x in record.leads or []]
    named = [ld for ld in leads if ld != OTHER_LEAD]
    # "other": the record's first lead not asked for by name (MIT-BIH's second lead: V1 in most records)
    leads = [ld if ld != OTHER_LEAD else next((n for n in names if n not in named), ld) for ld in leads]
    missing = [ld for ld in leads if ld not in names]
    if missing:
        raise DatasetError(f"{db.path(rid)}: record {rid} has no lead {', '.join(missing)} (it has {', '.join(names)})")
    x = record.signal[[names.index(ld) for ld in leads]]
    x = resample(x, record.fs, fs).astype(np.float32)  # (leads, T at fs)
    beats = db.beats(rid)
    samples = beats["sample"].to_numpy(dtype=np.int64)
    rr = rr_features(samples, record.fs)
    aami = beats["aami"].to_numpy(dtype=object)
    keep = np.isin(aami, AAMI_TASK_CLASSES) & np.isfinite(rr).all(axis=1)
    centres = np.round(samples * fs / record.fs).astype(np.int64)
    windows = beat_windows(x, centres[keep], window)
    if template:  # every beat of the record (Q included) enters its median beat
        typical = median_beat(beat_windows(x, centres, window))  # (leads, window)
        windows = np.concatenate([windows, np.broadcast_to(typical, windows.shape)], axis=1)
    targets = np.array([AAMI_TASK_CLASSES.index(c) for c in aami[keep]], dtype=np.int64)
    return windows, rr[keep], targets, samples[keep], beats["symbol"].to_numpy(dtype=object)[keep]


def load_aami(
    root: Path,
    fs: float,
    *,
    records: Sequence[str] | str | None = None,
    include_paced: bool = False,
    leads: Sequence[str] = ("MLII",),
    train_records: Sequence[str] | str | None = None,
    test_records: Sequence[str] | str | None = None,
    template: bool = False,
    progress: bool = True,
) -> TaskData:
    """Beats of MIT-BIH records as :class:`TaskData` items (see the module notes).

    Args:
        root: the MIT-BIH folder.
        fs: sampling rate of the windows.
        records: records to read (ids, a named set ``DS1``/``DS2``, or a comma list); default: every
            record in the folder except the paced ones.
        include_paced: keep the paced records 102 104 107 217 (their paced beats are class Q and are
            dropped either way; 102 and 104 have no MLII).
        leads: leads by name, in channel order (``("MLII", "V1")`` for two; records lacking one are an
            error). ``"other"`` stands for the record's first lead not named: ``("MLII", "other")``
            reads both leads of every MIT-BIH record whose second lead is V1, V2, V4 or V5.
        train_records, test_records: a fixed split instead of cross-validation: ``info["split"]``
            maps each item to ``"train"`` or ``"test"`` (validation is carved from the training
            records by patient). Both or neither.
        template: add the record's median beat as a channel per lead (``"<lead> median"``).
        progress: a progress bar.

    Raises:
        DatasetError: records asked for that the folder lacks (named), or a record without a lead.
    """
    db = MITBIH(root)
    train, test = record_set(train_records), record_set(test_records)
    if (train is None) != (test is None):
        raise CardiolensError("mitbih-aami: give both train_records and test_records, or neither")
    if train is not None and test is not None:
        overlap = sorted(set(train) & set(test))
        if overlap:
            raise CardiolensError(f"mitbih-aami: records in both train and test sets: {' '.join(overlap)}")
        _require_records(db, train + test, "the fixed train/test split")
        ids = train + test
    elif records is not None:
        ids = record_set(records) or []
        _require_records(db, ids, "mitbih-aami")
    else:
        ids = db.record_ids
    excluded = [r for r in ids if int(r) in PACED] if not include_paced else []
    ids = [r for r in ids if r not in excluded]
    if not ids:
        raise DatasetError(f"{root}: no MIT-BIH records left to read (paced records excluded: {' '.join(excluded)})")
    window = int(round(WINDOW_SECONDS * fs))
    signals, extra, targets, item_ids, groups, per_record = [], [], [], [], [], {}
    for rid in tqdm(ids, desc=f"reading MIT-BIH beats ({fs:g} Hz)", disable=not progress, unit="rec"):
        w, rr, y, samples, _ = _record_items(db, rid, fs, list(leads), window, template)
        signals.extend(list(w))
        extra.append(rr)
        targets.append(y)
        item_ids.extend(f"{rid}:{s}" for s in samples)
        groups.extend([db.patient_of(rid)] * len(y))
        per_record[rid] = {c: int(np.sum(y == k)) for k, c in enumerate(AAMI_TASK_CLASSES)}
    y_all = np.concatenate(targets)
    info: dict[str, Any] = {
        "dataset": str(root),
        "records": list(per_record),
        "beats_per_record": per_record,
        "class_counts": {c: int(np.sum(y_all == k)) for k, c in enumerate(AAMI_TASK_CLASSES)},
        "excluded_records": excluded,
        "excluded": "paced records (unless include_paced), class Q beats, first and last beat of each record",
        "window": f"{WINDOW_SECONDS:g} s centred on the beat annotation, leads {', '.join(leads)}"
        + (", plus each lead's record median beat" if template else ""),
        "extra_features": list(RR_FEATURES),
    }
    if train is not None and test is not None:
        test_set = set(test)
        info["split"] = {i: ("test" if i.split(":")[0] in test_set else "train") for i in item_ids}
        info["train_records"] = [r for r in train if r not in excluded]
        info["test_records"] = [r for r in test if r not in excluded]
    return TaskData(
        signals=signals,
        targets=y_all,
        item_ids=np.array(item_ids),
        groups=np.array(groups),
        strata=np.array([AAMI_TASK_CLASSES[k] for k in y_all]),
        fs=fs,
        leads=[*leads, *(f"{ld} median" for ld in leads)] if template else list(leads),
        extra=np.concatenate(extra).astype(np.float32),
        info=info,
    )


# -- scores ---------------------------------------------------------------------------------------
def aami_confusion(targets: Any, probs: Any) -> np.ndarray:
    """4 x 4 confusion matrix (rows: reference N S V F, columns: predicted) of the arg-max class."""
    y = np.asarray(targets, dtype=np.int64).ravel()
    p = np.asarray(probs)
    pred = p.argmax(axis=1) if p.ndim == 2 else p.astype(np.int64)
    k = len(AAMI_TASK_CLASSES)
    # bincount rather than sklearn: the bootstrap calls this thousands of times on 50,000 beats
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def aami_score(targets: Any, probs: Any, thresholds: Any = None) -> dict[str, float]:
    """Per-class sensitivity (Se), positive predictivity (+P, key ``PPV_c``) and F1 of the arg-max class.

    Se = TP / (TP + FN), +P = TP / (TP + FP), F1 = 2 TP / (2 TP + FN + FP), each NaN where its
    denominator is 0. ``sv_f1`` (the model-selection score) is the mean of F1_S and F1_V, the two
    classes the AAMI targets name; ``macro_f1`` is the mean over the classes where F1 is defined.

    Example:
        >>> s = aami_score([0, 0, 1, 2], [[.9, .1, 0, 0], [.2, .8, 0, 0], [.3, .7, 0, 0], [0, 0, 1, 0]])
        >>> round(s["F1_S"], 3), s["Se_N"], s["PPV_S"], s["F1_V"]
        (0.667, 0.5, 0.5, 1.0)
    """
    cm = aami_confusion(targets, probs).astype(np.float64)
    tp = np.diag(cm)
    row, col = cm.sum(axis=1), cm.sum(axis=0)
    out: dict[str, float] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        se, ppv, f1 = tp / row, tp / col, 2 * tp / (row + col)
    for k, c in enumerate(AAMI_TASK_CLASSES):
        out[f"Se_{c}"] = float(se[k])
        out[f"PPV_{c}"] = float(ppv[k])
        out[f"F1_{c}"] = float(f1[k])
    sv = [out["F1_S"], out["F1_V"]]
    out["sv_f1"] = float(np.nanmean(sv)) if np.isfinite(sv).any() else float("nan")
    out["macro_f1"] = float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")
    out["accuracy"] = float(tp.sum() / max(cm.sum(), 1))
    return out


def aami_report(targets: Any, probs: Any) -> dict[str, Any]:
    """Scores plus the confusion matrix and class counts, as plain JSON values (for benchmarks and cards)."""
    cm = aami_confusion(targets, probs)
    return {
        "classes": list(AAMI_TASK_CLASSES),
        "confusion": {"rows": "reference", "columns": "predicted", "matrix": cm.tolist()},
        "reference_counts": dict(zip(AAMI_TASK_CLASSES, cm.sum(axis=1).tolist(), strict=True)),
        "predicted_counts": dict(zip(AAMI_TASK_CLASSES, cm.sum(axis=0).tolist(), strict=True)),
        **aami_score(targets, probs),
    }


MITBIH_AAMI = register_task(
    Task(
        name="mitbih-aami",
        kind="multiclass",
        description="MIT-BIH AAMI beat classes N / S / V / F per annotated beat, from 2 s of MLII and RR features",
        modality="ECG",
        fs=100.0,
        window_seconds=WINDOW_SECONDS,
        min_seconds=WINDOW_SECONDS,
        classes=AAMI_TASK_CLASSES,
        load=load_aami,
        score=aami_score,
        score_key="sv_f1",
        folds=5,
        n_extra=len(RR_FEATURES),
        protocol=PROTOCOL,
        dataset="MIT-BIH Arrhythmia Database folder (NNN.hea/.dat/.atr)",
    )
)

__all__ = [
    "AAMI_TASK_CLASSES",
    "MITBIH_AAMI",
    "OTHER_LEAD",
    "RECORD_SETS",
    "RR_FEATURES",
    "aami_confusion",
    "aami_report",
    "aami_score",
    "beat_windows",
    "load_aami",
    "median_beat",
    "missing_records",
    "record_set",
    "rr_features",
]
