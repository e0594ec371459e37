"""generate_stream / continue_signal_stream: the same tokens as the one-shot functions, handed out in chunks."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from cardiolens.errors import ModelInputError, RecordError
from cardiolens.generate import continue_signal, continue_signal_stream, generate, generate_stream
from cardiolens.models import GPT, GPTConfig

FS = 100.0


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(n_layer=2, block_size=64, dropout=0.0, modality="ECG", fs=FS, signal_levels=101)).eval()


def ecg_like(seconds: float = 2.0, fs: float = FS) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    return (0.1 * np.sin(2 * np.pi * 0.3 * t) + np.exp(-(((t % 1.0) - 0.2) ** 2) / 0.0005)).astype(np.float32)


@pytest.mark.parametrize("chunk", [1, 7, 50, 500])
def test_chunks_join_to_generate(model, chunk):
    context = torch.randint(0, 101, (2, 40))
    # 150 steps from 40 tokens cross the 64-token window: the cache is re-primed inside the stream
    whole = generate(model, context, 150, top_k=5, seed=4)
    parts = list(generate_stream(model, context, 150, top_k=5, seed=4, chunk=chunk))
    assert [p.shape[1] for p in parts] == [min(chunk, 150 - i) for i in range(0, 150, chunk)]
    assert torch.equal(torch.cat(parts, dim=1), whole[:, 40:])


def test_chunks_may_be_taken_from_other_threads(model):
    context = torch.randint(0, 101, (30,))
    whole = generate(model, context, 60, seed=1)
    stream = generate_stream(model, context, 60, seed=1, chunk=20)
    parts = [next(stream)]
    box = []
    worker = threading.Thread(target=lambda: box.append(next(stream)))  # as a web server's thread pool does
    worker.start()
    worker.join()
    parts += box + list(stream)
    assert torch.is_grad_enabled()  # inference mode never leaks out of a chunk
    assert torch.equal(torch.cat(parts), whole[30:])


def test_bad_settings_raise_before_the_first_chunk(model):
    with pytest.raises(ModelInputError, match="temperature"):
        generate_stream(model, [1, 2, 3], 10, temperature=0)
    with pytest.raises(ModelInputError, match="chunk"):
        generate_stream(model, [1, 2, 3], 10, chunk=0)
    with pytest.raises(RecordError, match="constant"):
        continue_signal_stream(model, np.ones(200), fs=FS, steps=10)


def test_closing_a_stream_restores_the_mode(model):
    model.train()
    try:
        stream = generate_stream(model, [1, 2, 3, 4], 100, seed=0, chunk=10)
        next(stream)
        assert not model.training
        stream.close()
        assert model.training
    finally:
        model.eval()


def test_signal_stream_equals_continue_signal(model):
    x = ecg_like(3.0, 250.0) * 2 + 1  # resampled 250 -> 100 Hz, cropped to the last 64 samples
    direct = continue_signal(model, x, fs=250.0, steps=90, top_k=10, seed=7)
    stream = continue_signal_stream(model, x, fs=250.0, steps=90, top_k=10, seed=7, chunk=25)
    assert stream.result is None and stream.resampled and stream.model_fs == FS
    parts = list(stream)
    assert [p.start for p in parts] == [0, 25, 50, 75]
    np.testing.assert_array_equal(np.concatenate([p.tokens for p in parts]), direct.tokens)
    lo, hi = direct.scale
    # chunks are in signal units at the model's rate; the result is resampled back as a whole
    np.testing.assert_allclose(
        np.concatenate([p.values for p in parts]), lo + direct.tokens / 100 * (hi - lo), rtol=1e-5
    )
    np.testing.assert_allclose(stream.result.signal, direct.signal, rtol=1e-6)
    assert stream.result.signal.shape == (225,)
