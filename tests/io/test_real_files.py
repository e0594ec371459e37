"""load_record on one real file of every format in ../shared/data, checked against independent reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from cardiolens import detect_format, load_record


def test_mitdb_format_212_matches_raw_bytes(mitdb_dir: Path) -> None:
    rec = load_record(mitdb_dir / "101.hea")
    assert rec.fs == 360 and rec.leads == ["MLII", "V1"] and rec.n_samples == 650000
    # decode the first frames of format 212 by hand: two 12-bit samples in three bytes
    raw = np.fromfile(mitdb_dir / "101.dat", dtype=np.uint8, count=30).astype(np.int32)
    b0, b1, b2 = raw[0::3], raw[1::3], raw[2::3]
    first = b0 | ((b1 & 0x0F) << 8)
    second = b2 | ((b1 & 0xF0) << 4)
    first = np.where(first > 2047, first - 4096, first)
    second = np.where(second > 2047, second - 4096, second)
    # 101.hea: gain 200 adu/mV, baseline 1024 for both leads
    assert np.allclose(rec.signal[0, :10], (first - 1024) / 200, atol=1e-6)
    assert np.allclose(rec.signal[1, :10], (second - 1024) / 200, atol=1e-6)
    ann = rec.annotations
    assert len(ann) == 1874 and ann.symbol[:2] == ["+", "N"] and ann.aux[0] == "(N"


def test_cinc2017_mat_with_header_matches_scipy(cinc2017_dir: Path) -> None:
    rec = load_record(cinc2017_dir / "A00003.mat")
    val = scipy.io.loadmat(cinc2017_dir / "A00003.mat")["val"][0]
    assert detect_format(cinc2017_dir / "A00003.mat") == "wfdb"
    assert rec.fs == 300 and rec.n_samples == 18000 and rec.units == ["mV"]
    assert np.allclose(rec.signal[0], val / 1000.0, atol=1e-6)


def test_ptbxl_format_16(ptbxl_dir: Path) -> None:
    rec = load_record(ptbxl_dir / "records100/00000/00001_lr")
    raw = np.fromfile(ptbxl_dir / "records100/00000/00001_lr.dat", dtype="<i2").reshape(-1, 12)
    assert rec.fs == 100 and rec.n_samples == 1000 and rec.leads[0] == "I"
    assert np.allclose(rec.signal, raw.T / 1000.0, atol=1e-6)
    hr = load_record(ptbxl_dir / "records500/00000/00001_hr.hea")
    assert hr.fs == 500 and hr.n_samples == 5000


def test_cinc2021_units_and_metadata(cinc2021_dir: Path) -> None:
    rec = load_record(cinc2021_dir / "HR06000.hea")  # this header spells the unit 'mv'
    assert rec.units == ["mV"] * 12
    assert rec.metadata["dx"] == "164934002,426783006" and rec.metadata["sex"] == "Female"


def test_cpsc2018_struct(cpsc2018_dir: Path) -> None:
    rec = load_record(cpsc2018_dir / "A1980.mat")
    assert detect_format(cpsc2018_dir / "A1980.mat") == "mat"
    assert rec.fs == 500 and rec.n_channels == 12 and rec.metadata["sex"] == "Male" and rec.metadata["age"] == 52
    assert rec.signal[0, 0] == pytest.approx(0.201867208, abs=1e-6)


def test_bidmc_ppg_units(bidmc_dir: Path) -> None:
    rec = load_record(bidmc_dir / "bidmc01.hea")
    assert rec.fs == 125 and rec.leads == ["RESP", "PLETH", "V", "AVR", "II"]
    assert rec.units == ["NU", "NU", "mV", "mV", "mV"]
    numerics = load_record(bidmc_dir / "bidmc_01_Numerics.csv", nan_policy="interpolate")
    assert numerics.fs == pytest.approx(1.0) and numerics.leads == ["HR", "PULSE", "RESP", "SpO2"]


@pytest.mark.parametrize(
    "name,fs,samples",
    [
        ("example_context_ECG.csv", 100, 500),
        ("example_context_PPG_AFib.csv", 50, 500),
        ("example_context_PPG_beat_detect_long_input.csv", 50, 7001),
    ],
)
def test_heartgpt_contexts(heartgpt_dir: Path, name: str, fs: int, samples: int) -> None:
    path = heartgpt_dir / "example_inputs" / name
    rec = load_record(path)
    assert detect_format(path) == "heartgpt"
    assert rec.fs == fs and rec.n_samples == samples
    assert rec.signal[0, 0] == pytest.approx(float(path.read_text().split()[0]), abs=1e-6)
