"""PTB-XL catalogue: the real subset (facts from the published files) and tiny fixtures for label logic."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from cardiolens.datasets import PTBXL, check_patient_disjoint
from cardiolens.errors import DatasetError

# -- the real subset ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ptbxl(ptbxl_dir: Path) -> PTBXL:
    return PTBXL(ptbxl_dir)


@pytest.mark.realdata
def test_subset_counts_folds_and_patients(ptbxl: PTBXL) -> None:
    assert len(ptbxl) == 500
    assert ptbxl.n_patients == 466
    split = ptbxl.recommended_split()
    assert {k: len(v) for k, v in split.items()} == {"train": 353, "val": 81, "test": 66}
    assert set(ptbxl.records.loc[ptbxl.records["record_id"].isin(split["val"]), "fold"]) == {9}
    check_patient_disjoint(split, ptbxl)  # the published folds keep each patient in one fold
    assert ptbxl.patient_of(1) == "15709"


@pytest.mark.realdata
def test_ecg1_is_norm_at_100hz_with_the_values_wfdb_reads(ptbxl: PTBXL, ptbxl_dir: Path) -> None:
    super_labels = ptbxl.label_lists("superdiagnostic")
    assert super_labels["1"] == ["NORM"]
    record = ptbxl.load(1)
    assert record.fs == 100 and record.signal.shape == (12, 1000)
    assert record.metadata["patient_id"] == "15709" and record.metadata["dataset"] == "ptbxl"
    reference, _ = wfdb.rdsamp(str(ptbxl_dir / "records100" / "00000" / "00001_lr"))
    assert reference[0, 0] == pytest.approx(-0.119)
    np.testing.assert_allclose(record.signal, reference.T, atol=1e-6)


@pytest.mark.realdata
def test_label_sets_follow_the_published_aggregation(ptbxl: PTBXL, ptbxl_dir: Path) -> None:
    # recomputed here straight from the two CSV files, as compute_label_aggregations does
    db = pd.read_csv(ptbxl_dir / "ptbxl_database.csv")
    statements = pd.read_csv(ptbxl_dir / "scp_statements.csv", index_col=0)
    diag = statements[statements.diagnostic == 1.0]
    expected_super: dict[str, int] = {}
    expected_rhythm: set[str] = set()
    for codes in db.scp_codes.map(ast.literal_eval):
        classes = {diag.loc[k].diagnostic_class for k in codes if k in diag.index}
        for c in classes:
            expected_super[c] = expected_super.get(c, 0) + 1
        expected_rhythm |= {k for k in codes if k in statements.index and statements.loc[k, "rhythm"] == 1.0}
    y = ptbxl.labels("superdiagnostic")
    assert y.classes == ["CD", "HYP", "MI", "NORM", "STTC"]
    assert y.counts().to_dict() == expected_super
    assert ptbxl.labels("rhythm").classes == sorted(expected_rhythm)
    all_codes = ptbxl.labels("all")
    assert len(all_codes) == 500  # every record has at least one statement
    assert all_codes.y.sum() == sum(len(ast.literal_eval(c)) for c in db.scp_codes)


@pytest.mark.realdata
def test_likelihood_zero_statements_count_as_published(ptbxl: PTBXL) -> None:
    # ecg 351 is {'AFIB': 100, 'NST_': 0}: the published code makes it STTC although NST_ has
    # likelihood 0; filtering on likelihood leaves it without a diagnostic superclass
    assert ptbxl.row(351)["scp_codes"] == {"AFIB": 100.0, "NST_": 0.0}
    assert ptbxl.label_lists("superdiagnostic")["351"] == ["STTC"]
    assert ptbxl.label_lists("superdiagnostic", min_likelihood=1)["351"] == []
    assert "351" in ptbxl.labels("superdiagnostic").record_ids
    assert "351" not in ptbxl.labels("superdiagnostic", min_likelihood=1).record_ids


@pytest.mark.realdata
def test_500hz_subset_is_refused_or_filtered(ptbxl_dir: Path) -> None:
    with pytest.raises(DatasetError, match=r"450 of 500 records .* no 500 Hz files.*missing='drop'") as info:
        PTBXL(ptbxl_dir, fs=500)
    assert str(ptbxl_dir) in str(info.value)
    high = PTBXL(ptbxl_dir, fs=500, missing="drop")
    assert len(high) == 50 and high.records["record_id"].astype(int).max() == 50
    record = high.load(1)
    assert record.fs == 500 and record.signal.shape == (12, 5000)
    with pytest.raises(DatasetError, match="no record '51'"):
        high.load(51)
    assert any("450" in note for note in high.notes)


# -- tiny fixtures ------------------------------------------------------------------------------


def test_label_sets_on_a_fixture(tiny_ptbxl: Path) -> None:
    db = PTBXL(tiny_ptbxl)
    assert len(db) == 4 and db.n_patients == 3
    lists = {s: db.label_lists(s).to_dict() for s in ("all", "diagnostic", "subdiagnostic", "superdiagnostic")}
    assert lists["all"]["2"] == ["IMI", "NST_", "SR"]
    assert lists["diagnostic"]["2"] == ["IMI", "NST_"]
    assert lists["superdiagnostic"]["2"] == ["MI", "STTC"]
    assert lists["superdiagnostic"]["3"] == ["HYP"]
    assert db.label_lists("form").to_dict() == {"1": [], "2": ["NST_"], "3": ["LVOLT"], "4": ["PVC"]}
    assert db.label_lists("rhythm").to_dict() == {"1": ["SR"], "2": ["SR"], "3": ["AFIB"], "4": ["SR"]}

    y = db.labels("superdiagnostic")
    assert y.classes == ["HYP", "MI", "NORM", "STTC"]
    assert y.to_frame().loc["2"].tolist() == [0, 1, 0, 1]
    assert y.descriptions["MI"] == "myocardial infarction"


def test_min_samples_and_drop_empty_as_published(tiny_ptbxl: Path) -> None:
    db = PTBXL(tiny_ptbxl)
    # classes must occur in MORE than min_samples records: only NORM (2 records) survives
    y = db.labels("superdiagnostic", min_samples=1)
    assert y.classes == ["NORM"] and y.record_ids == ["1", "4"]
    # the published code never filters the 'diagnostic' set by min_samples
    assert db.labels("diagnostic", min_samples=1).classes == ["IMI", "LVH", "NORM", "NST_"]
    form = db.labels("form")
    assert form.record_ids == ["2", "3", "4"]
    kept = db.labels("form", drop_empty=False)
    assert kept.record_ids == ["1", "2", "3", "4"] and kept.y[0].sum() == 0
    with pytest.raises(DatasetError, match="unknown PTB-XL label set"):
        db.labels("diagnosis")


def test_recommended_split_and_500hz_on_a_fixture(tiny_ptbxl: Path) -> None:
    db = PTBXL(tiny_ptbxl)
    assert db.recommended_split() == {"train": ["1", "2"], "val": ["4"], "test": ["3"]}
    with pytest.raises(DatasetError, match="2 of 4 records"):
        PTBXL(tiny_ptbxl, fs=500)
    assert PTBXL(tiny_ptbxl, fs=500, missing="drop").record_ids == ["1", "2"]
    with pytest.raises(DatasetError, match="100 or 500 Hz"):
        PTBXL(tiny_ptbxl, fs=250)


@pytest.mark.parametrize("remove", ["scp_statements.csv", "ptbxl_database.csv", "records100"])
def test_missing_parts_name_the_folder(tiny_ptbxl: Path, remove: str) -> None:
    target = tiny_ptbxl / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetError, match=remove.replace(".", r"\.")) as info:
        PTBXL(tiny_ptbxl)
    assert str(tiny_ptbxl) in str(info.value)


def test_bad_database_columns_and_codes(tiny_ptbxl: Path) -> None:
    db_csv = tiny_ptbxl / "ptbxl_database.csv"
    text = db_csv.read_text()
    db_csv.write_text(text.replace("strat_fold", "fold"))
    with pytest.raises(DatasetError, match="strat_fold"):
        PTBXL(tiny_ptbxl)
    db_csv.write_text(text.replace("{'NORM': 100.0, 'SR': 0.0}", "NORM"))
    with pytest.raises(DatasetError, match="ecg_id 1: bad scp_codes"):
        PTBXL(tiny_ptbxl)
