"""Generation audit: sampling settings that used to crash with a raw torch/Python error, ``steps=0`` after
resampling, and the CSV's ``time_s`` column keeping one distinct time per sample for long recordings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cardiolens.errors import ModelInputError
from cardiolens.generate import continue_signal, generate, sample_next, write_continuation
from cardiolens.models import GPT, GPTConfig, create_model
from cardiolens.signal.record import Record


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, dropout=0.0))
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    return m.eval()


@pytest.mark.parametrize("temperature", [1e-40, 1e-45, 1e-300])
def test_a_tiny_positive_temperature_is_greedy_not_a_crash(model, temperature):
    # logits / T overflowed to inf and softmax gave NaN: torch.multinomial raised a RuntimeError
    greedy = generate(model, [1, 2, 3], steps=10, greedy=True)
    assert torch.equal(generate(model, [1, 2, 3], steps=10, temperature=temperature, seed=0), greedy)
    logits = torch.tensor([[-3.0, -1.0, -2.0], [5.0, 1.0, 5.0]])  # all negative / a tie for the maximum
    drawn = torch.stack([sample_next(logits, temperature=temperature) for _ in range(20)])
    assert bool((drawn[:, 0] == 1).all()) and set(drawn[:, 1].tolist()) <= {0, 2}


def test_masked_logits_still_sample_normally():
    logits = torch.tensor([[0.0, float("-inf"), 0.0]])
    drawn = {int(sample_next(logits, generator=torch.Generator().manual_seed(s))) for s in range(40)}
    assert drawn == {0, 2}


def test_numpy_and_tensor_temperatures_are_numbers(model):
    reference = generate(model, [1, 2, 3], steps=8, temperature=0.5, seed=0)
    assert torch.equal(generate(model, [1, 2, 3], steps=8, temperature=np.float32(0.5), seed=0), reference)
    assert torch.equal(generate(model, [1, 2, 3], steps=8, temperature=torch.tensor(0.5), seed=0), reference)
    with pytest.raises(ModelInputError, match="temperature .* got True"):
        generate(model, [1, 2, 3], steps=2, temperature=True)
    with pytest.raises(ModelInputError, match="temperature .* got '0.5'"):
        generate(model, [1, 2, 3], steps=2, temperature="0.5")


@pytest.mark.parametrize("seed", [2**70, -(2**64), "abc", 1.5, True])
def test_a_bad_seed_is_a_clear_error(model, seed):
    with pytest.raises(ModelInputError, match="seed"):
        generate(model, [1, 2, 3], steps=2, seed=seed)


def test_integer_like_seeds_are_taken(model):
    reference = generate(model, [1, 2, 3], steps=8, seed=5)
    assert torch.equal(generate(model, [1, 2, 3], steps=8, seed=np.int64(5)), reference)
    assert generate(model, [1, 2, 3], steps=8, seed=2**64 - 1).shape == (11,)


def test_zero_steps_after_resampling_is_an_empty_continuation():
    torch.manual_seed(0)
    m = create_model("gpt", n_layer=1, n_head=2, n_embd=16, block_size=64, modality="ECG", fs=100.0).eval()
    x = np.sin(np.linspace(0, 20, 1000))  # 2 s at 500 Hz
    out = continue_signal(m, x, fs=500, steps=0)
    assert out.resampled and out.signal.shape == (0,) and out.tokens.shape == (0,)


def test_time_column_has_one_time_per_sample_in_a_long_recording(tmp_path):
    # 3 h at 360 Hz: times above 10,000 s written with 7 significant digits repeated every 3-4 samples
    fs = 360.0
    n = int(3 * 3600 * fs)
    x = np.sin(np.arange(n) / fs * 2 * np.pi * 1.2).astype(np.float32)
    record = Record(signal=x[None, :], fs=fs, leads=["II"], units=["mV"], name="long")
    torch.manual_seed(0)
    m = create_model("gpt", n_layer=1, n_head=2, n_embd=16, block_size=64, modality="ECG", fs=fs).eval()
    done = write_continuation(record, continue_signal(m, x[-64:], fs=fs, steps=20, seed=0, min_context=10), tmp_path)
    table = pd.read_csv(done.csv)
    assert np.all(np.diff(table["time_s"].to_numpy()) > 0)
    np.testing.assert_allclose(table["time_s"], table["sample"] / fs, rtol=0, atol=1e-6)


def test_generating_past_the_window_says_how_the_context_was_kept(tmp_path):
    from cardiolens.generate import generate_file

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=128, dropout=0.0)).eval()
    path = tmp_path / "ctx.csv"
    np.savetxt(path, np.sin(np.arange(120) / 3.0))  # 120 context tokens at 100 Hz, window 128
    kwargs = {"fs": 100.0, "greedy": True}
    inside = generate_file(model, path, steps=9, out=tmp_path / "a", **kwargs)  # 120 + 9 fit: the 9th is never fed
    assert "window" not in inside.summary
    past = generate_file(model, path, steps=20, out=tmp_path / "b", **kwargs)
    assert "re-primed from the last 96 tokens, so each token saw 96-128 tokens" in past.summary
    exact = generate_file(model, path, steps=20, out=tmp_path / "c", keep=128, **kwargs)
    assert "every token saw the last 128 (a sliding window, as HeartGPT's published generation)" in exact.summary
    # keep= reaches the sampler (generate returns the context and the new tokens)
    context = torch.as_tensor(exact.continuation.context_tokens)[None]
    for done, keep in ((exact, 128), (past, 96)):
        assert np.array_equal(
            done.continuation.tokens, generate(model, context, steps=20, greedy=True, keep=keep)[0, -20:]
        )
