"""Patient-grouped splits: train/val/test and k-fold, stratified where the labels allow, seeded.

Every function takes a catalogue or a DataFrame with ``record_id`` and ``patient_id`` columns, so a
patient's records always land on the same side. Folds come from scikit-learn's ``GroupKFold`` /
``StratifiedGroupKFold`` (shuffled with the seed); fractions are therefore met approximately, at the
granularity of whole patients and folds (``test=0.1`` is one fold of ten).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from cardiolens.datasets.base import Catalogue
from cardiolens.errors import DatasetError

SPLIT_NAMES = ("train", "val", "test")


def _table(data: Catalogue | pd.DataFrame) -> pd.DataFrame:
    frame = data.records if isinstance(data, Catalogue) else data
    lacking = [c for c in ("record_id", "patient_id") if c not in frame.columns]
    if lacking:
        raise DatasetError(f"splitting needs columns record_id and patient_id; {', '.join(lacking)} missing")
    return frame


def _strata(data: Catalogue | pd.DataFrame, stratify: bool | Sequence[Any] | np.ndarray | str) -> np.ndarray | None:
    """One label per record for stratification, or None for grouping only."""
    if stratify is False or stratify is None:
        return None
    if isinstance(stratify, str):
        frame = _table(data)
        if stratify not in frame.columns:
            raise DatasetError(f"no column {stratify!r} to stratify on")
        return frame[stratify].astype(str).to_numpy()
    if stratify is True:
        if isinstance(data, Catalogue):
            return data.stratify_labels()
        return None
    labels = np.asarray(stratify).astype(str)
    if len(labels) != len(_table(data)):
        raise DatasetError(f"stratify has {len(labels)} labels for {len(_table(data))} records")
    return labels


def _folds(groups: np.ndarray, labels: np.ndarray | None, n_splits: int, seed: int) -> np.ndarray:
    """A fold number (0..n_splits-1) per record, whole patients per fold."""
    n_groups = len(np.unique(groups))
    if n_splits < 2:
        raise DatasetError(f"need at least 2 folds, not {n_splits}")
    if n_groups < n_splits:
        raise DatasetError(f"cannot make {n_splits} patient-grouped folds from {n_groups} patients")
    fold = np.full(len(groups), -1, dtype=np.int64)
    x = np.zeros((len(groups), 1))
    if labels is not None and _stratifiable(labels, n_splits):
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        parts = splitter.split(x, labels, groups)
    else:
        splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        parts = splitter.split(x, None, groups)
    with warnings.catch_warnings():
        # a class rarer than the folds cannot reach every fold; spreading it as far as it goes is the intent
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for k, (_, test) in enumerate(parts):
            fold[test] = k
    return fold


def _stratifiable(labels: np.ndarray, n_splits: int) -> bool:
    """Stratification helps only when at least one class has a member for every fold."""
    return pd.Series(labels).value_counts().max() >= n_splits


def grouped_kfold(
    data: Catalogue | pd.DataFrame,
    n_splits: int = 5,
    *,
    seed: int = 0,
    stratify: bool | Sequence[Any] | np.ndarray | str = True,
) -> pd.Series:
    """Assign every record to one of ``n_splits`` patient-grouped folds.

    Args:
        data: a catalogue, or a DataFrame with ``record_id`` and ``patient_id``.
        n_splits: number of folds.
        seed: shuffling seed; the same seed gives the same folds.
        stratify: True uses the catalogue's single label per record where it has one
            (:meth:`Catalogue.stratify_labels`), False groups only, a column name or one label per
            record stratifies on those.

    Returns:
        A Series of fold numbers (0..n_splits-1) indexed by record id.

    Example:
        >>> folds = grouped_kfold(db, 5, seed=0)  # doctest: +SKIP
        >>> test_ids = folds.index[folds == 0]
    """
    frame = _table(data)
    groups = frame["patient_id"].astype(str).to_numpy()
    fold = _folds(groups, _strata(data, stratify), n_splits, seed)
    return pd.Series(fold, index=pd.Index(frame["record_id"].astype(str), name="record_id"), name="fold")


def patient_split(
    data: Catalogue | pd.DataFrame,
    *,
    val: float = 0.1,
    test: float = 0.1,
    seed: int = 0,
    stratify: bool | Sequence[Any] | np.ndarray | str = True,
) -> dict[str, list[str]]:
    """Split records into train/val/test with no patient on two sides.

    The test set is one fold of ``round(1 / test)`` patient-grouped (stratified where possible) folds;
    the validation set is one such fold of the rest.

    Args:
        data: a catalogue, or a DataFrame with ``record_id`` and ``patient_id``.
        val: approximate fraction of records for validation (0 for none).
        test: approximate fraction of records for testing.
        seed: the same seed gives the same split.
        stratify: as in :func:`grouped_kfold`.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` record ids.
    """
    if not 0 < test < 1 or not 0 <= val < 1 or val + test >= 1:
        raise DatasetError(
            f"fractions must satisfy 0 < test < 1, 0 <= val and val + test < 1 (got val={val}, test={test})"
        )
    frame = _table(data)
    ids = frame["record_id"].astype(str).to_numpy()
    groups = frame["patient_id"].astype(str).to_numpy()
    labels = _strata(data, stratify)
    k_test = max(2, round(1 / test))
    is_test = _folds(groups, labels, k_test, seed) == 0
    out = {"test": ids[is_test].tolist()}
    rest = ~is_test
    if val > 0:
        k_val = max(2, round((1 - test) / val))
        rest_labels = None if labels is None else labels[rest]
        is_val = _folds(groups[rest], rest_labels, k_val, seed + 1) == 0
        out["val"] = ids[rest][is_val].tolist()
        out["train"] = ids[rest][~is_val].tolist()
    else:
        out["val"] = []
        out["train"] = ids[rest].tolist()
    check_patient_disjoint(out, data)
    return {name: out[name] for name in SPLIT_NAMES}


def _patient_map(patients: Catalogue | pd.DataFrame | Mapping[str, str] | pd.Series) -> Mapping[str, str]:
    if isinstance(patients, Catalogue):
        patients = patients.records
    if isinstance(patients, pd.DataFrame):
        table = _table(patients)
        return dict(zip(table["record_id"].astype(str), table["patient_id"].astype(str), strict=True))
    if isinstance(patients, pd.Series):
        return {str(k): str(v) for k, v in patients.items()}
    return {str(k): str(v) for k, v in patients.items()}


def leaking_patients(
    splits: Mapping[str, Sequence[str]], patients: Catalogue | pd.DataFrame | Mapping[str, str] | pd.Series
) -> dict[str, list[str]]:
    """Patients whose records fall in more than one split: ``{patient_id: [split names]}``.

    Args:
        splits: record ids per split name.
        patients: where to look up each record's patient: a catalogue, a DataFrame with
            ``record_id``/``patient_id``, or a mapping record id -> patient id.
    """
    patient_of = _patient_map(patients)
    seen: dict[str, set[str]] = {}
    for name, record_ids in splits.items():
        for rid in record_ids:
            rid = str(rid)
            if rid not in patient_of:
                raise DatasetError(f"record {rid!r} of split {name!r} has no known patient")
            seen.setdefault(patient_of[rid], set()).add(name)
    return {p: sorted(names) for p, names in seen.items() if len(names) > 1}


def check_patient_disjoint(
    splits: Mapping[str, Sequence[str]], patients: Catalogue | pd.DataFrame | Mapping[str, str] | pd.Series
) -> None:
    """Raise a DatasetError when any patient has records in two splits (see :func:`leaking_patients`)."""
    leaks = leaking_patients(splits, patients)
    if leaks:
        shown = "; ".join(f"{p} in {', '.join(s)}" for p, s in list(leaks.items())[:5])
        more = f" (and {len(leaks) - 5} more)" if len(leaks) > 5 else ""
        raise DatasetError(f"{len(leaks)} patients cross splits: {shown}{more}")


def folds_to_splits(folds: pd.Series, test_fold: int, val_fold: int | None = None) -> dict[str, list[str]]:
    """Turn fold numbers (from :func:`grouped_kfold` or a published fold column) into a split dict."""
    index = folds.index.astype(str)
    test = index[folds.to_numpy() == test_fold].tolist()
    val = [] if val_fold is None else index[folds.to_numpy() == val_fold].tolist()
    excluded = {test_fold} | ({val_fold} if val_fold is not None else set())
    train = index[~np.isin(folds.to_numpy(), list(excluded))].tolist()
    return {"train": train, "val": val, "test": test}
