"""Patient-grouped splits: no patient on two sides, seeded, stratified where labels allow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cardiolens.datasets import (
    PTBXL,
    CinC2017,
    check_patient_disjoint,
    folds_to_splits,
    grouped_kfold,
    leaking_patients,
    patient_split,
)
from cardiolens.errors import DatasetError


def _records(n_patients: int = 60, seed: int = 0) -> pd.DataFrame:
    """1-4 records per patient; a label that mostly follows the patient (as diagnoses do)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        label = "AF" if p % 4 == 0 else "N"
        for k in range(int(rng.integers(1, 5))):
            rows.append({"record_id": f"r{p}_{k}", "patient_id": f"p{p}", "label": label})
    return pd.DataFrame(rows)


def _patients_of(frame: pd.DataFrame, ids: list[str]) -> set[str]:
    return set(frame.set_index("record_id").loc[ids, "patient_id"])


def test_patient_split_keeps_patients_on_one_side() -> None:
    frame = _records()
    split = patient_split(frame, val=0.2, test=0.2, seed=3, stratify=False)
    assert sorted(sum(split.values(), [])) == sorted(frame["record_id"])  # every record exactly once
    train, val, test = (_patients_of(frame, split[k]) for k in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert len(test) == 12 and len(val) == 12  # 60 patients: one fold of 5, then one fold of 4
    assert leaking_patients(split, frame) == {}


def test_patient_split_is_seeded() -> None:
    frame = _records()
    assert patient_split(frame, seed=1) == patient_split(frame, seed=1)
    assert patient_split(frame, seed=1)["test"] != patient_split(frame, seed=2)["test"]


def test_grouped_kfold_stratifies_by_label() -> None:
    frame = _records(n_patients=80)
    folds = grouped_kfold(frame, 4, seed=0, stratify="label")
    assert sorted(folds.unique()) == [0, 1, 2, 3]
    by_patient = frame.assign(fold=folds.to_numpy()).groupby("patient_id")["fold"].nunique()
    assert (by_patient == 1).all()
    af_share = frame.assign(fold=folds.to_numpy()).groupby("fold")["label"].apply(lambda s: (s == "AF").mean())
    overall = (frame["label"] == "AF").mean()
    assert (af_share - overall).abs().max() < 0.12
    splits = folds_to_splits(folds, test_fold=0, val_fold=1)
    check_patient_disjoint(splits, frame)
    assert len(splits["train"]) + len(splits["val"]) + len(splits["test"]) == len(frame)


def test_leaks_are_found_and_reported() -> None:
    frame = _records()
    p0 = frame.loc[frame["patient_id"] == "p1", "record_id"].tolist()
    assert len(p0) >= 2
    bad = {"train": [p0[0]], "test": p0[1:]}
    assert leaking_patients(bad, frame) == {"p1": ["test", "train"]}
    with pytest.raises(DatasetError, match="1 patients cross splits: p1 in test, train"):
        check_patient_disjoint(bad, frame)
    with pytest.raises(DatasetError, match="no known patient"):
        leaking_patients({"train": ["nope"]}, frame)


def test_bad_split_arguments() -> None:
    frame = _records(n_patients=3)
    with pytest.raises(DatasetError, match="cannot make 10 patient-grouped folds from 3 patients"):
        patient_split(frame, test=0.1)
    with pytest.raises(DatasetError, match="fractions"):
        patient_split(frame, val=0.6, test=0.5)
    with pytest.raises(DatasetError, match="record_id and patient_id"):
        grouped_kfold(frame.drop(columns="patient_id"), 2)


def test_catalogue_splits_on_fixtures(tiny_ptbxl: Path, tiny_cinc2017: Path) -> None:
    db = PTBXL(tiny_ptbxl)
    folds = grouped_kfold(db, 2, seed=0)
    # ecg 1 and 2 share patient 10
    assert folds["1"] == folds["2"]
    assert grouped_kfold(CinC2017(tiny_cinc2017), 2, seed=0).index.tolist() == ["A00001", "A00002", "A00003", "A00004"]


@pytest.mark.realdata
def test_real_ptbxl_random_split_has_no_leak(ptbxl_dir: Path) -> None:
    db = PTBXL(ptbxl_dir)
    split = patient_split(db, seed=0)
    # patients with several ECGs exist in this subset, so the grouping is exercised
    assert db.records["patient_id"].duplicated().any()
    patient = dict(zip(db.records["record_id"], db.records["patient_id"], strict=True))
    sides = [{patient[r] for r in split[k]} for k in ("train", "val", "test")]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert 30 <= len(split["test"]) <= 70


@pytest.mark.realdata
def test_real_cinc2017_folds_are_stratified(cinc2017_dir: Path) -> None:
    db = CinC2017(cinc2017_dir)
    folds = grouped_kfold(db, 5, seed=0)
    table = pd.crosstab(folds.to_numpy(), db.records["label"].to_numpy())
    # each fold holds about a fifth of every class (AF: 444 -> ~89 per fold)
    assert (table["A"] - 444 / 5).abs().max() <= 3
    assert (table.sum(axis=1) - 1000).abs().max() <= 5


def test_a_class_rarer_than_the_folds_is_spread_without_a_warning() -> None:
    import warnings as _warnings

    from cardiolens.datasets.splits import _folds

    groups, labels = np.arange(100), np.array(["a"] * 95 + ["b"] * 5)
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")  # scikit-learn's "least populated class" warning would fail here
        fold = _folds(groups, labels, 10, 0)
    assert np.bincount(fold).tolist() == [10] * 10
    assert len(set(fold[labels == "b"])) == 5  # the five rare records in five different folds
