"""Small simulated signals shared by the signal tests."""

from __future__ import annotations

import numpy as np
import pytest


def make_spike_train(
    fs: float,
    seconds: float,
    beats_at: np.ndarray | None = None,
    *,
    rate_bpm: float = 70.0,
    amplitude: float = 1.2,
    width_s: float = 0.012,
    wander: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """An ECG-like signal: Gaussian 'QRS' spikes at known samples, a small T wave after each,
    optional baseline wander (0.3 Hz) and white noise. Returns (signal, true R-peak samples)."""
    n = int(round(fs * seconds))
    if beats_at is None:
        beats_at = np.arange(int(0.6 * fs), n - int(0.6 * fs), int(round(60.0 / rate_bpm * fs)))
    t = np.arange(n)
    x = np.zeros(n)
    sigma = width_s * fs
    t_sigma = 0.04 * fs
    for b in beats_at:
        x += amplitude * np.exp(-0.5 * ((t - b) / sigma) ** 2)
        x += 0.25 * amplitude * np.exp(-0.5 * ((t - b - 0.25 * fs) / t_sigma) ** 2)
    x += wander * np.sin(2 * np.pi * 0.3 * t / fs)
    x += noise * np.random.default_rng(seed).standard_normal(n)
    return x, np.asarray(beats_at, dtype=np.int64)


def make_pulse_train(fs: float, seconds: float, rate_bpm: float = 75.0) -> tuple[np.ndarray, np.ndarray]:
    """A PPG-like signal: a systolic Gaussian wave and a smaller diastolic one per beat.
    Returns (signal, systolic peak samples)."""
    n = int(round(fs * seconds))
    beats = np.arange(int(0.5 * fs), n - int(0.8 * fs), int(round(60.0 / rate_bpm * fs)))
    t = np.arange(n)
    x = np.zeros(n)
    for b in beats:
        x += np.exp(-0.5 * ((t - b) / (0.07 * fs)) ** 2)
        x += 0.4 * np.exp(-0.5 * ((t - b - 0.3 * fs) / (0.09 * fs)) ** 2)
    return x, beats.astype(np.int64)


@pytest.fixture(scope="session")
def nk():
    """neurokit2, imported once (it takes seconds)."""
    import neurokit2

    return neurokit2


@pytest.fixture(scope="session")
def spike_train():
    """:func:`make_spike_train`: an ECG-like spike train with known R peaks."""
    return make_spike_train


@pytest.fixture(scope="session")
def pulse_train():
    """:func:`make_pulse_train`: a PPG-like pulse train with known systolic peaks."""
    return make_pulse_train
