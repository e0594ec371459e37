"""Token generation: the key-value cache changes nothing but speed; sampling is seedable and well-behaved."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiolens.errors import ModelInputError
from cardiolens.generate import generate
from cardiolens.models import GPT, GPTConfig, create_model, import_heartgpt

BLOCK = 32


@pytest.fixture(scope="module")
def model() -> GPT:
    """A tiny model with peaked next-token distributions (random weights, larger than the default init)."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=2, n_head=4, n_embd=32, block_size=BLOCK, dropout=0.0))
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    return m.eval()


def _context(b: int = 3, t: int = 10, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 101, (b, t), generator=torch.Generator().manual_seed(seed))


def _reference_sliding(model: GPT, context: torch.Tensor, steps: int) -> torch.Tensor:
    """The published generation loop: the last block_size tokens recomputed for every new token (greedy)."""
    out = context
    with torch.no_grad():
        for _ in range(steps):
            logits = model(out[:, -model.config.block_size :])[:, -1]
            out = torch.cat([out, logits.argmax(-1, keepdim=True)], dim=1)
    return out


def test_cached_greedy_equals_uncached_within_the_window(model):
    context = _context()
    cached = generate(model, context, steps=20, greedy=True)
    assert cached.shape == (3, 30) and torch.equal(cached[:, :10], context)
    assert torch.equal(cached, generate(model, context, steps=20, greedy=True, use_cache=False))
    assert torch.equal(cached, _reference_sliding(model, context, 20))


def test_sliding_window_policy(model):
    context = _context(t=BLOCK + 5)  # longer than the window: its last BLOCK tokens are used
    reference = _reference_sliding(model, context, 40)
    assert torch.equal(generate(model, context, steps=40, greedy=True, use_cache=False), reference)
    # keep=block_size re-primes at every step once the window is full: exactly the published loop
    assert torch.equal(generate(model, context, steps=40, greedy=True, keep=BLOCK), reference)
    # the default keeps 3/4 of the window: the first token (from the full window) is the same,
    # later ones may differ, all are valid
    default = generate(model, context, steps=40, greedy=True)
    assert default[:, BLOCK + 5].equal(reference[:, BLOCK + 5])
    assert default.shape == reference.shape and int(default.max()) < 101 and int(default.min()) >= 0
    # the default policy is: re-encode the last 24 tokens when the cache fills, then go on one by one
    manual = context.clone()
    with torch.no_grad():
        window = manual[:, -BLOCK:]
        for _ in range(40):
            nxt = model(window)[:, -1].argmax(-1, keepdim=True)
            manual = torch.cat([manual, nxt], dim=1)
            window = torch.cat([window, nxt], dim=1)
            if window.size(1) > BLOCK:
                window = window[:, -(BLOCK - BLOCK // 4) :]
    assert torch.equal(default, manual)


@pytest.mark.realdata
def test_real_heartgpt_cached_equals_uncached(heartgpt_dir):
    ecg = import_heartgpt(heartgpt_dir / "ECGPT_560k_iters.zip")
    x = np.loadtxt(heartgpt_dir / "example_inputs" / "example_context_ECG.csv")
    tokens = torch.tensor(np.round((x - x.min()) / (x.max() - x.min()) * 100), dtype=torch.long)
    context = tokens[:470]
    cached = generate(ecg, context, steps=30, greedy=True)  # the compiled step, one stream
    assert cached.shape == (500,)
    assert torch.equal(cached, generate(ecg, context, steps=30, greedy=True, use_cache=False))
    # from 300 tokens, 400 more: past the window, both engines re-prime the same way
    long = {e: generate(ecg, tokens[:300], steps=400, greedy=True, engine=e) for e in ("torch", "compiled")}
    assert torch.equal(long["torch"], long["compiled"])


def test_seeds_reproduce(model):
    context = _context()
    a = generate(model, context, steps=25, temperature=1.0, seed=7)
    b = generate(model, context, steps=25, temperature=1.0, seed=7)
    c = generate(model, context, steps=25, temperature=1.0, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(generate(model, context, 10, generator=g1), generate(model, context, 10, generator=g2))


def test_top_k_one_and_low_temperature_equal_greedy(model):
    context = _context()
    greedy = generate(model, context, steps=20, greedy=True)
    assert torch.equal(generate(model, context, steps=20, top_k=1, seed=0), greedy)
    assert torch.equal(generate(model, context, steps=20, temperature=1e-4, seed=0), greedy)


def test_top_k_samples_only_the_k_best(model):
    context = _context(b=4)
    out = generate(model, context, steps=20, top_k=3, temperature=2.0, seed=0)
    with torch.no_grad():
        logits = model(out[:, :-1])  # (B, T - 1, V): prediction for each next position
    top3 = logits.topk(3, dim=-1).indices[:, 9:]  # predictions of the 20 generated tokens
    assert torch.all((top3 == out[:, 10:, None]).any(-1))
    # and sampling really samples: not all greedy
    assert not torch.equal(out, generate(model, context, steps=20, greedy=True))


def test_batch_equals_one_by_one(model):
    context = _context(b=3)
    batch = generate(model, context, steps=15, greedy=True)
    for i in range(3):
        assert torch.equal(batch[i], generate(model, context[i], steps=15, greedy=True))


def test_inputs_and_mode(model):
    as_list = generate(model, [1, 2, 3, 4], steps=3, greedy=True)
    as_numpy = generate(model, np.array([1, 2, 3, 4]), steps=3, greedy=True)
    assert as_list.shape == (7,) and torch.equal(as_list, as_numpy)
    assert torch.equal(generate(model, [1, 2, 3], steps=0), torch.tensor([1, 2, 3]))
    model.train()
    try:
        generate(model, [1, 2, 3], steps=2, greedy=True)
        assert model.training
    finally:
        model.eval()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tokens": torch.rand(1, 5)}, "integer token ids"),
        ({"tokens": torch.tensor([[1, 2, 101]])}, r"0\.\.100"),
        ({"tokens": torch.tensor([[-3, 2]])}, r"0\.\.100"),
        ({"tokens": torch.zeros(1, 0, dtype=torch.long)}, "empty"),
        ({"tokens": torch.zeros(1, 2, 2, dtype=torch.long)}, "shaped"),
        ({"tokens": [1, 2, 3], "min_context": 5}, "shorter than the minimum"),
        ({"steps": -1}, "steps"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"keep": 0}, "keep"),
        ({"keep": BLOCK + 1}, "keep"),
    ],
)
def test_bad_input_is_a_clear_error(model, kwargs, match):
    args = {"tokens": [1, 2, 3], "steps": 2, **kwargs}
    with pytest.raises(ModelInputError, match=match):
        generate(model, **args)


def test_classifier_cannot_generate():
    model = create_model("heartgpt-ecg-af")
    with pytest.raises(ModelInputError, match="language-model head"):
        generate(model, [1, 2, 3], steps=2)


def test_full_cache_is_refused(model):
    cache = model.new_cache(1)
    with torch.no_grad():
        model.forward_features(torch.zeros(1, BLOCK, dtype=torch.long), cache=cache)
        with pytest.raises(ModelInputError, match="full"):
            model.decode_features(torch.zeros(1, dtype=torch.long), cache)


@pytest.mark.parametrize("engine", ["torch", "compiled"])
def test_single_stream_steps_run_on_one_thread_and_re_primes_on_all(model, engine):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    steps, primes = [], []
    original_step, original_features = model.decode_logits, model.forward_features

    def step_spy(token, cache):
        steps.append(torch.get_num_threads())
        return original_step(token, cache)

    def features_spy(*args, **kwargs):
        primes.append(torch.get_num_threads())
        return original_features(*args, **kwargs)

    try:
        model.decode_logits, model.forward_features = step_spy, features_spy
        # 4 + 60 tokens in a 32-token window, re-primed from the last 24 when full (after 28, 36, 44, 52 new
        # tokens): the prefill and 4 re-primes
        generate(model, [5, 6, 7, 8], steps=60, greedy=True, engine=engine)
        assert primes == [2] * 5
        if engine == "torch":  # the compiled step does not go through decode_logits
            assert steps and set(steps) == {1}
        assert torch.get_num_threads() == 2
    finally:
        del model.decode_logits, model.forward_features
        torch.set_num_threads(before)
