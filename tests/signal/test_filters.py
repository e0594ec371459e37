"""Zero-phase filters: what they keep, what they remove, and how they refuse bad input."""

from __future__ import annotations

import numpy as np
import pytest

from cardiolens import Record, RecordError
from cardiolens.signal.filters import (
    bandpass,
    clean,
    clean_ecg,
    clean_ppg,
    highpass,
    lead_modality,
    lowpass,
    notch,
    remove_baseline,
)


def _sine(freq: float, fs: float, seconds: float = 10.0, amplitude: float = 1.0) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(fs * seconds)) / fs)


def _amplitude_at(x: np.ndarray, fs: float, freq: float) -> float:
    """Amplitude of the component at ``freq`` (middle part only, away from the edges)."""
    mid = x[x.size // 4 : 3 * x.size // 4]
    t = np.arange(mid.size) / fs
    return float(2 * np.abs(np.mean(mid * np.exp(-2j * np.pi * freq * t))))


@pytest.mark.parametrize(
    "func,args,kept,removed",
    [
        (bandpass, (5.0, 15.0), 10.0, (0.5, 40.0)),
        (highpass, (5.0,), 20.0, (0.3,)),
        (lowpass, (10.0,), 2.0, (45.0,)),
    ],
)
@pytest.mark.parametrize("fs", [100.0, 360.0])
def test_filter_keeps_its_band_and_removes_the_rest(func, args, kept: float, removed: tuple, fs: float) -> None:
    x = _sine(kept, fs) + sum(_sine(f, fs) for f in removed if f < fs / 2)
    y = func(x, fs, *args)
    assert y.shape == x.shape and y.dtype == np.float64
    assert _amplitude_at(y, fs, kept) == pytest.approx(1.0, abs=0.05)
    for f in removed:
        if f < fs / 2:
            assert _amplitude_at(y, fs, f) < 0.05


def test_filters_are_zero_phase() -> None:
    fs = 250.0
    x = np.zeros(2500)
    x[1000] = 1.0
    y = bandpass(x, fs, 5, 30)
    assert int(np.argmax(np.abs(y))) == 1000


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_notch_removes_mains_and_keeps_the_ecg_band(mains: float) -> None:
    fs = 500.0
    x = _sine(1.2, fs) + _sine(10.0, fs, amplitude=0.5) + _sine(mains, fs, amplitude=0.5)
    y = notch(x, fs, mains)
    assert _amplitude_at(y, fs, mains) < 0.005
    assert _amplitude_at(y, fs, 10.0) == pytest.approx(0.5, abs=0.01)
    assert _amplitude_at(y, fs, 1.2) == pytest.approx(1.0, abs=0.01)


def test_notch_above_nyquist_is_a_clear_error() -> None:
    with pytest.raises(RecordError, match="Nyquist") as err:
        notch(np.zeros(1000), 100.0, 60.0)
    assert "skip" in str(err.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: bandpass(x, 100.0, 0.5, 50.0),
        lambda x: lowpass(x, 100.0, 80.0),
        lambda x: highpass(x, 100.0, 50.0),
    ],
)
def test_cutoff_at_or_above_nyquist_is_refused(call) -> None:
    with pytest.raises(RecordError, match="Nyquist"):
        call(np.zeros(1000))


@pytest.mark.parametrize("n", [1, 5, 12])
def test_short_signal_is_a_record_error_not_a_scipy_traceback(n: int) -> None:
    with pytest.raises(RecordError, match="too short") as err:
        bandpass(np.ones(n), 100.0, 1.0, 20.0)
    assert f"{n} samples" in str(err.value) and "signal array" in str(err.value)


@pytest.mark.parametrize(
    "bad,problem",
    [
        (np.r_[np.zeros(500), np.nan], "NaN"),
        (np.array([]), "empty"),
        (np.zeros((2, 2, 50)), "1-D or"),
        ("abc", "numeric"),
    ],
)
def test_bad_arrays_are_named(bad, problem: str) -> None:
    with pytest.raises(RecordError, match=problem):
        clean_ecg(bad, 100.0)


def test_missing_or_bad_sampling_rate() -> None:
    with pytest.raises(RecordError, match="fs is required"):
        clean_ecg(np.zeros(1000), None)
    with pytest.raises(RecordError, match="positive"):
        clean_ecg(np.zeros(1000), -5)


def test_record_in_record_out_and_errors_name_the_file() -> None:
    rec = Record(np.vstack([_sine(1, 100), _sine(3, 100)]), 100, leads=["I", "II"], units="mV", name="r1")
    out = clean_ecg(rec, None)
    assert isinstance(out, Record) and out.leads == ["I", "II"] and out.fs == 100
    assert np.allclose(out.signal, clean_ecg(rec.signal, 100), atol=1e-5)
    assert rec.signal[0, 10] == pytest.approx(np.sin(2 * np.pi * 10 / 100), abs=1e-6)  # input untouched
    short = Record(np.ones((1, 8)), 100, leads=["I"], source="/data/short.hea")
    with pytest.raises(RecordError, match="short.hea.*too short"):
        highpass(short, None, 0.5)
    with pytest.raises(RecordError, match="sampled at 100"):
        lowpass(rec, 250, 10)


def test_two_dimensional_arrays_are_filtered_per_row() -> None:
    x = np.vstack([_sine(1, 250), _sine(30, 250)])
    y = lowpass(x, 250, 10)
    assert _amplitude_at(y[0], 250, 1) == pytest.approx(1, abs=0.02)
    assert _amplitude_at(y[1], 250, 30) < 0.02


@pytest.mark.parametrize("method", ["highpass", "median", "dechazal2004"])
def test_remove_baseline_removes_wander_and_keeps_beats(method: str) -> None:
    fs = 250.0
    t = np.arange(int(20 * fs)) / fs
    beats = np.zeros_like(t)
    beats[:: int(fs)] = 1.0
    beats = np.convolve(beats, np.hanning(9), "same")
    wander = 2.0 * np.sin(2 * np.pi * 0.15 * t)
    y = remove_baseline(beats + wander, fs, method=method)
    assert _amplitude_at(y, fs, 0.15) < 0.05 * 2.0
    peaks = y[int(fs) * 5 : int(fs) * 15 : int(fs)]
    assert np.all(peaks > 0.7)


def test_remove_baseline_unknown_method() -> None:
    with pytest.raises(RecordError, match="unknown method"):
        remove_baseline(np.zeros(1000), 100, method="wavelet")


def test_clean_ecg_and_ppg_pipelines() -> None:
    fs = 500.0
    x = _sine(0.1, fs, amplitude=3.0) + _sine(8.0, fs) + _sine(50.0, fs, amplitude=0.3) + _sine(120.0, fs)
    y = clean_ecg(x, fs, powerline=50.0)
    assert _amplitude_at(y, fs, 8.0) == pytest.approx(1.0, abs=0.05)
    for f in (0.1, 50.0, 120.0):
        assert _amplitude_at(y, fs, f) < 0.05
    p = clean_ppg(_sine(1.5, 125.0) + _sine(20.0, 125.0), 125.0)
    assert _amplitude_at(p, 125.0, 1.5) == pytest.approx(1.0, abs=0.05)
    assert _amplitude_at(p, 125.0, 20.0) < 0.02
    # at 50 Hz the 40 Hz edge cannot exist: it is lowered instead of failing
    assert clean_ecg(_sine(5.0, 50.0), 50.0).shape == (500,)


@pytest.mark.parametrize(
    "lead,unit,kind", [("II", "mV", "ECG"), ("MLII", None, "ECG"), ("PLETH", "NU", "PPG"), ("RESP", "NU", "other")]
)
def test_lead_modality(lead: str, unit: str | None, kind: str) -> None:
    assert lead_modality(lead, unit) == kind


def test_clean_record_by_modality_leaves_respiration_alone() -> None:
    fs = 125.0
    resp = _sine(0.25, fs, seconds=30)
    ecg = _sine(10.0, fs, seconds=30) + _sine(0.1, fs, seconds=30, amplitude=2)
    ppg = _sine(1.2, fs, seconds=30) + _sine(20.0, fs, seconds=30)
    rec = Record(np.vstack([resp, ecg, ppg]), fs, leads=["RESP", "II", "PLETH"], units=["NU", "mV", "NU"])
    out = clean(rec)
    assert out.metadata["cleaned"] is True
    assert np.allclose(out.signal[0], rec.signal[0])
    assert _amplitude_at(out.signal[1], fs, 0.1) < 0.1
    assert _amplitude_at(out.signal[2], fs, 20.0) < 0.02


def test_clean_names_the_record_and_lead_of_a_too_short_signal() -> None:
    short = Record(np.sin(np.arange(10) / 2)[None], 250.0, leads=["II"], source="short.hea")
    with pytest.raises(RecordError, match=r"short\.hea: lead II: clean_ecg: signal has 10 samples"):
        clean(short)
