"""Training-window augmentations of fine-tuning (``FinetuneConfig.augment``).

They change the signal, never the labels: every augmentation here leaves the position of each beat
and the rhythm as they were, so per-sample targets (beat detection) stay aligned with the window.
Amplitude scaling is left out on purpose: every backbone normalises each window (z-score for the
CNNs, min-max tokens for the GPTs), which would undo it.

``noise`` adds what a recording picks up and a small training set rarely shows enough of:
white noise (muscle and electronics, 12-30 dB below the window's spread) and baseline wander
(a slow sinusoid, 0.05-0.5 Hz, up to half the window's spread), each to a random half of the windows.
"""

from __future__ import annotations

import numpy as np

from cardiolens.errors import CardiolensError

AUGMENTATIONS = ("none", "noise")


def check_augment(name: str) -> str:
    if name not in AUGMENTATIONS:
        raise CardiolensError(f"unknown augmentation {name!r}; augmentations: {', '.join(AUGMENTATIONS)}")
    return name


def augment_windows(windows: np.ndarray, fs: float, name: str, rng: np.random.Generator) -> np.ndarray:
    """Augmented copies of training windows (N, leads, samples) at ``fs``, drawn from ``rng``."""
    check_augment(name)
    if name == "none":
        return windows
    n, _, length = windows.shape
    spread = windows.std(axis=-1, keepdims=True) + 1e-6  # (N, leads, 1): noise is relative to each lead
    out = windows.astype(np.float32, copy=True)

    noisy = rng.random(n) < 0.5
    snr_db = rng.uniform(12.0, 30.0, size=(n, 1, 1))
    noise = rng.standard_normal(windows.shape) * spread * 10.0 ** (-snr_db / 20.0)
    out[noisy] += noise[noisy].astype(np.float32)

    wandering = rng.random(n) < 0.5
    t = np.arange(length) / fs
    freq = rng.uniform(0.05, 0.5, size=(n, 1, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1, 1))
    amplitude = rng.uniform(0.0, 0.5, size=(n, 1, 1)) * spread
    wander = amplitude * np.sin(2 * np.pi * freq * t + phase)
    out[wandering] += wander[wandering].astype(np.float32)
    return out
