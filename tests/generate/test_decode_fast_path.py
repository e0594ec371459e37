"""The fast decoding path (prefill of the last position only, decode_logits, chunked causal attention)
computes what the plain forward pass computes, for every kind of GPT the registry can build."""

from __future__ import annotations

from functools import partial

import numpy
import pytest
import torch

from cardiolens.errors import ModelInputError
from cardiolens.generate import compiled, generate
from cardiolens.models import GPT, GPTConfig

CONFIGS = {
    "gelu-bias": {},
    "heartgpt-like": {"activation": "relu", "attn_scale": 64**-0.5, "n_head": 8},
    "qkv-bias-odd-scale": {"qkv_bias": True, "n_head": 8},  # head width 8: scale 8 ** -0.5 is not a power of two
    "no-bias-tied": {"bias": False, "tie_weights": True, "n_head": 2},
}


def build(overrides: dict) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_embd=64, block_size=160, dropout=0.0, **overrides)).eval()
    with torch.no_grad():  # non-zero biases and LayerNorm affines, so that every term is exercised
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name or name.startswith("ln_f"):
                p.add_(0.1 * torch.randn_like(p))
    return model


# the decoding steps: PyTorch's (GPT.decode_logits) and the compiled numba one, with their tolerances
STEPS = {
    "torch": (lambda model, cache: partial(model.decode_logits, cache=cache), 1e-5),
    "compiled": (compiled.CompiledDecoder, 1e-4),  # reassociated float32 sums
}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("engine", STEPS)
def test_prefill_and_decode_equal_the_full_forward_and_fill_the_cache_alike(name, B, engine):
    model = build(CONFIGS[name])
    make_step, tol = STEPS[engine]
    tokens = torch.randint(0, model.config.vocab_size, (B, 150))
    with torch.no_grad():
        full = model(tokens)  # (B, T, V)
        reference = model.new_cache(B)
        model.forward_features(tokens, cache=reference)  # every position's keys and values at once
        cache = model.new_cache(B)
        prime = model.forward_features(tokens[:, :100], cache=cache, last_only=True)
        assert prime.shape == (B, 1, model.config.n_embd) and cache.length == 100
        torch.testing.assert_close(model.forward_head(prime[:, -1]), full[:, 99], atol=1e-5, rtol=1e-5)
        step = make_step(model, cache)
        for i in range(100, 150):
            logits = step(tokens[:, i])  # (B, V)
            torch.testing.assert_close(logits, full[:, i], atol=tol, rtol=tol)
    assert cache.length == 150
    torch.testing.assert_close(cache.kv_all[..., :150], reference.kv_all[..., :150], atol=1e-5, rtol=1e-5)


def test_last_only_keeps_every_position_in_the_cache():
    model = build({})
    tokens = torch.randint(0, 101, (2, 120))
    with torch.no_grad():
        a, b = model.new_cache(2), model.new_cache(2)
        model.forward_features(tokens, cache=a, last_only=True)
        model.forward_features(tokens, cache=b)
    for ka, kb in zip(a.kv, b.kv, strict=True):
        torch.testing.assert_close(ka[..., :120], kb[..., :120])


def test_chunked_causal_attention_equals_the_fused_kernel():
    # without autograd on CPU, attention over more than 64 tokens runs in query chunks
    model = build({"activation": "relu", "attn_scale": 64**-0.5, "n_head": 8})
    tokens = torch.randint(0, 101, (2, 160))
    with torch.no_grad():
        chunked = model(tokens)
    with torch.enable_grad():
        fused = model(tokens).detach()
    torch.testing.assert_close(chunked, fused, atol=1e-5, rtol=1e-5)


def test_decode_refuses_a_cache_of_another_batch_size():
    model = build({})
    cache = model.new_cache(2)
    with torch.no_grad():
        model.forward_features(torch.zeros(2, 4, dtype=torch.long), cache=cache)
        for step in (partial(model.decode_logits, cache=cache), compiled.CompiledDecoder(model, cache)):
            with pytest.raises(ModelInputError, match="cache holds 2 streams, tokens have 1"):
                step(torch.zeros(1, dtype=torch.long))


# --- the compiled (numba) decoding step -----------------------------------------------------------


def test_the_compiled_softmax_exponential_is_accurate_over_its_whole_range():
    x = torch.linspace(-120.0, 0.0, 20001).numpy().copy()
    expected = torch.exp(torch.from_numpy(x).double().clamp(min=-87.0)).numpy()
    bits = numpy.empty(x.size, numpy.int32)
    compiled._exp_shifted(x, numpy.float32(0.0), bits, bits.view(numpy.float32))
    numpy.testing.assert_allclose(x, expected, rtol=3e-7)
    y = numpy.array([3.0, 1.0, -2.0], dtype=numpy.float32)  # shifted by its maximum, as softmax does
    bits = numpy.empty(3, numpy.int32)
    compiled._exp_shifted(y, numpy.float32(3.0), bits, bits.view(numpy.float32))
    numpy.testing.assert_allclose(y, numpy.exp([0.0, -2.0, -5.0]), rtol=3e-7)


def test_the_compiled_step_refuses_what_it_cannot_run_and_auto_falls_back():
    model = build({})
    with pytest.raises(ModelInputError, match="fewer than 16 streams"):
        generate(model, torch.zeros(16, 4, dtype=torch.long), steps=2, engine="compiled")
    with pytest.raises(ModelInputError, match="engine must be one of"):
        generate(model, [1, 2, 3], steps=2, engine="numba")
    with pytest.raises(ModelInputError, match="float32 model on the CPU"):
        generate(model.double(), [1, 2, 3], steps=2, engine="compiled")
    # engine="auto" takes the PyTorch step where the compiled one does not apply
    assert generate(model, [1, 2, 3], steps=2, engine="auto").shape == (5,)


@pytest.mark.parametrize("name", ["gelu-bias", "heartgpt-like"])
def test_generation_is_the_same_with_either_engine_past_the_window(name):
    # block_size 160: 300 new tokens re-prime the cache twice, the compiled step resuming each time
    model = build(CONFIGS[name])
    context = torch.randint(0, 101, (2, 120))
    greedy = {e: generate(model, context, steps=300, greedy=True, engine=e) for e in ("torch", "compiled")}
    assert torch.equal(greedy["torch"], greedy["compiled"])
    sampled = {e: generate(model, context, steps=300, top_k=5, seed=7, engine=e) for e in ("torch", "compiled")}
    assert torch.equal(sampled["torch"], sampled["compiled"])
