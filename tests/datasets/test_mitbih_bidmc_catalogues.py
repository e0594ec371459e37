"""MIT-BIH Arrhythmia and BIDMC catalogues: real facts checked against wfdb and the publisher's CSVs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from cardiolens.datasets import BIDMC, DS1, DS2, MITBIH, PACED
from cardiolens.datasets.splits import grouped_kfold
from cardiolens.errors import DatasetError

# The AAMI EC57 mapping, written out again here so the test does not reuse the catalogue's table.
AAMI = {"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ"}


# -- MIT-BIH --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mitdb(mitdb_dir: Path) -> MITBIH:
    return MITBIH(mitdb_dir)


@pytest.mark.realdata
def test_mitbih_records_and_record_lists(mitdb: MITBIH) -> None:
    assert len(mitdb) == 26 and set(mitdb.records["fs"]) == {360.0}
    ids = {int(r) for r in mitdb.record_ids}
    assert ids == set(DS1) | set(PACED)
    assert len(DS1) == len(DS2) == 22 and not set(DS1) & set(DS2) and not (set(DS1) | set(DS2)) & set(PACED)
    assert mitdb.records.loc[mitdb.records["paced"], "record_id"].tolist() == ["102", "104", "107", "217"]
    assert (mitdb.records["ds"] == "DS1").sum() == 22
    assert mitdb.row(101)["leads"] == ["MLII", "V1"] and mitdb.row("101")["n_samples"] == 650000
    assert mitdb.row(101)["age"] == 75 and mitdb.row(101)["sex"] == "F"  # header comment "# 75 F 1011 654 x1"


@pytest.mark.realdata
def test_mitbih_101_beats_match_wfdb(mitdb: MITBIH, mitdb_dir: Path) -> None:
    ann = wfdb.rdann(str(mitdb_dir / "101"), "atr")
    to_class = {s: c for c, symbols in AAMI.items() for s in symbols}
    expected = [(int(s), sym) for s, sym in zip(ann.sample, ann.symbol, strict=True) if sym in to_class]
    beats = mitdb.beats(101)
    assert len(beats) == len(expected) == 1865
    assert list(zip(beats["sample"].tolist(), beats["symbol"].tolist(), strict=True)) == expected
    assert dict(Counter(beats["aami"])) == dict(Counter(to_class[s] for _, s in expected))
    assert not set(beats["symbol"]) & {"+", "~", "|", "x", "!", '"', "[", "]"}
    record = mitdb.load(101)
    assert record.fs == 360 and record.annotations is not None and len(record.annotations) == len(ann.sample)


@pytest.mark.realdata
def test_mitbih_201_has_afib_episodes(mitdb: MITBIH) -> None:
    episodes = mitdb.rhythms(201)
    assert "AFIB" in set(episodes["rhythm"])
    afib = episodes[episodes["rhythm"] == "AFIB"]
    assert len(afib) >= 2 and (afib["end"] > afib["start"]).all()
    # episodes tile the record from the first rhythm annotation to its end
    assert (episodes["start"].iloc[1:].to_numpy() == episodes["end"].iloc[:-1].to_numpy()).all()
    assert episodes["end"].iloc[-1] == 650000
    assert mitdb.patient_of(201) == "201"


def test_mitbih_fixture_beats_rhythms_and_patients(tiny_mitbih: Path) -> None:
    db = MITBIH(tiny_mitbih)
    assert db.record_ids == ["100", "202"]
    # 202 was recorded from the same man as 201: grouped splits must keep them together
    assert db.patient_of(202) == "201" and db.patient_of(100) == "100"
    assert db.row(100)["ds"] == "DS2" and db.row(100)["age"] == 69 and db.row(100)["sex"] == "M"
    beats = db.beats(100)
    assert beats["symbol"].tolist() == ["N", "V", "A", "/", "f", "Q", "N"]
    assert beats["aami"].tolist() == ["N", "V", "S", "Q", "Q", "Q", "N"]
    assert beats["sample"].tolist() == [100, 400, 1000, 1500, 1900, 2200, 2500]
    episodes = db.rhythms(100)
    assert episodes.to_dict("list") == {
        "start": [10, 1300, 3000],
        "end": [1300, 3000, 3600],
        "rhythm": ["N", "AFIB", "N"],
    }
    assert db.aami_counts() == {"N": 4, "S": 2, "V": 2, "F": 0, "Q": 6}


def test_mitbih_missing_annotations_are_named(tiny_mitbih: Path) -> None:
    (tiny_mitbih / "202.atr").unlink()
    with pytest.raises(DatasetError, match="record 202 has no reference annotation file 202.atr") as info:
        MITBIH(tiny_mitbih)
    assert str(tiny_mitbih) in str(info.value)


# -- BIDMC ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bidmc(bidmc_dir: Path) -> BIDMC:
    return BIDMC(bidmc_dir)


@pytest.mark.realdata
def test_bidmc_records_and_fixed_parameters(bidmc: BIDMC) -> None:
    assert len(bidmc) == 53 and set(bidmc.records["fs"]) == {125.0}
    # 46 patients: the Fix files' MIMIC II subject joins bidmc06-09, bidmc20-23 and bidmc38-39
    assert bidmc.n_patients == 46
    shared = bidmc.records.groupby("patient_id")["record_id"].apply(sorted)
    assert shared["s03386"] == ["bidmc06", "bidmc07", "bidmc08", "bidmc09"]
    assert shared["s25323"] == ["bidmc38", "bidmc39"]
    folds = grouped_kfold(bidmc, 5, seed=0)
    assert folds["bidmc38"] == folds["bidmc39"] and folds["bidmc20"] == folds["bidmc23"]
    row = bidmc.row(1)
    assert row["record_id"] == "bidmc01" and row["n_samples"] == 60001
    assert (row["age"], row["sex"], row["location"]) == (88, "M", "micu")  # bidmc_01_Fix.txt
    assert all("PLETH" in leads and "II" in leads for leads in bidmc.records["leads"])
    # "Age: 90+" is read as 90, keeping the text; "Age: NaN" as missing
    assert (bidmc.records["age_raw"] == "90+").sum() == 3
    assert set(bidmc.records.loc[bidmc.records["age_raw"] == "90+", "age"]) == {90.0}
    assert np.isnan(bidmc.row("bidmc18")["age"])


@pytest.mark.realdata
def test_bidmc_breaths_numerics_ppg_and_ecg(bidmc: BIDMC, bidmc_dir: Path) -> None:
    csv_rows = len(pd.read_csv(bidmc_dir / "bidmc_01_Breaths.csv"))
    breaths = bidmc.breaths("bidmc01")
    assert len(breaths) == csv_rows == 170
    assert breaths.iloc[0].tolist() == [189, 187]
    # bidmc03: annotator 1 marked one breath fewer (a NaN in the CSV)
    assert len(bidmc.breaths(3, annotator=2)) == len(bidmc.breaths(3, annotator=1)) + 1
    numerics = bidmc.numerics(1)
    assert list(numerics.columns) == ["time_s", "HR", "PULSE", "RESP", "SpO2"]
    assert numerics.iloc[0].tolist() == [0, 94, 93, 25, 97]
    ppg = bidmc.ppg(1)
    assert ppg.leads == ["PLETH"] and ppg.fs == 125 and ppg.n_samples == 60001 and ppg.units == ["NU"]
    ecg = bidmc.ecg("bidmc01")
    assert ecg.leads == ["II"] and ecg.units == ["mV"]
    reference, _ = wfdb.rdsamp(str(bidmc_dir / "bidmc01"), channel_names=["II"])
    np.testing.assert_allclose(ecg.signal[0], reference[:, 0], atol=1e-5)
