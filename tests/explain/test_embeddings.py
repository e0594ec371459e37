"""Cycle phase, hidden states, homonym similarity, the phase probe and projections."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiolens.errors import ModelInputError
from cardiolens.explain import (
    cycle_phase,
    hidden_states,
    homonym_similarity,
    phase_probe,
    prepare_window,
    project_states,
)
from cardiolens.explain.plots import plot_embedding_projection, plot_homonyms, plot_phase_probe


def test_cycle_phase_is_linear_between_beats():
    phase = cycle_phase(20, np.array([2, 6, 16]))
    assert np.isnan(phase[:2]).all() and np.isnan(phase[16:]).all()
    np.testing.assert_allclose(phase[2:6], [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(phase[6:16], np.arange(10) / 10)


def test_hidden_states_are_the_models(gpt_lm, ecg):
    w = prepare_window(gpt_lm, ecg, fs=100.0)
    states = hidden_states(gpt_lm, w)
    assert states.shape == (3, 256, 32)
    with torch.no_grad():
        ref = gpt_lm.forward_features(torch.as_tensor(w.tokens)[None], return_hidden_states=True).hidden_states
    np.testing.assert_allclose(states[2], ref[2][0].numpy(), atol=1e-6)


def _synthetic(n_windows: int = 12, T: int = 200, C: int = 8, seed: int = 0):
    """Layer 0: noise; layer 1: (sin, cos) of the phase + noise; tokens repeat across phases."""
    rng = np.random.default_rng(seed)
    states, phases, tokens, groups = [], [], [], []
    for i in range(n_windows):
        peaks = np.arange(rng.integers(0, 20), T, 50)
        ph = cycle_phase(T, peaks)
        filled = np.nan_to_num(ph)
        s = rng.standard_normal((2, T, C)) * 0.3
        s[1, :, :2] *= 0.2  # little noise where the phase is written
        s[1, :, 0] += np.sin(2 * np.pi * filled)
        s[1, :, 1] += np.cos(2 * np.pi * filled)
        states.append(s.astype(np.float32))
        phases.append(ph)
        tokens.append(np.round(np.abs(np.sin(2 * np.pi * filled)) * 5).astype(int))
        groups.append(f"rec{i // 2}")
    return states, phases, tokens, groups


def test_phase_probe_finds_the_layer_that_encodes_phase():
    states, phases, tokens, groups = _synthetic()
    probe = phase_probe(states, phases, groups, tokens, n_bins=8, folds=3, per_window=60)
    assert probe.layers == ["embedding", "block 0"]
    assert probe.accuracy[1] > 0.8
    assert probe.accuracy[0] < 0.3  # noise: near chance (1/8)
    assert probe.circular_error[1] < 0.06 < 0.15 < probe.circular_error[0]
    assert probe.chance < 0.2
    # |sin| tokens cannot tell rising from falling halves of the cycle: well below the phase layer
    assert probe.token_baseline < probe.accuracy[1] - 0.2
    assert probe.n_groups == 6 and probe.folds == 3
    assert set(probe.as_dict()["layers"]) == {"embedding", "block 0"}
    with pytest.raises(ModelInputError, match="at least 2 records"):
        phase_probe(states[:2], phases[:2], ["a", "a"])


def test_homonyms_separate_where_the_phase_is_encoded():
    states, phases, tokens, _ = _synthetic()
    sim = homonym_similarity(states, phases, tokens, token_value=2)
    assert sim.token_value == 2 and sim.n_near > 0 and sim.n_far > 0
    assert sim.gap[1] > 0.3  # same token, same phase: alike; distant phases: not
    assert abs(sim.gap[0]) < 0.1  # noise knows no phase
    auto = homonym_similarity(states, phases, tokens)
    assert auto.n_far > 0
    with pytest.raises(ModelInputError, match="near and"):
        homonym_similarity(states[:1], phases[:1], tokens[:1], token_value=0, far_phase=0.6)


def test_projections(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5))
    x[:, 0] *= 10
    xy = project_states(x, "pca")
    assert xy.shape == (60, 2)
    assert abs(np.corrcoef(xy[:, 0], x[:, 0])[0, 1]) > 0.95  # the first component is the wide axis
    assert project_states(x[:20], "tsne").shape == (20, 2)
    with pytest.raises(ModelInputError, match="available: pca, tsne, umap"):
        project_states(x, "mds")
    plot_embedding_projection(xy, rng.random(60), out=tmp_path / "p.png")
    states, phases, tokens, groups = _synthetic()
    plot_phase_probe({"toy": phase_probe(states, phases, groups, folds=2)}, out=tmp_path / "q.png")
    plot_homonyms(homonym_similarity(states, phases, tokens), out=tmp_path / "h.png")
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("p.png", "q.png", "h.png"))
