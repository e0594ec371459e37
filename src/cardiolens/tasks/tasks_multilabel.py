"""12-lead multi-label diagnosis: the PTB-XL label sets and the CinC 2020/2021 SNOMED-CT codes.

Tasks (all ``kind="multilabel"``, 12 standard leads in the order I II III aVR aVL aVF V1-V6, 10 s
windows at the backbone's rate, 100 Hz by default):

- ``ptbxl-all``, ``ptbxl-diagnostic``, ``ptbxl-subdiagnostic``, ``ptbxl-superdiagnostic``,
  ``ptbxl-form``, ``ptbxl-rhythm``: the six label sets of the PTB-XL benchmark (Strodthoff et al.
  2021), built by :meth:`cardiolens.datasets.PTBXL.labels` as published. Protocol: the recommended
  split, ``strat_fold`` 1-8 train / 9 validation / 10 test, carried by the items as
  ``info["split"]``; the same command on a full download is the published protocol.
- ``cinc2021-dx``: the SNOMED-CT codes scored by the 2021 challenge, with its four equivalent pairs
  merged (:meth:`cardiolens.datasets.CinC2021.labels`); every record is its own patient (none are
  published). Protocol: 5-fold cross-validation.

Classes come from the data (``info["classes"]``). Classes that cannot be trained and evaluated on the
data at hand are dropped and listed in ``info["dropped_classes"]``:

- PTB-XL: a class is kept when it has at least ``min_train_positives`` (5) records in the training
  folds 1-8 and at least ``min_eval_positives`` (1) in each of folds 9 and 10. On a full download
  this is meant to keep every published class (the published evaluation scores every class on fold
  10; not verified here, where only the subset is available); on the 500-record subset it drops the
  rare ones (0 of 5 superdiagnostic classes, 9 of 22 subdiagnostic, 37 of 57 in ``all``).
- CinC 2021: a class is kept when at least ``min_positives`` (5) records carry it, about one per
  fold. The full 2021 training data has hundreds of records of every scored class, so nothing is
  dropped there; of the 50 sample records, 8 scored classes remain.

Scores (:func:`multilabel_score`): macro AUROC (model selection), micro AUROC, macro AUPRC (classes
with both values present), Fmax, and macro F1 at the thresholds chosen on validation data (0.5 where
none were chosen). The challenge's own 2021 score (a weighted accuracy over a published weight
matrix) is not computed.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from tqdm.auto import tqdm

from cardiolens.datasets import PTBXL, CinC2021
from cardiolens.datasets.base import STANDARD_12_LEADS
from cardiolens.datasets.ptbxl import LABEL_SETS, RECOMMENDED_FOLDS
from cardiolens.errors import CardiolensError, DatasetError
from cardiolens.signal.resample import resample
from cardiolens.tasks.metrics import auprc, auroc, fmax, or_nan, per_class_auroc
from cardiolens.tasks.suite import Task, TaskData, get_task, register_task

log = logging.getLogger(__name__)

WINDOW_SECONDS = 10.0
PTBXL_PROTOCOL = (
    "PTB-XL recommended split: strat_fold 1-8 train, 9 validation, 10 test (patient-disjoint); "
    "classes without enough positives in the folds are dropped"
)
CINC2021_PROTOCOL = (
    "5-fold cross-validation by record (no patient ids are published); scored SNOMED-CT classes with "
    "equivalent pairs merged, classes with too few positives dropped"
)


# -- leads and labels -----------------------------------------------------------------------------
def standard_lead_order(leads: list[str] | tuple[str, ...] | None, where: str) -> list[int]:
    """Channel index of each standard 12-lead name (case-insensitive: PTB-XL writes ``AVR``).

    Raises:
        DatasetError: a standard lead is missing, naming the file and the leads it has.
    """
    names = [str(x).strip().lower() for x in (leads or [])]
    missing = [ld for ld in STANDARD_12_LEADS if ld.lower() not in names]
    if missing:
        raise DatasetError(f"{where}: not a 12-lead ECG: lacks {', '.join(missing)} (has {', '.join(leads or [])})")
    return [names.index(ld.lower()) for ld in STANDARD_12_LEADS]


def rarest_label(y: np.ndarray, classes: list[str]) -> np.ndarray:
    """One stratum per record for grouped folds: its rarest positive class (``"none"`` for no class).

    Stratifying multi-label data by the rarest label spreads the rare classes over the folds, a
    cheap stand-in for iterative stratification.
    """
    y = np.asarray(y).astype(bool)
    counts = y.sum(axis=0)
    order = np.where(y, counts[None, :], np.iinfo(np.int64).max)  # rare positives first
    pick = order.argmin(axis=1)
    return np.where(y.any(axis=1), np.asarray(classes, dtype=object)[pick], "none").astype(str)


def _read_12lead(loader: Any, rid: str, fs: float) -> np.ndarray:
    record = loader.load(rid)
    order = standard_lead_order(record.leads, str(loader.path(rid)))
    return resample(record.signal[order], record.fs, fs).astype(np.float32)  # (12, T)


# -- PTB-XL ---------------------------------------------------------------------------------------
def ptbxl_class_filter(
    y: np.ndarray,
    folds: np.ndarray,
    classes: list[str],
    *,
    min_train_positives: int = 5,
    min_eval_positives: int = 1,
) -> tuple[np.ndarray, dict[str, dict[str, int]]]:
    """Which classes the recommended split can train and evaluate.

    Args:
        y: (records, classes) 0/1.
        folds: ``strat_fold`` of each record.
        classes: column names.
        min_train_positives: positives needed in the training folds (1-8).
        min_eval_positives: positives needed in each of the validation (9) and test (10) folds.

    Returns:
        ``(keep, dropped)``: a boolean mask over the classes, and for each dropped class its positives
        per part (``{"train": n, "val": n, "test": n}``).
    """
    y = np.asarray(y).astype(bool)
    parts = {name: np.isin(folds, list(f)) for name, f in RECOMMENDED_FOLDS.items()}
    counts = {name: y[mask].sum(axis=0) for name, mask in parts.items()}
    keep = (
        (counts["train"] >= min_train_positives)
        & (counts["val"] >= min_eval_positives)
        & (counts["test"] >= min_eval_positives)
    )
    dropped = {c: {name: int(counts[name][j]) for name in parts} for j, c in enumerate(classes) if not keep[j]}
    return keep, dropped


def load_ptbxl(
    root: Path,
    fs: float,
    *,
    label_set: str = "superdiagnostic",
    min_train_positives: int = 5,
    min_eval_positives: int = 1,
    progress: bool = True,
) -> TaskData:
    """PTB-XL records with the labels of one label set and the recommended split (see the module notes).

    The 100 Hz files are read for ``fs <= 100`` and the 500 Hz files otherwise, each resampled to
    ``fs`` when it differs; database rows whose files are absent at that rate (a subset) are left out.
    """
    if label_set not in LABEL_SETS:
        raise DatasetError(f"unknown PTB-XL label set {label_set!r}; label sets: {', '.join(LABEL_SETS)}")
    db = PTBXL(root, fs=100 if fs <= 100 else 500, missing="drop")
    matrix = db.labels(label_set)
    folds = db.records.set_index("record_id").loc[matrix.record_ids, "fold"].to_numpy(dtype=int)
    keep, dropped = ptbxl_class_filter(
        matrix.y,
        folds,
        matrix.classes,
        min_train_positives=min_train_positives,
        min_eval_positives=min_eval_positives,
    )
    if not keep.any():
        raise DatasetError(f"{root}: no {label_set} class has enough positives in the recommended folds ({dropped})")
    classes = [c for c, k in zip(matrix.classes, keep, strict=True) if k]
    y = matrix.y[:, keep]
    has_label = y.any(axis=1)  # as published: records left without a class are dropped
    ids = [r for r, h in zip(matrix.record_ids, has_label, strict=True) if h]
    y, folds = y[has_label], folds[has_label]
    signals = [
        _read_12lead(db, rid, fs)
        for rid in tqdm(ids, desc=f"reading PTB-XL ({fs:g} Hz)", disable=not progress, unit="rec")
    ]
    split_of = {f: name for name, fs_ in RECOMMENDED_FOLDS.items() for f in fs_}
    return TaskData(
        signals=signals,
        targets=y.astype(np.float32),
        item_ids=np.array(ids),
        groups=db.records.set_index("record_id").loc[ids, "patient_id"].to_numpy(dtype=str),
        strata=rarest_label(y, classes),
        fs=fs,
        leads=list(STANDARD_12_LEADS),
        info={
            "dataset": str(root),
            "label_set": label_set,
            "classes": classes,
            "descriptions": {c: matrix.descriptions.get(c, "") for c in classes},
            "positives": dict(zip(classes, y.sum(axis=0).astype(int).tolist(), strict=True)),
            "dropped_classes": dropped,
            "records_without_kept_class": int((~has_label).sum()),
            "split": {rid: split_of.get(int(f), "") for rid, f in zip(ids, folds, strict=True)},
            "records_read_at": f"{db.fs} Hz",
        },
    )


# -- CinC 2021 ------------------------------------------------------------------------------------
def load_cinc2021(
    root: Path,
    fs: float,
    *,
    classes: str | list[str] = "scored",
    min_positives: int = 5,
    progress: bool = True,
) -> TaskData:
    """CinC 2020/2021 records with SNOMED-CT labels (scored codes, equivalent pairs merged).

    Records without the 12 standard leads or unreadable ones are skipped and listed in
    ``info["skipped"]``; records with none of the kept classes stay, as all-negative rows (the
    challenge scores them too).
    """
    db = CinC2021(root)
    matrix = db.labels(classes)
    counts = matrix.y.sum(axis=0)
    keep = counts >= min_positives
    dropped = {c: int(n) for c, n, k in zip(matrix.classes, counts, keep, strict=True) if not k and n > 0}
    if not keep.any():
        raise DatasetError(
            f"{root}: no class has {min_positives} or more positive records (counts: "
            f"{dict(zip(matrix.classes, counts.tolist(), strict=True))})"
        )
    kept = [c for c, k in zip(matrix.classes, keep, strict=True) if k]
    signals, rows, skipped = [], [], []
    for i, rid in enumerate(
        tqdm(matrix.record_ids, desc=f"reading CinC 2021 ({fs:g} Hz)", disable=not progress, unit="rec")
    ):
        try:
            signals.append(_read_12lead(db, rid, fs))
        except CardiolensError as exc:
            skipped.append(f"{rid}: {exc}")
            continue
        rows.append(i)
    if not rows:
        raise DatasetError(f"{root}: no readable 12-lead record ({skipped[:3]})")
    y = matrix.y[rows][:, keep]
    ids = [matrix.record_ids[i] for i in rows]
    return TaskData(
        signals=signals,
        targets=y.astype(np.float32),
        item_ids=np.array(ids),
        groups=np.array(ids),
        strata=rarest_label(y, kept),
        fs=fs,
        leads=list(STANDARD_12_LEADS),
        info={
            "dataset": str(root),
            "classes": kept,
            "descriptions": {c: matrix.descriptions.get(c, "") for c in kept},
            "positives": dict(zip(kept, y.sum(axis=0).astype(int).tolist(), strict=True)),
            "dropped_classes": dropped,
            "min_positives": min_positives,
            "records_without_kept_class": int((y.sum(axis=1) == 0).sum()),
            "sources": db.records.set_index("record_id").loc[ids, "source"].value_counts().to_dict(),
            "skipped": skipped,
        },
    )


# -- scores ---------------------------------------------------------------------------------------
def multilabel_score(targets: Any, probs: Any, thresholds: Any = None) -> dict[str, float]:
    """Macro and micro AUROC, macro AUPRC, Fmax, and macro F1 at ``thresholds`` (0.5 by default).

    AUROC and AUPRC average over the classes with both values present (NaN when there is none);
    F1 averages over all classes (a class with no positive and no prediction counts as 0).

    Example:
        >>> s = multilabel_score([[1, 0], [0, 1], [1, 1], [0, 0]], [[.9, .2], [.1, .8], [.7, .6], [.2, .1]])
        >>> s["macro_auroc"], s["macro_f1"]
        (1.0, 1.0)
    """
    y = np.asarray(targets).astype(int)
    p = np.asarray(probs, dtype=np.float64).reshape(y.shape)
    t = np.full(y.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    return {
        "macro_auroc": or_nan(auroc, y, p),
        "micro_auroc": or_nan(lambda a, b: auroc(a, b, average="micro"), y, p),
        "macro_auprc": or_nan(auprc, y, p),
        "fmax": or_nan(lambda a, b: fmax(a, b)[0], y, p),
        "macro_f1": float(f1_score(y, (p >= t[None, :]).astype(int), average="macro", zero_division=0)),
    }


def multilabel_report(targets: Any, probs: Any, classes: list[str], thresholds: Any = None) -> dict[str, Any]:
    """Scores plus per-class AUROC, positives and F1 at the thresholds, as plain JSON values."""
    y = np.asarray(targets).astype(int)
    p = np.asarray(probs, dtype=np.float64).reshape(y.shape)
    t = np.full(y.shape[1], 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    f1 = f1_score(y, (p >= t[None, :]).astype(int), average=None, zero_division=0)
    per_class = {
        c: {"positives": int(y[:, j].sum()), "auroc": float(a), "f1": float(f), "threshold": float(t[j])}
        for j, (c, a, f) in enumerate(zip(classes, per_class_auroc(y, p), f1, strict=True))
    }
    return {**multilabel_score(y, p, thresholds), "per_class": per_class}


# -- registration ---------------------------------------------------------------------------------
def _ptbxl_loader(label_set: str) -> Any:
    def load(root: Path, fs: float, **options: Any) -> TaskData:
        return load_ptbxl(root, fs, label_set=label_set, **options)

    load.__name__ = f"load_ptbxl_{label_set}"
    load.__doc__ = f"PTB-XL {label_set} labels; see :func:`load_ptbxl`."
    # load_ptbxl's options but label_set (fixed here), so that load_task_data can name an unknown one
    full = inspect.signature(load_ptbxl)
    load.__signature__ = full.replace(parameters=[v for k, v in full.parameters.items() if k != "label_set"])
    return load


PTBXL_TASKS = {
    label_set: register_task(
        Task(
            name=f"ptbxl-{label_set}",
            kind="multilabel",
            description=f"PTB-XL 12-lead ECG, {label_set} statements (multi-label)",
            modality="ECG",
            fs=100.0,
            window_seconds=WINDOW_SECONDS,
            min_seconds=5.0,
            classes=None,
            load=_ptbxl_loader(label_set),
            score=multilabel_score,
            score_key="macro_auroc",
            folds=10,
            protocol=PTBXL_PROTOCOL,
            dataset="PTB-XL folder (ptbxl_database.csv, scp_statements.csv, records100/ or records500/)",
        )
    )
    for label_set in LABEL_SETS
}

CINC2021_DX = register_task(
    Task(
        name="cinc2021-dx",
        kind="multilabel",
        description="PhysioNet/CinC 2021 12-lead ECG, scored SNOMED-CT diagnoses (multi-label)",
        modality="ECG",
        fs=100.0,
        window_seconds=WINDOW_SECONDS,
        min_seconds=5.0,
        classes=None,
        load=load_cinc2021,
        score=multilabel_score,
        score_key="macro_auroc",
        folds=5,
        protocol=CINC2021_PROTOCOL,
        dataset="CinC 2020/2021 folder of WFDB .hea/.mat records (with dx_mapping_scored_and_unscored.csv)",
    )
)


def ptbxl_task(label_set: str) -> Task:
    """The task of one PTB-XL label set; the error lists the label sets.

    Example:
        >>> ptbxl_task("superdiagnostic").name
        'ptbxl-superdiagnostic'
    """
    if label_set not in PTBXL_TASKS:
        raise CardiolensError(f"unknown PTB-XL label set {label_set!r}; label sets: {', '.join(LABEL_SETS)}")
    return get_task(f"ptbxl-{label_set}")


__all__ = [
    "CINC2021_DX",
    "PTBXL_TASKS",
    "load_cinc2021",
    "load_ptbxl",
    "multilabel_report",
    "multilabel_score",
    "ptbxl_class_filter",
    "ptbxl_task",
    "rarest_label",
    "standard_lead_order",
]
