"""continue_signal: the input contract (rate, modality, length, values) and output in signal units."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from cardiolens.errors import CardiolensError, ModelInputError, RecordError
from cardiolens.generate import continue_signal, generate
from cardiolens.models import GPT, GPTConfig, create_model, import_heartgpt
from cardiolens.signal import Record

FS = 100.0


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=1, block_size=128, dropout=0.0, modality="ECG", fs=FS, signal_levels=101)).eval()


def ecg_like(seconds: float = 2.0, fs: float = FS) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    return (0.1 * np.sin(2 * np.pi * 0.3 * t) + np.exp(-(((t % 1.0) - 0.2) ** 2) / 0.0005)).astype(np.float32)


def test_output_is_in_signal_units(model):
    x = ecg_like() * 2.5 + 7.0  # mV with an offset: the continuation comes back in the same units
    out = continue_signal(model, x, fs=FS, steps=40, greedy=True)
    assert out.signal.shape == (40,) and out.signal.dtype == np.float32 and out.fs == FS and not out.resampled
    assert out.context_tokens.shape == (128,)  # 200 samples: the last window of 128 is used
    lo, hi = float(x[-128:].min()), float(x[-128:].max())
    assert out.scale == pytest.approx((lo, hi))
    assert np.all(out.signal >= lo - 1e-4) and np.all(out.signal <= hi + 1e-4)
    # the values are exactly the tokens mapped back through the context's min-max scale
    np.testing.assert_allclose(out.signal, lo + out.tokens / 100 * (hi - lo), rtol=1e-5, atol=1e-5)
    # and the tokens are what generate() gives for the tokenised context
    direct = generate(model, torch.from_numpy(out.context_tokens), steps=40, greedy=True)
    assert np.array_equal(out.tokens, direct[128:].numpy())


def test_seeded_sampling_reproduces(model):
    x = ecg_like()
    a = continue_signal(model, x, fs=FS, steps=30, top_k=5, seed=1)
    b = continue_signal(model, x, fs=FS, steps=30, top_k=5, seed=1)
    np.testing.assert_array_equal(a.signal, b.signal)


def test_batch_of_contexts(model):
    x = np.stack([ecg_like(), 3 * ecg_like()[::-1].copy()])
    out = continue_signal(model, x, fs=FS, steps=20, greedy=True)
    assert out.signal.shape == (2, 20) and out.tokens.shape == (2, 20)
    single = continue_signal(model, x[1], fs=FS, steps=20, greedy=True)
    np.testing.assert_allclose(out.signal[1], single.signal, rtol=1e-6)


def test_other_rates_are_resampled_and_said(model, caplog):
    x250 = ecg_like(fs=250.0)
    with caplog.at_level(logging.WARNING, logger="cardiolens.generate.continuation"):
        out = continue_signal(model, x250, fs=250.0, steps=40, greedy=True)
    assert out.resampled and out.model_fs == FS and out.fs == 250.0
    assert out.signal.shape == (100,)  # 40 samples at 100 Hz are 100 at 250 Hz
    assert "resampling the context from 250 Hz to the model's 100 Hz" in caplog.text
    with pytest.raises(RecordError, match="expects 100 Hz, the signal is at 250 Hz"):
        continue_signal(model, x250, fs=250.0, steps=5, resample=False)


def test_records_and_modality(model):
    rec = Record(ecg_like()[None], fs=FS, leads=["II"])
    assert continue_signal(model, rec, steps=5, greedy=True).signal.shape == (5,)
    ppg = Record(ecg_like()[None], fs=FS, leads=["PLETH"], name="bidmc01")
    with pytest.raises(RecordError, match="bidmc01: PPG context given to 'gpt', a model of ECG"):
        continue_signal(model, ppg, steps=5)
    with pytest.raises(RecordError, match="PPG context"):
        continue_signal(model, ecg_like(), fs=FS, steps=5, modality="PPG")
    two = Record(np.stack([ecg_like(), ecg_like()]), fs=FS, leads=["I", "II"])
    with pytest.raises(RecordError, match="2 leads"):
        continue_signal(model, two, steps=5)
    assert continue_signal(model, two, steps=5, lead="I", greedy=True).signal.shape == (5,)
    with pytest.raises(RecordError, match="fs=250 given, but the record says 100 Hz"):
        continue_signal(model, rec, fs=250, steps=5)


@pytest.mark.parametrize(
    "signal, kwargs, match",
    [
        (np.full(200, 0.3), {}, "constant"),
        (np.where(np.arange(200) == 50, np.nan, ecg_like()), {}, "NaN/inf values \\(first at sample 50\\)"),
        (ecg_like()[:60], {}, "shorter than the minimum of 100"),
        (ecg_like(), {"crop": False}, "longer than the model's window of 128"),
        (ecg_like(), {"fs": None}, "fs is required"),
        (ecg_like(), {"fs": -5}, "positive"),
        (np.zeros((2, 2, 2)), {}, "1-D"),
        (np.array([]), {}, "empty"),
    ],
)
def test_bad_contexts_are_clear_errors(model, signal, kwargs, match):
    args = {"fs": FS, "steps": 5, **kwargs}
    with pytest.raises(RecordError, match=match):
        continue_signal(model, signal, **args)


def test_bad_model_or_settings(model):
    with pytest.raises(ModelInputError, match="language model"):
        continue_signal(create_model("heartgpt-ecg-af"), ecg_like(), fs=FS, steps=5)
    with pytest.raises(ModelInputError, match="temperature"):
        continue_signal(model, ecg_like(), fs=FS, steps=5, temperature=-1)
    with pytest.raises(CardiolensError):
        continue_signal(model, ecg_like(), fs=FS, steps=-1)


@pytest.mark.realdata
def test_heartgpt_continues_the_example_ecg(heartgpt_dir):
    ecg = import_heartgpt(heartgpt_dir / "ECGPT_560k_iters.zip")
    x = np.loadtxt(heartgpt_dir / "example_inputs" / "example_context_ECG.csv")
    out = continue_signal(ecg, x, fs=100, steps=100, greedy=True)
    # the context's tokens are HeartGPT's: min-max of the 500-sample window to 0..100, rounded
    expected = np.round((x - x.min()) / (x.max() - x.min()) * 100)
    np.testing.assert_array_equal(out.context_tokens, expected)
    # a plausible ECG continuation: it stays in the context's range and has an R peak (top 20% of the
    # range) within the next second, as the context has one every ~0.8 s
    assert x.min() - 1e-6 <= out.signal.min() and out.signal.max() <= x.max() + 1e-6
    assert out.signal.max() > x.min() + 0.8 * (x.max() - x.min())
    with pytest.raises(RecordError, match="PPG context given to 'heartgpt-ecg'"):
        continue_signal(ecg, x, fs=100, steps=5, modality="PPG")
    with pytest.raises(RecordError, match="expects 100 Hz, the signal is at 50 Hz"):
        continue_signal(ecg, x, fs=50, steps=5, resample=False)


def test_a_respiration_lead_is_not_continued():
    from cardiolens.models import load_model

    t = np.arange(1000) / 100
    rec = Record(np.stack([np.sin(2 * np.pi * 0.25 * t), np.sin(2 * np.pi * 1.2 * t)]), 100.0, ["RESP", "PPG_IR"])
    with pytest.raises(RecordError, match="lead 'RESP' is neither ECG nor PPG; 'ecgpt-small' continues ECG"):
        continue_signal(load_model("ecgpt-small"), rec, lead="RESP", steps=5)
    with pytest.raises(RecordError, match="PPG context given to 'ecgpt-small'"):  # PPG_IR: PPG by its name
        continue_signal(load_model("ecgpt-small"), rec, lead="PPG_IR", steps=5)
