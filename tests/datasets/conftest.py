"""Tiny dataset folders in publishers' layouts, written by the tests themselves with ``wfdb.wrsamp``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb


def sine_signal(n: int, fs: float, channels: int = 1, freq: float = 5.0, seed: int = 0) -> np.ndarray:
    """(samples, channels) in mV: a sine per channel (different phase) plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    phases = np.arange(channels)[None, :] * 0.5
    return 0.5 * np.sin(2 * np.pi * freq * t[:, None] + phases) + 0.001 * rng.standard_normal((n, channels))


def write_record(
    folder: Path, name: str, fs: float, n: int, leads: list[str], fmt: str = "16", seed: int = 0, **kwargs
) -> Path:
    """Write one WFDB record (``name.hea`` + ``name.dat``) into ``folder``; returns the header path."""
    folder.mkdir(parents=True, exist_ok=True)
    signal = sine_signal(n, fs, len(leads), seed=seed)
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(leads),
        sig_name=list(leads),
        p_signal=signal,
        fmt=[fmt] * len(leads),
        adc_gain=[1000.0] * len(leads),
        baseline=[0] * len(leads),
        write_dir=str(folder),
        **kwargs,
    )
    return folder / f"{name}.hea"


@pytest.fixture
def tiny_cinc2017(tmp_path: Path) -> Path:
    """A CinC 2017 style folder: 4 records of different lengths at 300 Hz and REFERENCE.csv."""
    root = tmp_path / "training2017"
    lengths = {"A00001": 3000, "A00002": 2100, "A00003": 450, "A00004": 1800}
    for i, (name, n) in enumerate(lengths.items()):
        write_record(root, name, 300, n, ["ECG"], seed=i)
    (root / "REFERENCE.csv").write_text("A00001,N\nA00002,A\nA00003,O\nA00004,~\n")
    return root


@pytest.fixture
def tiny_ptbxl(tmp_path: Path) -> Path:
    """A PTB-XL style folder with 4 ECGs of 3 patients at 100 Hz (ecg 1-2 also at 500 Hz)."""
    root = tmp_path / "ptb-xl"
    leads = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    rows = [
        (1, 10.0, "{'NORM': 100.0, 'SR': 0.0}", 1),
        (2, 10.0, "{'IMI': 50.0, 'NST_': 0.0, 'SR': 0.0}", 1),
        (3, 11.0, "{'LVH': 100.0, 'LVOLT': 0.0, 'AFIB': 0.0}", 10),
        (4, 12.0, "{'NORM': 80.0, 'PVC': 0.0, 'SR': 0.0}", 9),
    ]
    lines = ["ecg_id,patient_id,age,sex,scp_codes,strat_fold,filename_lr,filename_hr"]
    for ecg_id, patient, codes, fold in rows:
        lr, hr = f"records100/00000/{ecg_id:05d}_lr", f"records500/00000/{ecg_id:05d}_hr"
        lines.append(f'{ecg_id},{patient},50,0,"{codes}",{fold},{lr},{hr}')
        write_record(root / "records100" / "00000", f"{ecg_id:05d}_lr", 100, 1000, leads, seed=ecg_id)
        if ecg_id <= 2:
            write_record(root / "records500" / "00000", f"{ecg_id:05d}_hr", 500, 5000, leads, seed=ecg_id)
    (root / "ptbxl_database.csv").write_text("\n".join(lines) + "\n")
    statements = [
        ",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass",
        "NORM,normal ECG,1.0,,,NORM,NORM",
        "IMI,inferior myocardial infarction,1.0,,,MI,IMI",
        "NST_,non-specific ST changes,1.0,1.0,,STTC,NST_",
        "LVH,left ventricular hypertrophy,1.0,,,HYP,LVH",
        "LVOLT,low QRS voltages,,1.0,,,",
        "PVC,ventricular premature complex,,1.0,,,",
        "SR,sinus rhythm,,,1.0,,",
        "AFIB,atrial fibrillation,,,1.0,,",
    ]
    (root / "scp_statements.csv").write_text("\n".join(statements) + "\n")
    return root


@pytest.fixture
def tiny_mitbih(tmp_path: Path) -> Path:
    """A MIT-BIH style folder: records 100 and 202 (2 leads, 360 Hz, format 212) with .atr files."""
    root = tmp_path / "mitdb"
    for name in ("100", "202"):
        write_record(root, name, 360, 3600, ["MLII", "V1"], fmt="212", comments=["69 M 1085 1629 x1"])
        samples = np.array([10, 100, 400, 700, 1000, 1300, 1500, 1600, 1900, 2200, 2500, 3000])
        symbols = ["+", "N", "V", "~", "A", "+", "/", "|", "f", "Q", "N", "+"]
        aux = ["(N", "", "", "", "", "(AFIB", "", "", "", "", "", "(N"]
        wfdb.wrann(name, "atr", samples, symbol=symbols, aux_note=aux, fs=360, write_dir=str(root))
    return root
