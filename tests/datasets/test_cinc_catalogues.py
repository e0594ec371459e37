"""CinC 2017, CinC 2020/2021 and CPSC 2018 catalogues on the real samples and on tiny fixtures."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import wfdb

from cardiolens.datasets import CPSC2018, CinC2017, CinC2021, source_database
from cardiolens.errors import DatasetError

# -- CinC 2017 ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cinc2017(cinc2017_dir: Path) -> CinC2017:
    return CinC2017(cinc2017_dir)


@pytest.mark.realdata
def test_cinc2017_counts_match_reference_csv(cinc2017: CinC2017, cinc2017_dir: Path) -> None:
    with open(cinc2017_dir / "REFERENCE.csv", newline="") as fh:
        reference = dict(csv.reader(fh))
    assert len(cinc2017) == len(reference) == 5000
    assert cinc2017.class_counts() == dict(Counter(reference.values()))
    assert cinc2017.class_counts() == {"N": 2976, "A": 444, "O": 1416, "~": 164}
    y = cinc2017.labels()
    assert y.classes == ["N", "A", "O", "~"] and (y.y.sum(axis=1) == 1).all()
    assert y.counts().to_dict() == cinc2017.class_counts()
    # no patient ids published: every record is its own patient, and the catalogue says so
    assert cinc2017.n_patients == 5000 and (cinc2017.records["patient_id"] == cinc2017.records["record_id"]).all()
    assert any("no patient ids" in note for note in cinc2017.summary()["notes"].values())


@pytest.mark.realdata
def test_cinc2017_first_record_loads_like_wfdb(cinc2017: CinC2017, cinc2017_dir: Path) -> None:
    # A00001/A00002 are among the held-out records; A00003 is the first one of this subset
    assert "A00001" not in cinc2017
    with pytest.raises(DatasetError, match="no record 'A00001'"):
        cinc2017.load("A00001")
    row = cinc2017.row("A00003")
    assert row["label"] == "N" and row["fs"] == 300
    record = cinc2017.load("A00003")
    reference, fields = wfdb.rdsamp(str(cinc2017_dir / "A00003"))
    assert record.fs == 300 and record.leads == ["ECG"]
    assert record.n_samples == fields["sig_len"] == 18000
    np.testing.assert_allclose(record.signal[0], reference[:, 0], atol=1e-6)
    assert cinc2017.load("A00004").n_samples == wfdb.rdheader(str(cinc2017_dir / "A00004")).sig_len


def test_cinc2017_fixture_and_bad_layouts(tiny_cinc2017: Path, tmp_path: Path) -> None:
    db = CinC2017(tiny_cinc2017.parent)  # the folder holding training2017 works too
    assert db.root == tiny_cinc2017 and db.record_ids == ["A00001", "A00002", "A00003", "A00004"]
    assert db.class_counts() == {"N": 1, "A": 1, "O": 1, "~": 1}
    # a subset of the dataset (records copied with the full REFERENCE.csv) lists the records present and
    # says how many rows have none; it used to be refused, unlike MIT-BIH subsets and predict/features
    (tiny_cinc2017 / "A00002.hea").unlink()
    subset = CinC2017(tiny_cinc2017)
    assert subset.record_ids == ["A00001", "A00003", "A00004"] and subset.class_counts()["A"] == 0
    assert any("1 of the 4 records in REFERENCE.csv have no .hea header here (A00002)" in n for n in subset.notes)
    for name in ("A00001", "A00003", "A00004"):
        (tiny_cinc2017 / f"{name}.hea").rename(tiny_cinc2017 / f"{name}.hea.bak")
    with pytest.raises(DatasetError, match=r"none of the 4 records in REFERENCE.csv has a .hea header"):
        CinC2017(tiny_cinc2017)
    (tiny_cinc2017 / "REFERENCE.csv").write_text("A00001,X\n")
    with pytest.raises(DatasetError, match="label 'X'"):
        CinC2017(tiny_cinc2017)
    (tiny_cinc2017 / "REFERENCE.csv").unlink()
    with pytest.raises(DatasetError, match="missing REFERENCE.csv") as info:
        CinC2017(tiny_cinc2017)
    assert str(tiny_cinc2017) in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="folder is empty") as info:
        CinC2017(empty)
    assert str(empty) in str(info.value)
    with pytest.raises(DatasetError, match="does not exist"):
        CinC2017(tmp_path / "nowhere")


# -- CinC 2020/2021 -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cinc2021(cinc2021_dir: Path) -> CinC2021:
    return CinC2021(cinc2021_dir)


@pytest.mark.realdata
def test_cinc2021_sources_and_codes(cinc2021: CinC2021, cinc2021_dir: Path) -> None:
    assert len(cinc2021) == 50
    assert cinc2021.records["source"].value_counts().to_dict() == {"Georgia": 20, "Ningbo": 20, "PTB-XL": 10}
    assert set(cinc2021.records.loc[cinc2021.records["source"] == "PTB-XL", "record_id"].str[:2]) == {"HR"}
    # E07500's header: "# Dx: 67741000119109,426177001", "# Age: 78", "# Sex: Male"
    header = wfdb.rdheader(str(cinc2021_dir / "E07500"))
    dx_line = next(c for c in header.comments if c.startswith("Dx"))
    row = cinc2021.row("E07500")
    assert row["dx"] == dx_line.split(":")[1].strip().split(",") == ["67741000119109", "426177001"]
    assert row["age"] == 78 and row["sex"] == "Male"
    assert cinc2021.code_name("426177001") == "sinus bradycardia"
    assert cinc2021.code_abbreviation("426177001") == "SB"
    assert row["dx_abbreviations"] == ["LAE", "SB"]
    with pytest.raises(DatasetError, match="not in the mapping"):
        cinc2021.code_name("1")


@pytest.mark.realdata
def test_cinc2021_scored_labels_merge_equivalent_codes(cinc2021: CinC2021) -> None:
    scored = cinc2021.labels("scored")
    assert len(scored.classes) == 26  # 30 scored codes, 4 equivalent pairs counted once
    assert "284470004|63593006" in scored.classes and scored.descriptions["284470004|63593006"] == "PAC|SVPB"
    unmerged = cinc2021.labels("scored", merge_equivalent=False)
    assert len(unmerged.classes) == 30
    # every record with a PAC or SVPB code has the merged class
    has_pac = [any(c in ("284470004", "63593006") for c in dx) for dx in cinc2021.records["dx"]]
    assert scored.to_frame()["284470004|63593006"].astype(bool).tolist() == has_pac
    everything = cinc2021.labels("all", merge_equivalent=False)
    assert everything.y.sum() == sum(len(set(dx)) for dx in cinc2021.records["dx"])
    # a code that is nowhere is named as unknown, with the scored codes listed
    with pytest.raises(DatasetError, match=r"unknown SNOMED-CT code\(s\) bogus_label.*164889003 \(AF\)"):
        cinc2021.labels(["bogus_label"])
    assert cinc2021.labels(["164889003"]).classes == ["164889003"]
    # the mapping's abbreviations stand for their codes, in any case
    assert cinc2021.labels(["AF", "nsr"], merge_equivalent=False).classes == ["164889003", "426783006"]
    record = cinc2021.load("HR06000")
    assert record.fs == 500 and record.n_channels == 12
    assert record.metadata["record_id"] == "HR06000" and record.units == ["mV"] * 12


@pytest.mark.realdata
def test_cinc2021_mapping_argument_and_builtin_fallback(cinc2021_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "records"
    data.mkdir()
    for name in ("E07500", "JS20000"):
        for ext in (".hea", ".mat"):
            shutil.copy(cinc2021_dir / f"{name}{ext}", data)
    fallback = CinC2021(data)  # no mapping beside it: scored codes still named by abbreviation
    assert fallback.mapping_path is None and any("no SNOMED-CT mapping" in n for n in fallback.notes)
    assert fallback.code_abbreviation("426177001") == "SB"
    assert len(fallback.labels().classes) == 26
    elsewhere = tmp_path / "maps" / "dx_mapping_scored_and_unscored.csv"
    elsewhere.parent.mkdir()
    shutil.copy(cinc2021_dir / "dx_mapping_scored_and_unscored.csv", elsewhere)
    named = CinC2021(data, mapping=elsewhere)
    assert named.code_name("67741000119109") == "left atrial enlargement"
    assert named.records["source"].tolist() == ["Georgia", "Ningbo"]


def test_source_database_prefixes() -> None:
    assert source_database("A0001") == "CPSC"
    assert source_database("Q0001") == "CPSC-Extra"
    assert source_database("I0001") == "INCART"
    assert source_database("S0001") == "PTB"
    assert source_database("HR00001") == "PTB-XL"
    assert source_database("E00001") == "Georgia"
    assert source_database("JS10646") == "Chapman-Shaoxing"
    assert source_database("JS10647") == "Ningbo"
    assert source_database("X123") == "unknown" and source_database("record") == "unknown"


def test_cinc2021_headers_without_dx_are_refused(tiny_cinc2017: Path) -> None:
    with pytest.raises(DatasetError, match="no '# Dx:' line"):
        CinC2021(tiny_cinc2017)


# -- CPSC 2018 ------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_cpsc2018_samples_without_reference(cpsc2018_dir: Path) -> None:
    db = CPSC2018(cpsc2018_dir)
    assert len(db) == 10 and db.record_ids[0] == "A1980"
    assert set(db.records["fs"]) == {500.0}
    record = db.load("A1980")
    assert record.fs == 500 and record.leads == ["I", "II", "III", "aVR", "aVL", "aVF"] + [f"V{i}" for i in range(1, 7)]
    assert record.metadata["sex"] == "Male" and record.metadata["age"] == 52
    assert not db.has_labels
    with pytest.raises(DatasetError, match="no REFERENCE.csv, so these CPSC 2018 records carry no labels") as info:
        db.labels()
    assert str(cpsc2018_dir) in str(info.value)
    assert db.summary()["labels"] == "none (no REFERENCE.csv)"
    demo = db.demographics().set_index("record_id")
    assert demo.loc["A1980", "age"] == 52 and demo.loc["A1980", "sex"] == "Male"


@pytest.mark.realdata
def test_cpsc2018_reference_gives_multi_hot_labels(cpsc2018_dir: Path, tmp_path: Path) -> None:
    for name in ("A1980", "A1981", "A1982"):
        shutil.copy(cpsc2018_dir / f"{name}.mat", tmp_path)
    (tmp_path / "REFERENCE.csv").write_text(
        "Recording,First_label,Second_label,Third_label\nA1980,1,,\nA1981,2,8,\nA1982,7,\n"
    )
    db = CPSC2018(tmp_path)
    y = db.labels()
    assert y.classes == ["Normal", "AF", "I-AVB", "LBBB", "RBBB", "PAC", "PVC", "STD", "STE"]
    frame = y.to_frame()
    assert frame.loc["A1981"].tolist() == [0, 1, 0, 0, 0, 0, 0, 1, 0]
    assert frame.loc["A1982", "PVC"] == 1 and frame.loc["A1980", "Normal"] == 1
    assert db.records.set_index("record_id").loc["A1981", "first_label"] == 2
    (tmp_path / "REFERENCE.csv").write_text("Recording,First_label\nA1980,12\n")
    with pytest.raises(DatasetError, match="label 12 is not one of 1-9"):
        CPSC2018(tmp_path)


def test_cpsc2018_refuses_a_folder_of_wfdb_records(tiny_cinc2017: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no CPSC 2018 .mat files"):
        CPSC2018(tiny_cinc2017)


def test_an_abbreviation_of_several_unscored_codes_asks_for_the_code(cinc2021_dir, monkeypatch):
    from cardiolens.datasets import CinC2021

    catalogue = CinC2021(cinc2021_dir)
    table = catalogue.mapping.copy()
    unscored = [c for c in table.index if c not in set(catalogue.scored_codes)][:2]
    table.loc[unscored, "abbreviation"] = "TWIN"
    monkeypatch.setattr(catalogue, "mapping", table)
    with pytest.raises(DatasetError, match=r"TWIN abbreviates several codes .*: name the code"):
        catalogue.labels(["TWIN"])
