"""Quality checks flag what is wrong with a lead, and only that."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cardiolens import Record, RecordError
from cardiolens.signal.quality import QualityReport, check_quality


@pytest.fixture
def ecg(spike_train) -> np.ndarray:
    """20 s of a 70 bpm ECG-like lead at 250 Hz, in mV."""
    x, _ = spike_train(250.0, 20, rate_bpm=70, noise=0.01)
    return x


def test_a_good_lead_passes(ecg: np.ndarray) -> None:
    report = check_quality(Record(ecg, 250.0, leads=["II"], units="mV"))
    (lead,) = report.leads
    assert report.ok and lead.ok and report.summary == "all leads pass"
    assert lead.modality == "ECG" and lead.heart_rate_bpm == pytest.approx(70, abs=2)
    assert 1.0 < lead.peak_to_peak < 1.5


@pytest.mark.parametrize(
    "damage,expected",
    [
        (lambda x: np.zeros_like(x), "flat line"),
        (lambda x: np.full_like(x, 3.0) + 1e-9 * (np.arange(x.size) % 2), "flat line"),
        (lambda x: np.clip(x * 5, -0.5, 0.5), "saturated"),
        (lambda x: x * 1000, "implausible amplitude"),
        (lambda x: x * 0.005, "implausible amplitude"),
        (lambda x: np.r_[x[:2000], np.full(1500, x[2000]), x[3500:]], "constant for 6.0 s"),
    ],
)
def test_each_problem_is_named(ecg: np.ndarray, damage, expected: str) -> None:
    report = check_quality(damage(ecg), 250.0, leads=["II"], units=["mV"])
    assert not report.ok
    assert expected in report.summary and report.summary.startswith("II: ")


def test_nan_fraction_is_reported_and_rate_still_measured(ecg: np.ndarray) -> None:
    x = ecg.copy()
    x[100:350] = np.nan
    (lead,) = check_quality(x, 250.0, leads=["II"], units=["mV"]).leads
    assert lead.nan_fraction == pytest.approx(0.05)
    assert "5.0% samples missing" in lead.problems[0]
    assert lead.heart_rate_bpm == pytest.approx(70, abs=2)


def test_rate_declared_four_times_too_high_shows_as_an_implausible_heart_rate(ecg: np.ndarray) -> None:
    x = np.tile(ecg, 3)  # 60 s at the true 250 Hz, declared as 1000 Hz: 70 bpm looks like 280
    (lead,) = check_quality(x, 1000.0, leads=["II"], units=["mV"]).leads
    assert lead.heart_rate_bpm == pytest.approx(280, rel=0.05)
    assert any("heart rate" in p and "sampling rate" in p for p in lead.problems)


@pytest.mark.parametrize("unit,scale,ok", [("uV", 1000.0, True), ("V", 0.001, True), ("uV", 1.0, False)])
def test_amplitude_check_understands_units(ecg: np.ndarray, unit: str, scale: float, ok: bool) -> None:
    assert check_quality(ecg * scale, 250.0, leads=["II"], units=[unit]).ok is ok


def test_ppg_and_other_leads(pulse_train) -> None:
    fs = 125.0
    ppg, _ = pulse_train(fs, 30, 80)
    resp = np.sin(2 * np.pi * 0.25 * np.arange(ppg.size) / fs)
    report = check_quality(Record(np.vstack([ppg, resp]), fs, leads=["PLETH", "RESP"], units=["NU", "NU"]))
    pleth, breath = report.leads
    assert pleth.modality == "PPG" and pleth.heart_rate_bpm == pytest.approx(80, abs=2)
    assert breath.modality == "other" and breath.heart_rate_bpm is None
    assert report.ok


def test_report_is_json_ready_and_readable(ecg: np.ndarray) -> None:
    rec = Record(np.vstack([ecg, np.zeros_like(ecg)]), 250.0, leads=["I", "V2"], units="mV")
    report = check_quality(rec, heart_rate=False)
    assert isinstance(report, QualityReport)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["summary"] == "V2: flat line"
    assert [lead["lead"] for lead in data["leads"]] == ["I", "V2"]
    assert data["leads"][0]["heart_rate_bpm"] is None
    text = str(report)
    assert "V2 (ECG" in text and "flat line" in text and "I (ECG" in text


def test_bad_arrays_are_refused() -> None:
    with pytest.raises(RecordError, match="fs is required"):
        check_quality(np.zeros((1, 100)))
    with pytest.raises(RecordError, match="2 lead names .* for 1 channels"):
        check_quality(np.zeros((1, 100)), 100.0, leads=["I", "II"])
    with pytest.raises(RecordError, match="numeric"):
        check_quality(np.array(["a", "b"]), 100.0)


@pytest.mark.realdata
def test_mitdb_record_passes_every_check(mitdb_dir: Path) -> None:
    from cardiolens.io import load_record

    report = check_quality(load_record(mitdb_dir / "106.hea"))
    assert report.ok, report.summary
    assert [q.modality for q in report.leads] == ["ECG", "ECG"]
    assert 60 < report.leads[0].heart_rate_bpm < 90
    # 101's V1 is low and noisy: its detector counts 170 bpm where MLII counts 61; neither rate is
    # implausible alone, together they disagree
    mlii, v1 = check_quality(load_record(mitdb_dir / "101.hea")).leads
    assert 55 < mlii.heart_rate_bpm < 70 and v1.heart_rate_bpm > 150
    assert "heart rate 170 bpm disagrees with the other ECG leads (MLII 61 bpm)" in v1.problems[0]


def test_leads_whose_rates_disagree(spike_train) -> None:
    slow, _ = spike_train(250.0, 20, rate_bpm=60, noise=0.01)
    fast, _ = spike_train(250.0, 20, rate_bpm=120, noise=0.01)  # as if T waves were counted too
    report = check_quality(Record(np.stack([slow, slow, fast]), 250.0, leads=["I", "II", "III"], units="mV"))
    assert [bool(q.problems) for q in report.leads] == [False, False, True]
    assert "disagrees with the other ECG leads (I 60, II 60 bpm)" in report.leads[2].problems[0]
    # an ECG and a PPG lead are not compared (a pulse deficit in AF is physiology, not a detector fault)
    assert check_quality(Record(np.stack([slow, fast]), 250.0, leads=["II", "PLETH"], units="mV")).leads[0].ok


@pytest.mark.realdata
def test_bidmc_record_is_checked_per_modality(bidmc_dir: Path) -> None:
    from cardiolens.io import load_record

    report = check_quality(load_record(bidmc_dir / "bidmc01.hea"))
    kinds = {q.lead: q.modality for q in report.leads}
    assert kinds == {"RESP": "other", "PLETH": "PPG", "V": "ECG", "AVR": "ECG", "II": "ECG"}
    rates = {q.lead: q.heart_rate_bpm for q in report.leads}
    assert rates["II"] == pytest.approx(rates["PLETH"], abs=3)
