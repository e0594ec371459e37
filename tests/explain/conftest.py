"""Tiny models and simulated signals for the explanation tests (seconds, not minutes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cardiolens.models import create_model

FS = 100.0


def ecg_like(seconds: float = 6.0, fs: float = FS, rr: list[float] | None = None, seed: int = 0) -> np.ndarray:
    """A clean synthetic ECG lead: P, QRS and T as Gaussians around R peaks (irregular with ``rr``)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    beats, at, i = [], 0.3, 0
    while at < seconds - 0.2:
        beats.append(at)
        at += rr[i % len(rr)] if rr else 0.8
        i += 1
    x = np.zeros(n)
    for b in beats:
        x += 0.15 * np.exp(-(((t - b + 0.16) / 0.025) ** 2))  # P
        x += 1.0 * np.exp(-(((t - b) / 0.012) ** 2))  # R
        x -= 0.15 * np.exp(-(((t - b - 0.03) / 0.012) ** 2))  # S
        x += 0.3 * np.exp(-(((t - b - 0.28) / 0.05) ** 2))  # T
    return (x + 0.01 * rng.standard_normal(n)).astype(np.float32)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models and small fits run faster on one thread (no synchronisation), much faster on a busy machine."""
    from threadpoolctl import threadpool_limits  # numpy/scikit-learn's BLAS and OpenMP pools likewise

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ecg() -> np.ndarray:
    return ecg_like()


@pytest.fixture(scope="session")
def make_ecg():
    """The synthetic ECG generator, for tests that need other lengths or rhythms."""
    return ecg_like


@pytest.fixture(scope="session")
def gpt_classifier() -> nn.Module:
    torch.manual_seed(0)
    return create_model(
        "gpt", n_layer=2, n_head=2, n_embd=32, block_size=256, head="classifier", dropout=0.0, fs=FS, modality="ECG"
    ).eval()


@pytest.fixture(scope="session")
def gpt_lm() -> nn.Module:
    torch.manual_seed(1)
    return create_model(
        "gpt", n_layer=2, n_head=2, n_embd=32, block_size=256, dropout=0.0, fs=FS, modality="ECG"
    ).eval()


@pytest.fixture(scope="session")
def cnn() -> nn.Module:
    torch.manual_seed(2)
    return create_model(
        "resnet1d", widths=(8, 16), blocks=(1, 1), strides=(1, 2), dilations=(1, 1), num_outputs=3, dropout=0.0
    ).eval()


class WindowModel(nn.Module):
    """Two classes; class 1's logit is the sum of samples ``lo:hi`` of lead 0, nothing else matters.

    The ground truth an attribution method must find. It has a convolution (a 1x1 identity) so that
    Grad-CAM applies.
    """

    def __init__(self, lo: int = 100, hi: int = 120, fs: float = FS):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        mask = torch.zeros(1, 1, 4000)
        mask[..., lo:hi] = 1.0
        self.register_buffer("mask", mask)

        class Cfg:
            name = "window-model"
            classes = ["other", "target"]

        Cfg.fs = fs
        self.config = Cfg()

    def gradcam_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x[:, :1])  # (B, 1, T)
        z = (h * self.mask[..., : h.size(-1)]).sum(dim=(1, 2))  # (B,)
        return torch.stack([torch.zeros_like(z), z], dim=1)


@pytest.fixture()
def window_model() -> WindowModel:
    return WindowModel().eval()
