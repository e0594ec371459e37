"""Metrics for the task suite, with bootstrap confidence intervals that resample patients.

Scores come from scikit-learn where it has them (AUROC, AUPRC, F1, confusion matrices); written here
are only what it lacks: the PhysioNet/CinC 2017 challenge score, Fmax (the best F1 over one shared
threshold, as multi-label ECG papers report it), sensitivity / positive predictivity per class and a
bootstrap that draws patients, not records, so that several records of one patient move together.

Conventions: ``y_true`` is (N,) class indices for single-label tasks or (N, K) 0/1 for multi-label
tasks; ``y_score`` is (N, K) probabilities (or (N,) for a binary task).

With multi-label labels, a bootstrap draws a resample again when it lost a label (no positive or no
negative where the full data has both), as Strodthoff et al. (2020) do: a macro average over fewer
labels is another metric, and mixing it into the interval would widen it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, roc_auc_score

from cardiolens.errors import CardiolensError

CINC2017_CLASSES = ("N", "A", "O", "~")


def _labels(y_true: Any) -> np.ndarray:
    y = np.asarray(y_true)
    if y.size == 0:
        raise CardiolensError("metrics: no samples")
    return y


def _both_classes(y: np.ndarray, what: str) -> None:
    if np.unique(y).size < 2:
        raise CardiolensError(f"{what}: only one class present ({np.unique(y).tolist()}); the score is undefined")


def _present_columns(y: np.ndarray) -> np.ndarray:
    """Columns of a multi-label matrix with both classes present (AUROC is undefined otherwise)."""
    positives = y.sum(axis=0)
    return np.flatnonzero((positives > 0) & (positives < len(y)))


# a multi-label resample that lost a label is drawn again, up to this many times
MAX_REDRAWS = 100


def _resamples(groups: np.ndarray, labels: np.ndarray | None, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Sample positions of ``n_resamples`` bootstrap resamples of whole patients (``groups``). With
    multi-label ``labels``, a resample that lost a label the full data has both values of is drawn
    again, up to :data:`MAX_REDRAWS` times (and left out when that fails)."""
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    defined = None if labels is None else _present_columns(labels)
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        for _ in range(MAX_REDRAWS if defined is not None else 1):
            idx = np.concatenate([members[g] for g in rng.integers(0, len(members), size=len(members))])
            if defined is None or not _lost_label(labels, defined, idx):
                yield idx
                break


def _lost_label(y: np.ndarray, defined: np.ndarray, idx: np.ndarray) -> bool:
    """Whether a resample lost a label: one of ``defined`` (columns with both values on the full data)
    has a single value among the rows ``idx``."""
    positives = y[np.ix_(idx, defined)].sum(axis=0)
    return bool(np.any((positives == 0) | (positives == len(idx))))


def _multi_label(y: Any) -> np.ndarray | None:
    """``y`` as (N, K) 0/1 labels when it is multi-label, else None."""
    a = np.asarray(y)
    return a if a.ndim == 2 and a.shape[1] > 1 and np.isin(a, (0, 1)).all() else None


def or_nan(metric: Callable[..., float], *args: Any) -> float:
    """``metric(*args)``, or NaN where it is undefined on these data (one class only): for scores
    reported beside others, where one undefined metric must not void the rest."""
    try:
        return float(metric(*args))
    except (ValueError, CardiolensError):
        return float("nan")


def auroc(y_true: Any, y_score: Any, average: str = "macro") -> float:
    """Area under the ROC curve: binary, one-vs-rest (single-label) or per label (multi-label).

    Classes or labels with only one value present are left out of the macro average (and listed by
    :func:`per_class_auroc` as NaN), rather than failing the whole evaluation. ``average="micro"``
    pools every cell of every column, as scikit-learn does, so such columns count there (their
    negatives are ranked against the other columns' positives).
    """
    y, s = _labels(y_true), np.asarray(y_score, dtype=np.float64)
    if s.ndim == 1 or s.shape[1] == 1:
        _both_classes(y, "auroc")
        return float(roc_auc_score(y.reshape(-1), s.reshape(-1)))
    if y.ndim == 1:  # single-label: one-vs-rest on the classes present
        y = np.eye(s.shape[1], dtype=int)[y]
    if average == "micro":
        _both_classes(y, "auroc (micro)")
        return float(roc_auc_score(y, s, average="micro"))
    keep = _present_columns(y)
    if keep.size == 0:
        raise CardiolensError("auroc: no class has both positive and negative samples")
    return float(roc_auc_score(y[:, keep], s[:, keep], average=average))


def auprc(y_true: Any, y_score: Any, average: str = "macro") -> float:
    """Area under the precision-recall curve (average precision), following scikit-learn.

    Average precision is defined wherever there is a positive: a class or label without positives is
    left out of the macro average (scikit-learn warns and counts it as 0), one that is positive in
    every sample counts with AP = 1, as scikit-learn computes it. ``average="micro"`` pools every
    cell of every column, as scikit-learn does.
    """
    y, s = _labels(y_true), np.asarray(y_score, dtype=np.float64)
    if s.ndim == 1 or s.shape[1] == 1:
        if not np.any(y == 1):
            raise CardiolensError("auprc: no positive sample; average precision is undefined")
        return float(average_precision_score(y.reshape(-1), s.reshape(-1)))
    if y.ndim == 1:
        y = np.eye(s.shape[1], dtype=int)[y]
    if average == "micro":
        if not np.any(y == 1):
            raise CardiolensError("auprc (micro): no positive label; average precision is undefined")
        return float(average_precision_score(y, s, average="micro"))
    keep = np.flatnonzero(y.sum(axis=0) > 0)
    if keep.size == 0:
        raise CardiolensError("auprc: no class has a positive sample")
    return float(average_precision_score(y[:, keep], s[:, keep], average=average))


def per_class_auroc(y_true: Any, y_score: Any) -> np.ndarray:
    """AUROC of every class or label (NaN where only one value is present)."""
    y, s = _labels(y_true), np.asarray(y_score, dtype=np.float64)
    if y.ndim == 1:
        y = np.eye(s.shape[1], dtype=int)[y]
    out = np.full(s.shape[1], np.nan)
    for k in _present_columns(y):
        out[k] = roc_auc_score(y[:, k], s[:, k])
    return out


def fmax(y_true: Any, y_score: Any, thresholds: Sequence[float] | None = None) -> tuple[float, float]:
    """Best sample-averaged F1 of a multi-label prediction over one threshold shared by all labels.

    Returns:
        ``(fmax, threshold)``, as the protein-function (CAFA) definition averages: precision over the
        samples with at least one predicted label at that threshold, recall over the samples with at
        least one true label (a sample without labels has no recall to lose).

    Raises:
        CardiolensError: scores that are NaN or infinite, or shaped unlike the labels.
    """
    y = _labels(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    if s.shape != y.shape:
        raise CardiolensError(f"fmax: scores of shape {s.shape} for labels of shape {y.shape}")
    bad = ~np.isfinite(s)
    if bad.any():  # a NaN fails every threshold test and would silently count as "not predicted"
        columns = np.flatnonzero(bad.any(axis=0)).tolist() if s.ndim == 2 else []
        raise CardiolensError(f"fmax: {int(bad.sum())} scores are NaN or infinite (columns {columns})")
    grid = np.linspace(0.01, 0.99, 99) if thresholds is None else np.asarray(thresholds)
    best, best_t = 0.0, float(grid[0])
    labelled = y.any(axis=1)
    if not labelled.any():
        return float("nan"), float(grid[0])
    for t in grid:
        pred = s >= t
        covered = pred.any(axis=1)
        if not covered.any():
            continue
        tp = (pred & y).sum(axis=1)
        precision = np.mean(tp[covered] / pred[covered].sum(axis=1))
        recall = np.mean(tp[labelled] / y[labelled].sum(axis=1))
        f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        if f > best:
            best, best_t = float(f), float(t)
    return best, best_t


def cinc2017_score(y_true: Any, y_pred: Any, classes: Sequence[str] = CINC2017_CLASSES) -> dict[str, float]:
    """The PhysioNet/CinC 2017 challenge score: the mean F1 of N, A and O (noisy ``~`` is scored apart).

    Each class's F1 is ``2 * n_ii / (row_i + column_i)`` of the confusion matrix over all four classes,
    as the challenge's scoring script computes it.

    Args:
        y_true, y_pred: class names (``"N"``, ``"A"``, ``"O"``, ``"~"``) or indices into ``classes``.

    Returns:
        ``{"score", "F1_N", "F1_A", "F1_O", "F1_~"}``.
    """
    names = list(classes)

    def as_index(y: Any) -> np.ndarray:
        arr = np.asarray(y)
        if arr.dtype.kind in "iu":
            outside = sorted(set(arr.tolist()) - set(range(len(names))))
            if outside:  # confusion_matrix would drop them and score the rest as if nothing were wrong
                raise CardiolensError(f"cinc2017_score: class indices {outside} outside 0..{len(names) - 1} ({names})")
            return arr
        unknown = sorted(set(arr.tolist()) - set(names))
        if unknown:
            raise CardiolensError(f"cinc2017_score: unknown classes {unknown}; expected {names}")
        return np.array([names.index(v) for v in arr.tolist()])

    t, p = as_index(_labels(y_true)), as_index(y_pred)
    if len(t) != len(p):
        raise CardiolensError(f"cinc2017_score: {len(t)} true labels and {len(p)} predictions")
    cm = confusion_matrix(t, p, labels=range(len(names)))
    f1 = {}
    for i, name in enumerate(names):
        denom = cm[i, :].sum() + cm[:, i].sum()
        f1[f"F1_{name}"] = float(2 * cm[i, i] / denom) if denom else float("nan")
    scored = [f1[f"F1_{c}"] for c in ("N", "A", "O") if f"F1_{c}" in f1]
    return {"score": float(np.nanmean(scored)), **f1}


def sensitivity_ppv(y_true: Any, y_pred: Any, n_classes: int) -> dict[str, np.ndarray]:
    """Per class: sensitivity (recall) TP / (TP + FN) and positive predictivity TP / (TP + FP) (NaN if undefined).

    Raises:
        CardiolensError: a label or prediction outside ``0 .. n_classes - 1`` (a confusion matrix over
            ``range(n_classes)`` would drop it and score the rest as if nothing were wrong).
    """
    t, p = _labels(y_true), np.asarray(y_pred)
    for what, arr in (("labels", t), ("predictions", p)):
        outside = sorted(set(np.unique(arr).tolist()) - set(range(n_classes)))
        if outside:
            raise CardiolensError(f"sensitivity_ppv: {what} {outside} outside 0..{n_classes - 1}")
    if len(t) != len(p):
        raise CardiolensError(f"sensitivity_ppv: {len(t)} true labels and {len(p)} predictions")
    cm = confusion_matrix(t, p, labels=range(n_classes))
    tp = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"sensitivity": tp / cm.sum(axis=1), "ppv": tp / cm.sum(axis=0), "confusion": cm}


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """Macro-averaged F1 (scikit-learn): single-label indices or multi-label 0/1 matrices."""
    return float(f1_score(_labels(y_true), np.asarray(y_pred), average="macro", zero_division=0))


@dataclass
class Interval:
    """A metric on the full data with its bootstrap percentile interval."""

    value: float
    low: float
    high: float
    level: float
    resamples: int

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def bootstrap(
    metric: Callable[..., float],
    *arrays: Any,
    groups: Any = None,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Bootstrap percentile interval of ``metric(*arrays)``, resampling groups (patients) with replacement.

    Args:
        metric: a function of the arrays, e.g. :func:`auroc` with ``y_true, y_score``.
        *arrays: arrays whose first axis is the sample axis (all the same length).
        groups: the patient of each sample; all samples of a drawn patient enter together. Default:
            each sample is its own group.
        n_resamples: bootstrap replicates; replicates on which the metric is undefined (e.g. a class
            missing from the resample) are skipped and the count actually used is reported. When the
            first array is multi-label 0/1 labels, a replicate that lost a label is drawn again (up to
            :data:`MAX_REDRAWS` times).
        level: coverage of the interval.
        seed: the same seed gives the same interval.

    Raises:
        CardiolensError: arrays of different lengths, or fewer than half the replicates defined.
    """
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise CardiolensError(f"bootstrap: arrays of different lengths {[len(a) for a in arrays]}")
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if len(groups) != n:
        raise CardiolensError(f"bootstrap: {len(groups)} groups for {n} samples")
    values = []
    full = metric(*arrays)
    for idx in _resamples(groups, _multi_label(arrays[0]), n_resamples, seed):
        try:
            value = metric(*(a[idx] for a in arrays))
        except (ValueError, CardiolensError):  # undefined on this resample (one class only)
            continue
        if np.isfinite(value):
            values.append(value)
    if len(values) < n_resamples / 2:
        raise CardiolensError(
            f"bootstrap: the metric is undefined on {n_resamples - len(values)} of {n_resamples} resamples"
        )
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return Interval(float(full), float(low), float(high), level, len(values))


def match_peaks(reference: Any, detected: Any, tolerance: int) -> tuple[int, np.ndarray]:
    """One-to-one matching of detected beats to reference beats within ``tolerance`` samples.

    Pairs are taken closest first, so each reference beat and each detection is used at most once
    (as WFDB ``bxb`` matches beats; ``benchmarks/rpeaks_mitdb.py`` and the beat detection tasks
    score with it). Written here because scikit-learn has no event matching.

    Args:
        reference, detected: increasing sample indices.
        tolerance: largest distance in samples of a match (150 ms in the R-peak benchmark).

    Returns:
        (true positives, the matched detections' offsets from their beats in samples).

    Example:
        >>> match_peaks(np.array([100, 300, 500]), np.array([104, 290, 800]), 20)[0]
        2
    """
    ref_i, det_i = matched_pairs(reference, detected, tolerance)
    offsets = np.asarray(detected, dtype=np.int64)[det_i] - np.asarray(reference, dtype=np.int64)[ref_i]
    return len(ref_i), offsets


def matched_pairs(reference: Any, detected: Any, tolerance: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs :func:`match_peaks` counts: (indices into ``reference``, indices into ``detected``), closest first.

    Example:
        >>> matched_pairs(np.array([100, 300, 500]), np.array([104, 290, 800]), 20)
        (array([0, 1]), array([0, 1]))
    """
    reference = np.asarray(reference, dtype=np.int64)
    detected = np.asarray(detected, dtype=np.int64)
    if reference.size == 0 or detected.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    j = np.searchsorted(detected, reference)
    pairs = []
    for k in (j - 1, j, j + 1):  # the nearest detections on either side are the only candidates
        ok = (k >= 0) & (k < detected.size)
        ref_i, det_i = np.flatnonzero(ok), k[ok]
        d = np.abs(detected[det_i] - reference[ref_i])
        close = d <= tolerance
        pairs.append(np.stack([d[close], ref_i[close], det_i[close]], axis=1))
    candidates = np.concatenate(pairs)
    candidates = candidates[np.lexsort((candidates[:, 2], candidates[:, 1], candidates[:, 0]))]
    used_ref: set[int] = set()
    used_det: set[int] = set()
    kept = []
    for _, r, d in candidates.tolist():
        if r in used_ref or d in used_det:
            continue
        used_ref.add(r)
        used_det.add(d)
        kept.append((r, d))
    out = np.asarray(kept, dtype=np.int64).reshape(-1, 2)
    return out[:, 0], out[:, 1]


def bootstrap_scores(
    scores: Callable[[np.ndarray], dict[str, float]],
    n: int,
    *,
    groups: Any = None,
    labels: Any = None,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Bootstrap intervals of every metric a scoring function returns, from one set of resamples.

    Args:
        scores: maps positions of the samples (with repeats) to ``{metric: value}``.
        n: number of samples.
        groups: the patient of each sample (all of a drawn patient's samples enter together).
        labels: the samples' labels; with multi-label 0/1 labels a resample that lost a label (no
            positive or no negative where the full data has both) is drawn again.
        n_resamples, level, seed: as in :func:`bootstrap`.

    Returns:
        ``{metric: Interval}`` for every metric that is finite on the full data and defined on at least
        half of the resamples. The intervals are percentile intervals: for a score that takes a best
        value over thresholds (Fmax) resampling biases it upward, so the point estimate can lie
        below its own interval on small data.
    """
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if len(groups) != n:  # a short one would resample a part of the samples and report it as the whole
        raise CardiolensError(f"bootstrap_scores: {len(groups)} groups for {n} samples")
    full = scores(np.arange(n))
    values: dict[str, list[float]] = {k: [] for k, v in full.items() if isinstance(v, float) and np.isfinite(v)}
    for idx in _resamples(groups, None if labels is None else _multi_label(labels), n_resamples, seed):
        try:
            drawn = scores(idx)
        except (ValueError, CardiolensError):
            continue
        for key in values:
            value = drawn.get(key, float("nan"))
            if np.isfinite(value):
                values[key].append(value)
    alpha = (1 - level) / 2
    out = {}
    for key, found in values.items():
        if len(found) >= n_resamples / 2:
            low, high = np.quantile(found, [alpha, 1 - alpha])
            out[key] = Interval(float(full[key]), float(low), float(high), level, len(found))
    return out


__all__ = [
    "CINC2017_CLASSES",
    "Interval",
    "auprc",
    "auroc",
    "bootstrap",
    "bootstrap_scores",
    "cinc2017_score",
    "fmax",
    "macro_f1",
    "match_peaks",
    "matched_pairs",
    "or_nan",
    "per_class_auroc",
    "sensitivity_ppv",
]
