"""Attribution methods find what a model with a known answer uses, on every kind of model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cardiolens.errors import ModelInputError
from cardiolens.explain import (
    attention_attribution,
    attribute,
    attribution_methods,
    baseline_signal,
    grad_cam,
    gradient_rollout,
    hires_cam,
    integrated_gradients,
    occlusion,
    prepare_window,
)
from cardiolens.explain.plots import plot_attribution
from cardiolens.signal.tokenize import tokenize

REGION = slice(100, 120)


def _inside_share(values: np.ndarray) -> float:
    v = np.abs(values[0])
    return float(v[REGION].sum() / v.sum())


def test_integrated_gradients_is_complete_and_local(window_model, ecg):
    w = prepare_window(window_model, ecg, fs=100.0)
    a = integrated_gradients(window_model, w, n_steps=16)
    assert a.target == 1 and a.target_name == "target"
    assert _inside_share(a.values) > 0.999
    # a linear model: attributions are exactly (x - baseline) inside the region, and sum to the score gap
    expected = (w.signal - baseline_signal(w))[0, REGION]
    np.testing.assert_allclose(a.values[0, REGION], expected, rtol=1e-4, atol=1e-5)
    assert a.values.sum() == pytest.approx(a.info["score_gap"], rel=1e-4)
    assert a.info["delta"] < 1e-4 and a.info["space"] == "signal"


def test_occlusion_finds_the_region(window_model, ecg):
    w = prepare_window(window_model, ecg, fs=100.0)
    a = occlusion(window_model, w, size=0.1, stride=0.05)
    assert a.info["patch_samples"] == 10 and a.info["stride_samples"] == 5
    assert _inside_share(a.values) > 0.8
    assert np.all(a.values[0, :85] == 0) and np.all(a.values[0, 140:] == 0)
    with pytest.raises(ModelInputError, match="longer than"):
        occlusion(window_model, w, size=100.0)


def test_gradcam_on_a_cnn(cnn, ecg):
    w = prepare_window(cnn, ecg, fs=100.0)
    a = grad_cam(cnn, w, target=2)
    assert a.values.shape == (1, 600) and a.target == 2
    assert np.all(a.values >= 0) and a.values.max() > 0
    assert a.per_lead is False and a.info["layer"] == "stages.0"  # the first stage (ResNet1d.gradcam_layer)


class PerLeadCNN(nn.Module):
    """Keeps leads apart: each lead runs through the same convolution as its own row; lead 1 is ignored."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, 4, 5, padding=2)
        self.weight = nn.Parameter(torch.tensor([1.0, 0.0]))  # lead 0 counts, lead 1 does not

        class Cfg:
            name = "per-lead"
            fs = 100.0
            leads = ["I", "II"]
            classes = ["a", "b"]

        self.config = Cfg()

    def gradcam_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, T = x.shape
        h = torch.relu(self.conv(x.reshape(B * C, 1, T)))  # (B * C, 4, T)
        per_lead = h.mean(dim=(1, 2)).reshape(B, C)  # (B, C)
        z = (per_lead * self.weight).sum(-1)
        return torch.stack([-z, z], dim=1)


def test_gradcam_gives_one_map_per_lead_when_leads_are_kept_apart(ecg):
    model = PerLeadCNN()
    w = prepare_window(model, np.stack([ecg, ecg[::-1]]), fs=100.0)
    a = grad_cam(model, w, target=1)
    assert a.per_lead is True and a.values.shape == (2, 600)
    assert a.values[0].max() > 0 and np.all(a.values[1] == 0)  # the ignored lead gets nothing


class RegionCNN(nn.Module):
    """A point-wise convolution whose output counts only inside REGION (the answer an explanation must find)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 1)
        with torch.no_grad():
            self.conv.weight.fill_(0.5)
            self.conv.bias.fill_(10.0)  # active everywhere: only the gradient tells where it counts
        mask = torch.zeros(600)
        mask[REGION] = 1.0
        self.register_buffer("mask", mask)

        class Cfg:
            name = "region"
            fs = 100.0
            classes = ["a", "b"]

        self.config = Cfg()

    def gradcam_layer(self) -> nn.Module:
        return self.conv

    def hirescam_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (torch.relu(self.conv(x)) * self.mask).mean(dim=(1, 2))
        return torch.stack([-z, z], dim=1)


def test_hirescam_says_where_and_gradcam_only_which_channels(ecg):
    model = RegionCNN()
    w = prepare_window(model, ecg, fs=100.0)
    hires = hires_cam(model, w, target=1)
    assert hires.method == "hirescam" and hires.info["layer"] == "conv" and hires.values.shape == (1, 600)
    assert np.all(hires.values >= 0) and _inside_share(hires.values) > 0.95  # linear upsampling blurs the edges
    assert np.all(hires.values[0, :95] == 0) and np.all(hires.values[0, 125:] == 0)
    # Grad-CAM averages the gradient over time: its map follows the activation everywhere
    assert _inside_share(grad_cam(model, w, target=1).values) < 0.1
    assert attribution_methods(model) == ["gradcam", "hirescam", "ig", "occlusion"]


def test_gradcam_refused_for_a_transformer(gpt_classifier, ecg):
    w = prepare_window(gpt_classifier, ecg, fs=100.0)
    with pytest.raises(ModelInputError) as err:
        grad_cam(gpt_classifier, w)
    assert "Grad-CAM needs a convolutional layer" in str(err.value)
    assert "available for this model: attention, embeddings, physiology, ig, occlusion, gradrollout" in str(err.value)
    assert attribution_methods(gpt_classifier) == ["ig", "occlusion", "attention", "gradrollout"]


def test_token_model_integrated_gradients_in_embedding_space(gpt_classifier, ecg):
    w = prepare_window(gpt_classifier, ecg, fs=100.0)
    a = integrated_gradients(gpt_classifier, w, n_steps=48)
    assert a.values.shape == (1, 256) and a.info["space"] == "token embedding"
    # completeness: the attributions add up to the logit difference from the median-token baseline
    assert a.values.sum() == pytest.approx(a.info["score_gap"], abs=0.05 * abs(a.info["score_gap"]) + 1e-3)
    assert np.abs(a.values).sum() > 0
    # a token equal to the baseline token has an identical embedding: nothing to attribute
    median = int(np.median(w.tokens))
    same = w.tokens == median
    assert same.any() and np.allclose(a.values[0, same], 0.0, atol=1e-7)


def test_binary_classes_are_mirror_images(gpt_classifier, ecg):
    """For a single sigmoid output, explaining "not X" is explaining X with the sign flipped."""
    w = prepare_window(gpt_classifier, ecg, fs=100.0)
    pos = occlusion(gpt_classifier, w, target=1)
    neg = occlusion(gpt_classifier, w, target=0)
    assert pos.target_name == "positive" and neg.target_name == "not positive"
    assert pos.probability + neg.probability == pytest.approx(1.0)
    np.testing.assert_allclose(neg.values, -pos.values, atol=1e-6)
    assert np.abs(pos.values).max() > 0


def test_attention_attribution_reads_the_last_token(gpt_classifier, ecg):
    w = prepare_window(gpt_classifier, ecg, fs=100.0)
    a = attention_attribution(gpt_classifier, w)
    assert a.info["token"] == -1
    assert a.values.sum() == pytest.approx(1.0, abs=1e-5) and np.all(a.values >= 0)


def test_attention_attribution_relative_to_chance_is_rollout_over_uniform_rollout(gpt_classifier, ecg):
    from cardiolens.explain import attention_maps, chance_rollout

    w = prepare_window(gpt_classifier, ecg, fs=100.0)
    plain = attention_attribution(gpt_classifier, w)
    ratio = attribute(gpt_classifier, w, "rollout", relative_to_chance=True)
    assert ratio.method == "attention" and ratio.info["relative_to_chance"] is True
    chance = chance_rollout(attention_maps(gpt_classifier, w), token=-1)
    np.testing.assert_allclose(ratio.values[0], plain.values[0] / chance, rtol=1e-4)
    # the plain map piles onto the window's start (more than a tenth of it in the first tenth), the ratio less so
    n = w.n_samples // 10
    start_share = plain.values[0, :n].sum() / plain.values.sum()
    assert start_share > 0.11 and ratio.values[0, :n].sum() / ratio.values.sum() < start_share - 0.02


def test_relative_rollout_of_a_mean_pooled_model_is_the_ratio_of_the_mean_flows(ecg):
    from cardiolens.explain import attention_maps, attention_rollout, chance_rollout
    from cardiolens.models import create_model

    torch.manual_seed(0)
    pooled = create_model(
        "gpt", n_layer=2, n_head=2, n_embd=32, block_size=256, head="classifier", head_pool="mean", fs=100.0
    ).eval()
    w = prepare_window(pooled, ecg, fs=100.0)
    ratio = attribute(pooled, w, "attention", relative_to_chance=True)
    assert ratio.info["token"] == "all"
    maps = attention_maps(pooled, w)
    expected = attention_rollout(maps).mean(0) / chance_rollout(maps).mean(0)
    np.testing.assert_allclose(ratio.values[0], expected, rtol=1e-4)
    # not the mean of per-row ratios, which ramps down over the window even for uniform attention
    per_row = attention_rollout(maps, relative_to_chance=True).mean(0)
    assert not np.allclose(ratio.values[0], per_row, rtol=1e-2)


def test_recorded_attention_is_the_attention_the_output_came_from(gpt_classifier, ecg):
    from cardiolens.models import create_model
    from cardiolens.models.gpt import record_attention

    tokens = torch.as_tensor(tokenize(ecg[:200])[0])[None]
    with torch.no_grad():
        plain = gpt_classifier(tokens)
        shown = gpt_classifier(tokens, return_attention=True).attentions
        with record_attention(gpt_classifier) as recorded:
            again = gpt_classifier(tokens)
    torch.testing.assert_close(again, plain, atol=1e-5, rtol=1e-5)  # the explicit softmax path, same output
    assert [len(layer) for layer in recorded] == [1, 1]
    for kept, weights in zip(recorded, shown, strict=True):
        torch.testing.assert_close(kept[0], weights)
    assert all(m.recorded is None for m in gpt_classifier.modules() if hasattr(m, "recorded"))
    with pytest.raises(ModelInputError, match="no attention layers"):
        with record_attention(create_model("resnet1d")):
            pass


def test_gradient_rollout_depends_on_the_class_explained(ecg):
    from cardiolens.models import create_model

    torch.manual_seed(3)
    # one layer, one head, one sigmoid output: the gradients for "not target" and "target" have
    # opposite signs, so their positive parts cannot both weight the same attention entry
    model = create_model("gpt", n_layer=1, n_head=1, n_embd=16, block_size=256, head="classifier", fs=100.0)
    w = prepare_window(model.eval(), ecg[:200], fs=100.0)
    yes, no = gradient_rollout(model, w, target=1), gradient_rollout(model, w, target=0)
    assert yes.method == "gradrollout" and yes.info["token"] == -1 and yes.values.shape == (1, 200)
    assert np.all(yes.values >= 0) and np.all(no.values >= 0)
    assert yes.values.max() > 0 and no.values.max() > 0
    assert np.all(np.minimum(yes.values, no.values) == 0)  # disjoint: unlike plain rollout, it is class-specific
    rollout = attention_attribution(model, w)
    assert np.all(rollout.values > 0)


def test_attribute_dispatch_and_errors(cnn, ecg, tmp_path):
    w = prepare_window(cnn, ecg[:300], fs=100.0)
    a = attribute(cnn, w, "integrated_gradients", n_steps=8)
    assert a.method == "ig"
    with pytest.raises(ModelInputError, match="not an attribution method.*gradcam, hirescam, ig, occlusion"):
        attribute(cnn, w, "faithfulness")
    with pytest.raises(ModelInputError, match="does not apply"):
        attribute(cnn, w, "rollout")
    with pytest.raises(ModelInputError, match="no attention layers.*available for this model: .*hirescam"):
        attribute(cnn, w, "gradrollout")
    g = attribute(cnn, w, "gradcam")
    plot_attribution([a, g], out=tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
