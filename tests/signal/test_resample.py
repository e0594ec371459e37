"""Resampling keeps frequencies, lengths and annotation positions."""

from __future__ import annotations

import numpy as np
import pytest

from cardiolens import Annotations, Record, RecordError
from cardiolens.signal.resample import rate_ratio, resample, resample_record


@pytest.mark.parametrize(
    "fs_in,fs_out,ratio",
    [(300, 100, (1, 3)), (360, 100, (5, 18)), (125, 50, (2, 5)), (500, 100, (1, 5)), (128, 100, (25, 32))],
)
def test_rate_ratio_is_exact_for_common_pairs(fs_in: float, fs_out: float, ratio: tuple[int, int]) -> None:
    assert rate_ratio(fs_in, fs_out) == ratio


def test_rate_ratio_of_decimal_rates() -> None:
    assert rate_ratio(99.5, 50) == (100, 199)
    up, down = rate_ratio(257.3, 100)  # 1000/2573 exactly; the default bound of 1000 approximates it
    assert down <= 1000 and up / down == pytest.approx(100 / 257.3, rel=1e-5)
    assert rate_ratio(257.3, 100, max_denominator=3000) == (1000, 2573)


def test_resample_record_reports_the_rate_it_achieved() -> None:
    rec = Record(np.sin(np.arange(2573) / 30), 257.3)
    out = resample_record(rec, 100)
    up, down = rate_ratio(257.3, 100)
    assert out.fs == pytest.approx(257.3 * up / down) and out.fs == pytest.approx(100, rel=1e-5)


@pytest.mark.parametrize(
    "fs_in,fs_out", [(300, 100), (360, 100), (125, 50), (500, 100), (100, 250), (257.3, 100), (128, 100)]
)
def test_resample_preserves_a_sines_frequency_and_amplitude(fs_in: float, fs_out: float) -> None:
    seconds = 20
    t = np.arange(int(round(seconds * fs_in))) / fs_in
    y = resample(np.sin(2 * np.pi * 3.0 * t), fs_in, fs_out)
    assert y.size == pytest.approx(seconds * fs_out, abs=1)
    t_out = np.arange(y.size) / fs_out
    mid = slice(y.size // 4, 3 * y.size // 4)
    expected = np.sin(2 * np.pi * 3.0 * t_out[mid])
    assert np.max(np.abs(y[mid] - expected)) < 0.01


def test_downsampling_removes_what_the_new_rate_cannot_carry() -> None:
    fs = 500
    t = np.arange(10 * fs) / fs
    y = resample(np.sin(2 * np.pi * 2 * t) + np.sin(2 * np.pi * 70 * t), fs, 100)
    # 70 Hz is above the new Nyquist (50 Hz): it must not alias to 30 Hz
    spectrum = np.abs(np.fft.rfft(y)) / y.size * 2
    freqs = np.fft.rfftfreq(y.size, 1 / 100)
    assert spectrum[np.argmin(np.abs(freqs - 30))] < 0.01
    assert spectrum[np.argmin(np.abs(freqs - 2))] == pytest.approx(1, abs=0.02)


def test_resample_two_dimensional_and_dtype() -> None:
    x = np.random.default_rng(0).standard_normal((3, 3600)).astype(np.float32)
    y = resample(x, 360, 100)
    assert y.shape == (3, 1000) and y.dtype == np.float32
    assert resample(np.arange(100), 100, 50).dtype == np.float64


def test_equal_rates_return_the_input() -> None:
    x = np.arange(10.0)
    assert resample(x, 100, 100) is x


@pytest.mark.parametrize("bad", [0, -1, float("nan"), None])
def test_bad_rates_are_refused(bad) -> None:
    with pytest.raises(RecordError, match="sampling rate"):
        resample(np.zeros(100), 100, bad)


def test_nan_input_is_refused() -> None:
    with pytest.raises(RecordError, match="NaN"):
        resample(np.r_[np.zeros(100), np.nan], 100, 50)


@pytest.mark.parametrize("fs_in,fs_out", [(360, 100), (500, 100), (125, 50), (300, 128)])
def test_resample_record_moves_annotations_onto_the_same_beats(fs_in: float, fs_out: float) -> None:
    seconds = 30
    n = seconds * fs_in
    beats = np.arange(fs_in // 2, n - fs_in // 2, int(0.8 * fs_in))
    x = np.zeros(n)
    x[beats] = 1.0
    x = np.convolve(x, np.hanning(int(0.05 * fs_in) | 1), "same")
    rec = Record(x, fs_in, leads=["II"], units="mV", annotations=Annotations(beats, ["N"] * len(beats)))
    out = resample_record(rec, fs_out)
    assert out.fs == fs_out and out.n_samples == pytest.approx(seconds * fs_out, abs=1)
    assert out.metadata["resampled_from_hz"] == fs_in
    assert out.annotations.symbol == ["N"] * len(beats)
    # every annotation still sits on its beat's peak (within one sample of the new rate)
    lo = np.clip(out.annotations.sample - 3, 0, out.n_samples - 1)
    local_max = np.array([a + np.argmax(out.signal[0, a : a + 7]) for a in lo])
    assert np.max(np.abs(local_max - out.annotations.sample)) <= 1
    assert rec.fs == fs_in and rec.annotations.sample[0] == beats[0]  # the input is untouched


def test_resample_record_same_rate_is_a_no_op() -> None:
    rec = Record(np.zeros((1, 100)) + 1, 100)
    assert resample_record(rec, 100) is rec


def test_a_rate_far_above_the_target_is_refused_by_name() -> None:
    # 1e9 -> 300 Hz rounds to a ratio of 0 within max_denominator: scipy would fail without saying why
    with pytest.raises(RecordError, match="cannot go from 1e\\+09 Hz to 300 Hz"):
        resample(np.zeros(1000), 1e9, 300)
    rec = Record(np.zeros((1, 1000)), fs=1e9, leads=["I"], name="fast")
    with pytest.raises(RecordError, match="fast: resample: cannot go"):
        resample_record(rec, 300)
