"""Deletion/insertion curves and the model-randomisation check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiolens.errors import ModelInputError
from cardiolens.explain import (
    faithfulness,
    integrated_gradients,
    occlusion,
    perturbation_curve,
    prepare_window,
    randomization_check,
    randomized_copy,
    rank_correlation,
    ranking,
)
from cardiolens.explain.adapter import as_explainable
from cardiolens.explain.faithfulness import layer_groups_top_down
from cardiolens.explain.plots import plot_faithfulness


def test_ranking_orders_by_value_and_breaks_ties_by_seed():
    v = np.array([[0.1, 3.0, 0.1, 2.0, 0.1, 0.1]])
    order = ranking(v, seed=0)
    assert order[:2].tolist() == [1, 3]
    assert sorted(order[2:].tolist()) == [0, 2, 4, 5]
    assert ranking(v, seed=0).tolist() == order.tolist()
    assert any(ranking(v, seed=s)[2:].tolist() != order[2:].tolist() for s in range(1, 6))


def test_curve_ends_are_the_window_and_the_baseline(window_model, ecg):
    w = prepare_window(window_model, ecg, fs=100.0)
    adapter = as_explainable(window_model)
    order = np.arange(w.signal.size)
    dele = perturbation_curve(window_model, w, order, 1, "deletion", steps=10)
    ins = perturbation_curve(window_model, w, order, 1, "insertion", steps=10)
    with torch.no_grad():
        p_full = float(adapter.probabilities(adapter.scorer(w)(w.tensor()))[0, 1])
    p_flat = 1 / (1 + np.exp(-20 * float(np.median(w.signal))))  # every sample at the median: z = 20 * median
    assert dele.scores[0] == pytest.approx(p_full) and ins.scores[-1] == pytest.approx(p_full)
    assert dele.scores[-1] == pytest.approx(p_flat, abs=1e-5) and ins.scores[0] == pytest.approx(p_flat, abs=1e-5)
    assert dele.fractions.tolist() == pytest.approx(np.linspace(0, 1, 11).tolist())
    with pytest.raises(ModelInputError, match="mode must be one of deletion, insertion"):
        perturbation_curve(window_model, w, order, 1, "erase")


def test_faithful_explanations_beat_random(window_model, ecg, tmp_path):
    w = prepare_window(window_model, ecg, fs=100.0)
    ig = integrated_gradients(window_model, w, n_steps=8)
    occ = occlusion(window_model, w)
    result = faithfulness(window_model, [ig, occ], steps=20, n_random=3)
    s = result.summary()
    assert s["target"] == "target"
    for m in ("ig", "occlusion"):
        assert s[m]["deletion_margin"] > 0.1 and s[m]["insertion_margin"] > 0.1
    assert result.deletion["ig"] < result.deletion["random"] < result.insertion["random"] < result.insertion["ig"]
    # the block reference deletes whole 0.1 s stretches: it reaches the same two ends by another path
    blocks, rand = result.curves["random blocks"]["deletion"], result.curves["random"]["deletion"]
    assert blocks.scores[[0, -1]] == pytest.approx(rand.scores[[0, -1]])
    assert not np.allclose(blocks.scores, rand.scores)
    assert s["ig"]["deletion_margin_blocks"] == pytest.approx(result.deletion["random blocks"] - result.deletion["ig"])
    assert "random blocks" not in faithfulness(window_model, [ig], steps=5, n_random=1, block=None).deletion
    plot_faithfulness(result, out=tmp_path / "f.png")
    other = prepare_window(window_model, ecg[::-1].copy(), fs=100.0)
    with pytest.raises(ModelInputError, match="same window"):
        faithfulness(window_model, [ig, occlusion(window_model, other)])


def test_randomized_copy_changes_weights_but_not_the_model(gpt_classifier):
    before = {k: v.clone() for k, v in gpt_classifier.state_dict().items()}
    rand = randomized_copy(gpt_classifier, seed=3)
    for k, v in gpt_classifier.state_dict().items():
        assert torch.equal(v, before[k])
    changed = [k for k, v in rand.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    weights = [k for k in before if k.endswith("weight") and "ln" not in k]
    assert set(weights) <= set(changed)
    top = randomized_copy(gpt_classifier, seed=3, groups=1)  # only the head
    assert not torch.equal(top.head.fc.weight, gpt_classifier.head.fc.weight)
    assert torch.equal(top.blocks[1].attn.c_attn.weight, gpt_classifier.blocks[1].attn.c_attn.weight)
    names = [n for n, _ in layer_groups_top_down(gpt_classifier)]
    assert names == ["head", "ln_f", "blocks.1", "blocks.0", "wte+wpe"]


def test_randomization_check(window_model, cnn, ecg):
    assert rank_correlation([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert np.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))
    w = prepare_window(cnn, ecg[:300], fs=100.0)
    check = randomization_check(cnn, w, "ig", n_steps=8)
    assert check.stages == ["all"] and -1.0 <= check.spearman_abs[0] < 0.9
    cascade = randomization_check(cnn, w, "gradcam", cascading=True)
    assert len(cascade.stages) == len(layer_groups_top_down(cnn))
    assert cascade.stages[0].startswith("top 1: head")
    # a model that ignores its weights would correlate perfectly: the check must see it
    wm = prepare_window(window_model, ecg, fs=100.0)
    same = randomization_check(window_model, wm, "occlusion")
    assert same.spearman_abs[0] == pytest.approx(1.0)  # 1x1 conv re-initialised: a rescaled map, same ranks
