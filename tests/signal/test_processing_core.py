"""Filters, resampling, normalisation, quality checks and the HeartGPT tokeniser on simulated signals."""

from __future__ import annotations

import numpy as np
import pytest

from cardiolens import Record, RecordError
from cardiolens.signal.filters import bandpass, clean_ecg, highpass, notch, remove_baseline
from cardiolens.signal.normalize import normalize
from cardiolens.signal.quality import check_quality
from cardiolens.signal.resample import resample, resample_record
from cardiolens.signal.tokenize import detokenize, span_scale, tokenize


def _power_at(x: np.ndarray, fs: float, freq: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    return float(spectrum[np.argmin(np.abs(np.fft.rfftfreq(x.size, 1 / fs) - freq))])


@pytest.mark.parametrize("fs_in,fs_out", [(300, 100), (360, 100), (500, 100), (125, 50), (100, 250)])
def test_resample_keeps_frequency_and_length(fs_in: float, fs_out: float) -> None:
    t = np.arange(10 * fs_in) / fs_in
    y = resample(np.sin(2 * np.pi * 3 * t), fs_in, fs_out)
    assert y.size == 10 * fs_out
    peak = np.fft.rfftfreq(y.size, 1 / fs_out)[np.argmax(np.abs(np.fft.rfft(y)))]
    assert peak == pytest.approx(3, abs=0.1)


def test_resample_record_rescales_annotations() -> None:
    from cardiolens import Annotations

    rec = Record(np.sin(np.arange(3600) / 20), fs=360, annotations=Annotations(np.array([360, 720]), ["N", "N"]))
    out = resample_record(rec, 100)
    assert out.fs == 100 and out.n_samples == 1000
    assert out.annotations.sample.tolist() == [100, 200]
    assert out.metadata["resampled_from_hz"] == 360


def test_notch_removes_mains() -> None:
    fs = 500
    t = np.arange(10 * fs) / fs
    x = np.sin(2 * np.pi * 1.2 * t) + 0.5 * np.sin(2 * np.pi * 50 * t)
    y = notch(x, fs, 50)
    assert _power_at(y, fs, 50) < 1e-3 * _power_at(x, fs, 50)
    assert _power_at(y, fs, 1.2) == pytest.approx(_power_at(x, fs, 1.2), rel=0.05)


def test_baseline_removal_both_methods() -> None:
    fs = 250
    t = np.arange(20 * fs) / fs
    spikes = (np.arange(t.size) % fs == 0).astype(float)
    drift = 2.0 * np.sin(2 * np.pi * 0.1 * t)
    for method in ("highpass", "median"):
        y = remove_baseline(spikes + drift, fs, method=method)
        assert _power_at(y, fs, 0.1) < 0.01 * _power_at(drift, fs, 0.1)


def test_filters_refuse_bad_cutoffs_and_short_input() -> None:
    with pytest.raises(RecordError, match="Nyquist"):
        bandpass(np.zeros(1000), 100, 0.5, 60)
    with pytest.raises(RecordError, match="too short"):
        highpass(np.zeros(10), 100, 0.5)
    with pytest.raises(RecordError, match="low < high"):
        bandpass(np.zeros(1000), 100, 20, 10)
    assert clean_ecg(np.random.default_rng(0).standard_normal((2, 1000)), 100).shape == (2, 1000)


@pytest.mark.parametrize("method", ["zscore", "minmax", "robust"])
def test_normalize(method: str) -> None:
    x = np.vstack([np.random.default_rng(1).normal(5, 3, 1000), np.full(1000, 7.0)])
    y = normalize(x, method)
    assert np.all(np.isfinite(y)) and np.all(y[1] == 0)
    if method == "zscore":
        assert y[0].mean() == pytest.approx(0, abs=1e-9) and y[0].std() == pytest.approx(1)
    elif method == "minmax":
        assert y[0].min() == 0 and y[0].max() == 1
    else:
        assert np.median(y[0]) == pytest.approx(0, abs=1e-9)


def test_tokens_round_trip_within_half_a_quantum() -> None:
    x = np.sin(np.arange(500) / 9) * 1.7 + 0.3
    tokens, scale = tokenize(x)
    assert tokens.dtype == np.int64 and tokens.min() == 0 and tokens.max() == 100
    back = detokenize(tokens, scale)
    assert np.max(np.abs(back - x)) <= 0.5 * (x.max() - x.min()) / 100 + 1e-12
    ppg, _ = tokenize(x, vocab_size=102)
    assert ppg.max() == 101


def test_tokenize_batch_and_span_scale() -> None:
    x = np.vstack([np.linspace(0, 1, 50), np.linspace(-2, 2, 50)])
    tokens, (lo, hi) = tokenize(x)
    assert tokens[:, 0].tolist() == [0, 0] and tokens[:, -1].tolist() == [100, 100]
    assert lo.tolist() == [0, -2] and hi.tolist() == [1, 2]
    wide = span_scale(np.r_[x[0], 3.0])
    narrow, _ = tokenize(x[0], scale=wide)
    assert narrow.max() == round(100 / 3)


def test_tokenize_refuses_constant_and_nan() -> None:
    with pytest.raises(RecordError, match="constant"):
        tokenize(np.full(500, 0.2))
    with pytest.raises(RecordError, match="NaN"):
        tokenize(np.r_[np.zeros(10), np.nan])
    with pytest.raises(RecordError, match="0..100"):
        detokenize(np.array([0, 101]), (0.0, 1.0))


def _ecg_train(fs: float, seconds: float, rate_bpm: float, amplitude: float = 1.0) -> np.ndarray:
    n = int(fs * seconds)
    x = 0.02 * np.sin(np.arange(n) / fs)
    kernel = amplitude * np.exp(-0.5 * (np.arange(-10, 11) / (0.008 * fs)) ** 2)
    for b in np.arange(int(0.3 * fs), n - 11, int(60 / rate_bpm * fs)):
        x[b - 10 : b + 11] += kernel
    return x


def test_quality_flags() -> None:
    fs = 250
    good = _ecg_train(fs, 10, 70)
    clipped = np.clip(good * 5, -0.5, 0.5)
    huge = good * 1000
    flat = np.zeros_like(good)
    rec = Record(np.vstack([good, clipped, huge, flat]), fs, leads=["I", "II", "V1", "V2"], units="mV")
    report = check_quality(rec)
    by_lead = {q.lead: q for q in report.leads}
    assert by_lead["I"].ok and by_lead["I"].heart_rate_bpm == pytest.approx(70, abs=2)
    assert any("saturated" in p for p in by_lead["II"].problems)
    assert any("amplitude" in p for p in by_lead["V1"].problems)
    assert by_lead["V2"].flat
    assert not report.ok and "V2: flat line" in report.summary


def test_quality_flags_wrong_sampling_rate() -> None:
    # a 70 bpm ECG recorded at 250 Hz but declared as 25 Hz looks like 7 bpm
    rec = Record(_ecg_train(250, 60, 70), 25, leads=["II"], units="mV")
    lead = check_quality(rec).leads[0]
    assert lead.heart_rate_bpm == pytest.approx(7, abs=1)
    assert any("heart rate" in p for p in lead.problems)
