"""Every registered preset, with tiny inputs (timm style): builds, shapes, attention, caches, input checks."""

from __future__ import annotations

import pytest
import torch

from cardiolens.errors import CardiolensError, ModelInputError
from cardiolens.models import GPT, GPTConfig, GPTOutput, create_model, get_config, list_models, register_model, registry
from cardiolens.models.presets import PRESETS as GPT_PRESETS

ALL_PRESETS = list_models()
PRESETS = [n for n in ALL_PRESETS if n in GPT_PRESETS]  # the token models; the CNNs are tested below
CNN_PRESETS = [n for n in ALL_PRESETS if n.startswith("resnet1d")]
B, T = 2, 12


def _tokens(model: GPT, t: int = T, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (B, t), generator=g)


@pytest.fixture(scope="module")
def models() -> dict[str, GPT]:
    torch.manual_seed(0)
    return {name: create_model(name).eval() for name in PRESETS}


def test_registry_lists_the_presets():
    for name in ("gpt", "heartgpt-ecg", "heartgpt-ppg", "heartgpt-ecg-af", "heartgpt-ppg-af", "heartgpt-ppg-beat"):
        assert name in PRESETS
    assert {"ecgpt-small", "ppgpt-small"} <= set(PRESETS)
    assert list_models("heartgpt-*") == [n for n in ALL_PRESETS if n.startswith("heartgpt-")]
    assert set(PRESETS) | set(CNN_PRESETS) == set(ALL_PRESETS)


def test_unknown_name_and_field_are_clear_errors():
    with pytest.raises(CardiolensError, match="unknown model 'heartgpt-eeg'"):
        create_model("heartgpt-eeg")
    with pytest.raises(CardiolensError, match="n_layers"):
        create_model("heartgpt-ecg", n_layers=3)
    with pytest.raises(ModelInputError, match="must divide"):
        GPTConfig(n_embd=64, n_head=5)
    with pytest.raises(ModelInputError, match="activation"):
        GPTConfig(activation="swish")


def test_register_model_decorator_and_duplicates():
    @register_model("tmp-test-preset")
    def _build(**kw):
        return GPT(GPTConfig(n_layer=1, **kw))

    try:
        assert "tmp-test-preset" in list_models()
        assert create_model("tmp-test-preset", n_embd=32).config.n_embd == 32
        with pytest.raises(CardiolensError, match="already registered"):
            register_model("tmp-test-preset")(lambda **kw: None)
    finally:
        registry._PRESETS.pop("tmp-test-preset", None)


def test_heartgpt_presets_match_the_published_architecture():
    for name, vocab in (("heartgpt-ecg", 101), ("heartgpt-ppg", 102)):
        cfg = get_config(name)
        assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.vocab_size) == (8, 8, 64, 500, vocab)
        assert cfg.mlp_dim == 256 and cfg.activation == "relu" and not cfg.qkv_bias and not cfg.tie_weights
        assert cfg.scale == pytest.approx(64**-0.5)  # n_embd, not the head width of 8
        assert cfg.levels == 101
    assert get_config("heartgpt-ecg").fs == 100 and get_config("heartgpt-ppg").fs == 50
    model = create_model("heartgpt-ecg")
    # 443k weights: embeddings + 8 blocks + final norm + head, no mask buffers
    assert model.num_params() == 101 * 64 + 500 * 64 + 8 * (3 * 64 * 64 + 64 * 65 + 256 * 65 + 64 * 257 + 4 * 64) + (
        2 * 64 + 101 * 65
    )
    assert not list(model.buffers())


@pytest.mark.parametrize("name", PRESETS)
def test_forward_shapes(models, name):
    model = models[name]
    cfg = model.config
    tokens = _tokens(model)
    features = model.forward_features(tokens)
    assert features.shape == (B, T, cfg.n_embd)
    out = model(tokens)
    if cfg.head == "lm":
        assert out.shape == (B, T, cfg.vocab_size)
    elif cfg.head_pool == "none":
        assert out.shape == (B, T, cfg.num_outputs)
    else:
        assert out.shape == (B, cfg.num_outputs)
    torch.testing.assert_close(model.forward_head(features), out)
    probs = model.predict_proba(tokens)
    assert torch.all((probs >= 0) & (probs <= 1))


@pytest.mark.parametrize("name", PRESETS)
def test_attention_weights_are_causal_and_normalised(models, name):
    model = models[name]
    cfg = model.config
    tokens = _tokens(model)
    out = model(tokens, return_attention=True, return_hidden_states=True)
    assert isinstance(out, GPTOutput)
    assert len(out.attentions) == cfg.n_layer and len(out.hidden_states) == cfg.n_layer + 1
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    for att in out.attentions:
        assert att.shape == (B, cfg.n_head, T, T)
        torch.testing.assert_close(att.sum(-1), torch.ones(B, cfg.n_head, T))
        assert torch.all(att[..., future] == 0)
    # the explicit path that returns weights computes the same outputs as the fused one
    torch.testing.assert_close(out.logits, model(tokens), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.features, model.ln_f(out.hidden_states[-1]))


def test_attention_scale_is_a_config_field():
    torch.manual_seed(1)
    a = GPT(GPTConfig(n_layer=1, dropout=0.0)).eval()
    b = GPT(GPTConfig(n_layer=1, dropout=0.0, attn_scale=a.config.n_embd**-0.5)).eval()
    b.load_state_dict(a.state_dict())
    tokens = _tokens(a)
    assert not torch.allclose(a(tokens), b(tokens))
    # reference: the scale is applied to q.k before the softmax
    att = b(tokens, return_attention=True).attentions[0]
    h = b.blocks[0].ln_1(b.wte(tokens) + b.wpe.weight[:T])
    q, k, _ = b.blocks[0].attn.c_attn(h).split(64, dim=-1)
    q0, k0 = q[..., :16], k[..., :16]  # head 0 of 4
    scores = (q0 @ k0.transpose(1, 2)) * 64**-0.5
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(att[:, 0], scores.softmax(-1))


def test_kv_cache_chunks_equal_one_pass():
    torch.manual_seed(2)
    model = GPT(GPTConfig(n_layer=2, block_size=32, dropout=0.0)).eval()
    tokens = _tokens(model, 20)
    with torch.no_grad():
        full = model.forward_features(tokens)
        cache = model.new_cache(B)
        parts = [model.forward_features(tokens[:, :8], cache=cache)]  # prefill
        parts.append(model.forward_features(tokens[:, 8:12], cache=cache))  # chunk after cached positions
        for i in range(12, 20):  # one token at a time, lean path
            parts.append(model.decode_features(tokens[:, i], cache).unsqueeze(1))
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ModelInputError, match="exceed the context window"):
        model.forward_features(torch.zeros(B, 13, dtype=torch.long), cache=cache)


def test_weight_tying_in_our_presets(models):
    for name in ("ecgpt-small", "ppgpt-small"):
        model = models[name]
        assert model.head.fc.weight is model.wte.weight
    assert models["heartgpt-ecg"].head.fc.weight is not models["heartgpt-ecg"].wte.weight


def test_reset_head_for_fine_tuning():
    model = create_model("heartgpt-ecg", dropout=0.0).eval()
    tokens = _tokens(model)
    model.reset_head("classifier", num_outputs=3, pool="none")
    assert model.config.head == "classifier" and model(tokens).shape == (B, T, 3)
    model.reset_head("classifier", num_outputs=1, pool="last")
    assert model(tokens).shape == (B, 1)


@pytest.mark.parametrize(
    "tokens, match",
    [
        (torch.rand(2, 5), "integer token ids"),
        (torch.tensor([[0, 1, 101]]), r"0\.\.100"),
        (torch.tensor([[-1, 1]]), r"0\.\.100"),
        (torch.zeros(2, 501, dtype=torch.long), "context window"),
        (torch.zeros(5, dtype=torch.long), r"\(batch, time\)"),
        (torch.zeros(2, 0, dtype=torch.long), "empty"),
    ],
)
def test_bad_tokens_are_clear_errors(models, tokens, match):
    with pytest.raises(ModelInputError, match=match):
        models["heartgpt-ecg"](tokens)


def test_dropout_only_in_training():
    torch.manual_seed(3)
    model = GPT(GPTConfig(n_layer=1, dropout=0.5))
    tokens = _tokens(model)
    model.train()
    assert not torch.allclose(model(tokens), model(tokens))
    model.eval()
    torch.testing.assert_close(model(tokens), model(tokens))


@pytest.mark.parametrize("name", CNN_PRESETS)
def test_cnn_presets_follow_the_backbone_api(name):
    model = create_model(name).eval()
    cfg = model.config
    x = torch.randn(2, cfg.in_channels, 400)
    features = model.forward_features(x)
    assert features.shape[0] == 2 and features.shape[2] == cfg.n_embd
    assert features.shape[1] == -(-400 // cfg.total_stride)  # positions after striding (ceil)
    out = model(x)
    assert out.shape == ((2, 400, 1) if cfg.head_pool == "none" else (2, 1))
    assert len(model.layer_groups()) == len(cfg.widths) + 2
