"""Attention maps, their aggregates, one token's view and the pretrained/fine-tuned shift."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiolens.errors import ModelInputError
from cardiolens.explain import (
    AttentionMaps,
    attention_beat_stats,
    attention_maps,
    attention_rollout,
    attention_shift,
    beat_irregularity,
    chance_rollout,
    mean_attention,
    prepare_window,
    token_attention,
)
from cardiolens.explain.plots import plot_attention_aggregate, plot_attention_heads, plot_token_attention


def _random_maps(L: int = 3, H: int = 2, T: int = 7, seed: int = 0) -> AttentionMaps:
    rng = np.random.default_rng(seed)
    w = rng.random((L, H, T, T)) * np.tril(np.ones((T, T)))
    w /= w.sum(-1, keepdims=True)
    return AttentionMaps(w.astype(np.float32), np.zeros(T, dtype=np.int64), "toy")


def test_maps_are_the_models_causal_softmax(gpt_lm, ecg):
    w = prepare_window(gpt_lm, ecg, fs=100.0)
    maps = attention_maps(gpt_lm, w)
    assert maps.weights.shape == (2, 2, 256, 256)
    np.testing.assert_allclose(maps.weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(maps.weights, 1) == 0)
    with torch.no_grad():
        ref = gpt_lm(torch.as_tensor(w.tokens)[None], return_attention=True).attentions[1][0].numpy()
    np.testing.assert_allclose(maps.weights[1], ref, atol=1e-6)
    np.testing.assert_array_equal(maps.tokens, w.tokens)


def test_rollout_matches_the_definition():
    maps = _random_maps()
    eye = np.eye(7)
    mixed = [0.5 * maps.weights[i].astype(np.float64).mean(0) + 0.5 * eye for i in range(3)]
    mixed = [a / a.sum(-1, keepdims=True) for a in mixed]
    expected = mixed[2] @ mixed[1] @ mixed[0]
    np.testing.assert_allclose(attention_rollout(maps), expected, atol=1e-12)
    np.testing.assert_allclose(attention_rollout(maps, token=4), expected[4], atol=1e-12)
    np.testing.assert_allclose(attention_rollout(maps, token=-1), expected[6], atol=1e-12)
    np.testing.assert_allclose(attention_rollout(maps).sum(-1), 1.0)
    np.testing.assert_allclose(mean_attention(maps, layers=[0, 2]), maps.weights[[0, 2]].mean((0, 1)), atol=1e-6)
    np.testing.assert_allclose(attention_rollout(maps, residual=0.0, layers=1), maps.weights[0].mean(0), atol=1e-6)


def test_rollout_relative_to_chance_removes_the_causal_pile_up():
    T = 7
    uniform = np.tril(np.ones((T, T)))
    uniform /= uniform.sum(-1, keepdims=True)
    flat = AttentionMaps(np.broadcast_to(uniform, (3, 2, T, T)).astype(np.float32), np.zeros(T, np.int64), "toy")
    plain = attention_rollout(flat, token=-1)
    assert plain[0] > 3 * plain[T - 2]  # uniform causal attention alone piles onto the first tokens
    np.testing.assert_allclose(chance_rollout(flat, token=-1), plain, atol=1e-12)
    np.testing.assert_allclose(attention_rollout(flat, token=-1, relative_to_chance=True), 1.0, atol=1e-6)
    # a model that attends only to token 3 beats chance there and nowhere else (the residual keeps the rest)
    focused = np.zeros((T, T))
    focused[:, 0] = 1.0
    focused[3:, 3], focused[3:, 0] = 1.0, 0.0
    maps = AttentionMaps(np.broadcast_to(focused, (3, 2, T, T)).astype(np.float32), np.zeros(T, np.int64), "toy")
    ratio = attention_rollout(maps, token=-1, relative_to_chance=True)
    assert ratio.argmax() == 3 and ratio[3] > 1.0 > ratio[1]
    full = attention_rollout(maps, relative_to_chance=True)
    np.testing.assert_allclose(full[-1], ratio, atol=1e-9)
    assert np.all(full[np.triu_indices(T, 1)] == 0)  # tokens a row cannot see stay 0
    # a bidirectional model is compared with uniform attention over the whole window
    both = AttentionMaps(np.full((2, 1, T, T), 1.0 / T, dtype=np.float32), np.zeros(T, np.int64))
    np.testing.assert_allclose(chance_rollout(both, residual=0.0), 1.0 / T, atol=1e-9)
    np.testing.assert_allclose(attention_rollout(both, relative_to_chance=True), 1.0, atol=1e-6)
    with pytest.raises(ModelInputError, match="residual must be in"):
        chance_rollout(both, residual=1.0)


def test_token_attention_views_and_errors():
    maps = _random_maps()
    np.testing.assert_allclose(token_attention(maps, 5, layer=1, head=0), maps.weights[1, 0, 5])
    np.testing.assert_allclose(token_attention(maps, 5, layer=-1), maps.weights[2, :, 5].mean(0))
    np.testing.assert_allclose(token_attention(maps, 5, layer="mean"), maps.weights[:, :, 5].mean((0, 1)))
    assert token_attention(maps, 3)[4:].sum() == 0  # causal: nothing after the token
    with pytest.raises(ModelInputError, match=r"token 7 is outside the context of 'toy': 7 tokens \(0..6"):
        token_attention(maps, 7)
    with pytest.raises(ModelInputError, match=r"no layer 3: it has 3 layers \(0..2"):
        token_attention(maps, 1, layer=3)
    with pytest.raises(ModelInputError, match=r"no head 2: it has 2 heads \(0..1"):
        maps.get(0, 2)
    with pytest.raises(ModelInputError, match="rollout combines every head"):
        token_attention(maps, 1, head=0)


def test_attention_needs_an_attention_model(cnn, ecg):
    w = prepare_window(cnn, ecg, fs=100.0)
    with pytest.raises(ModelInputError, match="no attention layers.*available for this model: gradcam"):
        attention_maps(cnn, w)


def test_beat_stats_against_constructed_profiles():
    peaks = np.array([50, 130, 190, 300, 340, 450])
    irregular = beat_irregularity(peaks)
    assert np.isnan(irregular[[0, -1]]).all()
    assert irregular[1] == pytest.approx(abs(60 - 80) / np.diff(peaks).mean())
    on_peaks = np.zeros(500)
    on_peaks[peaks] = 1.0 / len(peaks)
    s = attention_beat_stats(on_peaks, peaks, fs=100.0, tolerance=0.05, context=500, exclude_self=False)
    assert s["peak_share"] == pytest.approx(1.0)
    assert s["chance"] == pytest.approx(6 * 11 / 500)
    assert s["enrichment"] == pytest.approx(1.0 / s["chance"])
    with_self = on_peaks.copy()
    with_self[499] = 5.0  # the query's own position (residual weight in a rollout)
    assert attention_beat_stats(with_self, peaks, 100.0, 0.05, 500)["peak_share"] == pytest.approx(1.0)
    assert attention_beat_stats(with_self, peaks, 100.0, 0.05, 500, exclude_self=False)["peak_share"] < 0.2
    uniform = np.full(500, 1 / 500)
    assert attention_beat_stats(uniform, peaks, 100.0, 0.05)["enrichment"] == pytest.approx(1.0)
    follows = np.zeros(500)
    follows[peaks[1:-1]] = irregular[1:-1] + 0.01  # attention that grows with irregularity
    s = attention_beat_stats(follows, peaks, 100.0, 0.05, context=500)
    assert s["irregularity_rho"] == pytest.approx(1.0)
    assert s["irregular_share"] > 0.5
    s = attention_beat_stats(follows.max() - follows + 1e-3, peaks, 100.0, 0.05, context=500)
    assert s["irregularity_rho"] < 0


def test_shift_between_a_model_and_itself_is_zero(gpt_lm, gpt_classifier, ecg):
    windows = [prepare_window(gpt_lm, ecg, fs=100.0)]
    peaks = [np.arange(30, 256, 80)]
    same = attention_shift(gpt_lm, gpt_lm, windows, peaks)
    assert np.all(same.distance == 0)
    assert same.summary()["peak_share"]["difference"] == 0
    other = attention_shift(gpt_lm, gpt_classifier, windows, peaks, keep_profiles=True)
    assert other.views[:3] == ["rollout", "mean", "layer 0"]
    assert other.pretrained["peak_share"].shape == (1, len(other.views))
    assert np.all(other.distance > 0)
    s = other.summary("layer 1")
    assert s["peak_share"]["difference"] == pytest.approx(
        float(other.finetuned["peak_share"][0, 3] - other.pretrained["peak_share"][0, 3])
    )
    with pytest.raises(ModelInputError, match="1 windows but 2 peak arrays"):
        attention_shift(gpt_lm, gpt_lm, windows, peaks * 2)


def test_attention_figures(gpt_lm, ecg, tmp_path):
    w = prepare_window(gpt_lm, ecg, fs=100.0)
    maps = attention_maps(gpt_lm, w)
    plot_attention_heads(maps, out=tmp_path / "a.png")
    plot_attention_heads(maps, token=-1, out=tmp_path / "b.png")
    plot_attention_aggregate(maps, out=tmp_path / "c.png")
    plot_token_attention(
        w, {"x": token_attention(maps, -1), "y": token_attention(maps, -1, 0)}, -1, out=tmp_path / "d.png"
    )
    for name in "abcd":
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
