"""The cardiolens command, run in-process through its entry point."""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import wfdb

from cardiolens.cli import main
from cardiolens.tasks.rhythm_features import EXTENDED_FEATURE_NAMES


def _write_ecg(folder: Path, seconds: float = 12.0, fs: int = 250) -> tuple[Path, np.ndarray]:
    """A WFDB record with sharp 'R waves' at known samples (1.2 s apart)."""
    n = int(seconds * fs)
    signal = 0.05 * np.sin(2 * np.pi * 0.25 * np.arange(n) / fs)
    beats = np.arange(int(0.5 * fs), n - fs // 2, int(1.2 * fs))
    kernel = np.exp(-0.5 * (np.arange(-12, 13) / 3.0) ** 2)
    for b in beats:
        signal[b - 12 : b + 13] += 1.2 * kernel
    wfdb.wrsamp(
        "beats", fs=fs, units=["mV"], sig_name=["II"], p_signal=signal[:, None], fmt=["16"], write_dir=str(folder)
    )
    return folder / "beats.hea", beats


def _write_leads(folder: Path, name: str, fs: int, leads: dict[str, np.ndarray], units: list[str]) -> Path:
    """A WFDB record of the given leads (name -> samples) and units; its header's path."""
    wfdb.wrsamp(
        name,
        fs=fs,
        units=units,
        sig_name=list(leads),
        p_signal=np.column_stack(list(leads.values())),
        fmt=["16"] * len(leads),
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


def test_info_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hea, _ = _write_ecg(tmp_path)
    assert main(["info", str(hea), "--as_json", "true"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["fs"] == 250 and info["leads"] == ["II"] and info["duration_s"] == 12.0
    assert info["format"] == "wfdb"
    assert "quality" in info


def test_info_text_gives_one_quality_line_per_lead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hea, _ = _write_ecg(tmp_path)
    assert main(["info", str(hea)]) == 0
    lines = capsys.readouterr().out.splitlines()
    lead_lines = [line for line in lines if line.strip().startswith("II:")]
    assert lead_lines == ["    II: ok, 50 bpm, peak-to-peak 1.27 (ECG)"]  # beats 1.2 s apart
    assert not any("{'lead'" in line for line in lines)


def test_peaks_csv_finds_the_known_beats(tmp_path: Path) -> None:
    hea, beats = _write_ecg(tmp_path)
    out = tmp_path / "beats.csv"
    assert main(["peaks", str(hea), "--out", str(out)]) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == "sample,time_s,rr_s"
    found = np.array([int(r.split(",")[0]) for r in rows[1:]])
    assert len(found) == len(beats)
    assert np.max(np.abs(found - beats)) <= 3  # within 12 ms at 250 Hz
    assert float(rows[2].split(",")[2]) == pytest.approx(1.2, abs=0.02)


def test_peaks_on_a_lead_without_beats_writes_a_header_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fs, n = 250, 3000
    ecg = np.zeros(n)
    ecg[125::300] = 1.0
    hea = _write_leads(tmp_path, "two", fs, {"II": ecg, "V2": np.zeros(n)}, ["mV", "mV"])  # V2 flat, as in CinC 2021
    out = tmp_path / "beats.csv"
    assert main(["peaks", str(hea), "--lead", "V2", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["sample,time_s,rr_s"]
    assert "no beats found in lead V2" in capsys.readouterr().err


def test_plot_draws_a_respiration_lead_without_beat_marks(tmp_path: Path) -> None:
    fs, n = 125, 1250
    ecg = np.zeros(n)
    ecg[60::100] = 1.0
    resp = np.sin(2 * np.pi * 0.25 * np.arange(n) / fs)
    hea = _write_leads(tmp_path, "icu", fs, {"RESP": resp, "II": ecg}, ["NU", "mV"])  # BIDMC-like: RESP first
    out = tmp_path / "icu.png"
    assert main(["plot", str(hea), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_writes_png(tmp_path: Path) -> None:
    hea, _ = _write_ecg(tmp_path)
    out = tmp_path / "fig.png"
    assert main(["plot", str(hea), "--out", str(out), "--duration", "5"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 10_000


def test_bad_input_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "notes.csv"
    bad.write_text("a,b\n1,x\n")
    assert main(["peaks", str(bad), "--fs", "100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cardiolens: error:") and "notes.csv" in err and "Traceback" not in err


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seconds", "20"]) == 0
    report = json.loads((out / "report.json").read_text())
    # neurokit2 simulates 72 bpm: both the ECG and the PPG beat finders must agree with it
    for lead in ("II", "PLETH"):
        assert report["beats"][lead]["heart_rate_bpm"] == pytest.approx(72, abs=4)
    assert (out / "record.png").stat().st_size > 10_000
    # the shipped ecgpt-small continues the ECG lead: 300 samples at its 100 Hz, written back at 500 Hz
    generated = report["generated"]
    assert generated["model"] == "ecgpt-small" and generated["lead"] == "II"
    rows = Path(generated["csv"]).read_text().splitlines()
    assert sum(1 for r in rows if r.startswith("generated")) == 1500
    assert Path(generated["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the shipped rhythm-ecg classifies the simulated sinus rhythm, saying how it read the lead
    rhythm = report["rhythm"]
    assert rhythm["model"] == "rhythm-ecg" and rhythm["labels"] != ["A"]
    assert sum(rhythm["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert "resampled from 500 Hz to 100 Hz" in rhythm["preprocessing"]
    # rhythm-ecg-mean: the mean of the CNN's and the trees' probabilities, the benchmarks' best
    mean, trees = report["rhythm_mean"], report["rhythm_trees"]
    for c, p in mean["probabilities"].items():
        assert p == pytest.approx((rhythm["probabilities"][c] + trees["probabilities"][c]) / 2, abs=1e-12)
    # the shipped aami-ecg-trees classifies every beat but the first and last: sinus beats are N
    classes = report["beat_classes"]
    assert classes["model"] == "aami-ecg-trees" and sum(classes["per_class"].values()) == classes["beats"]
    assert classes["beats"] >= 20 and classes["per_class"]["N"] >= 0.9 * classes["beats"]


def _readme_commands() -> list[str]:
    """Every ``cardiolens ...`` command of README.md's code blocks, continuation lines joined, comments cut."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ")[0].strip()
            if line.startswith("cardiolens ") and " ... " not in line:  # "..." elides options on purpose
                commands.append(line)
    return commands


@pytest.mark.parametrize("command", _readme_commands())
def test_readme_commands_parse(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    # parsing only (--print_config prints the settings and exits): the options and positionals exist
    with pytest.raises(SystemExit) as done:
        main([*shlex.split(command)[1:], "--print_config"])
    assert done.value.code in (0, None), capsys.readouterr().err


def test_features_csv_has_a_row_per_record_and_tells_an_irregular_rhythm(tmp_path: Path) -> None:
    fs, n = 250, 250 * 30
    kernel = np.exp(-0.5 * (np.arange(-12, 13) / 3.0) ** 2)
    rng = np.random.default_rng(0)
    for name, gaps in (("regular", np.full(40, 0.8)), ("irregular", rng.uniform(0.45, 1.1, 60))):
        signal = 0.01 * rng.standard_normal(n)
        beats = (0.5 + np.concatenate([[0], np.cumsum(gaps)])) * fs
        for b in beats[beats < n - 13].astype(int):
            signal[b - 12 : b + 13] += 1.2 * kernel
        wfdb.wrsamp(
            name, fs=fs, units=["mV"], sig_name=["II"], p_signal=signal[:, None], fmt=["16"], write_dir=str(tmp_path)
        )
    out = tmp_path / "features.csv"
    assert main(["features", str(tmp_path), "--out", str(out)]) == 0
    with open(out) as f:
        rows = {row["record"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"regular", "irregular"} and rows["regular"]["lead"] == "II"
    assert float(rows["regular"]["heart_rate_bpm"]) == pytest.approx(75, abs=1)
    assert float(rows["regular"]["rr_cv"]) < 0.02 < 0.2 < float(rows["irregular"]["rr_cv"])
    assert "rr_sample_entropy" not in rows["regular"]
    # --extended adds the event and RR-entropy columns after the standard ones, which stay the same
    assert main(["features", str(tmp_path), "--out", str(out), "--extended", "true"]) == 0
    with open(out) as f:
        extended = {row["record"]: row for row in csv.DictReader(f)}
    assert list(extended["regular"])[2:] == list(EXTENDED_FEATURE_NAMES)
    assert all(extended[r][k] == rows[r][k] for r in rows for k in rows[r])
    assert float(extended["regular"]["rr_cosen"]) < float(extended["irregular"]["rr_cosen"])


def test_features_refuse_a_ppg_lead_and_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fs = 125
    wfdb.wrsamp(
        "pleth",
        fs=fs,
        units=["NU"],
        sig_name=["PLETH"],
        p_signal=np.sin(np.arange(fs * 20) / 10.0)[:, None],
        fmt=["16"],
        write_dir=str(tmp_path),
    )
    assert main(["features", str(tmp_path / "pleth.hea")]) == 2
    err = capsys.readouterr().err
    assert "pleth.hea" in err and "PPG" in err


def test_features_name_the_file_of_a_record_too_short_to_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wfdb.wrsamp(
        "short",
        fs=250,
        units=["mV"],
        sig_name=["II"],
        p_signal=np.sin(np.arange(250) / 5.0)[:, None],
        fmt=["16"],
        write_dir=str(tmp_path),
    )
    assert main(["features", str(tmp_path / "short.hea")]) == 2
    err = capsys.readouterr().err
    assert "short.hea" in err and "at least 2 s" in err
