"""Fine-tuned task models (float windows in, logits out) over a GPT or a CNN backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiolens.errors import ModelInputError
from cardiolens.explain import (
    as_explainable,
    attention_maps,
    grad_cam,
    integrated_gradients,
    occlusion,
    prepare_window,
)
from cardiolens.models import create_model
from cardiolens.models.taskmodel import build_task_model
from cardiolens.signal import Record, tokenize


def _gpt_task(kind: str = "multiclass", classes=("N", "A", "O"), leads=("I", "II"), n_extra: int = 0):
    torch.manual_seed(0)
    g = create_model("gpt", n_layer=2, n_head=2, n_embd=16, block_size=200, dropout=0.0, fs=100.0)
    return build_task_model(
        g,
        task="t",
        kind=kind,
        classes=list(classes),
        fs=100.0,
        leads=list(leads),
        window=200,
        backbone_name="gpt",
        n_extra=n_extra,
        dropout=0.0,
    ).eval()


def _cnn_task(kind: str = "binary", classes=("AF",)):
    torch.manual_seed(0)
    c = create_model("resnet1d", widths=(8, 16), blocks=(1, 1), strides=(1, 2), dilations=(1, 1), dropout=0.0)
    return build_task_model(
        c, task="t", kind=kind, classes=list(classes), fs=100.0, leads=["I", "II"], window=300, backbone_name="cnn"
    ).eval()


def _two_leads(ecg: np.ndarray) -> Record:
    return Record(np.stack([ecg, 0.6 * ecg[::-1]]), fs=100.0, leads=["II", "I"], units=["mV", "mV"])


def test_gpt_task_model_tokens_attention_and_ig(ecg):
    model = _gpt_task()
    adapter = as_explainable(model)
    assert adapter.kind == "task-gpt" and adapter.class_names == ["N", "A", "O"] and adapter.window == 200
    w = prepare_window(model, _two_leads(ecg))
    assert w.leads == ["I", "II"] and w.signal.shape == (2, 200)  # the model's lead order
    tokens = adapter.tokens(w)
    assert tokens.shape == (2, 200)
    for lead in range(2):  # the task model's own tokenisation, lead by lead
        np.testing.assert_array_equal(tokens[lead].numpy(), tokenize(w.signal[lead].astype(np.float64), 101)[0])
    maps = attention_maps(model, w, row=1)
    assert maps.weights.shape == (2, 2, 200, 200)
    np.testing.assert_array_equal(maps.tokens, tokens[1].numpy())
    ig = integrated_gradients(model, w, n_steps=24)
    assert ig.values.shape == (2, 200) and ig.per_lead
    assert ig.values.sum() == pytest.approx(ig.info["score_gap"], abs=0.05 * abs(ig.info["score_gap"]) + 1e-3)
    with pytest.raises(ModelInputError, match="Grad-CAM needs a convolutional layer"):
        grad_cam(model, w)


def test_cnn_task_model_binary_gradcam(ecg):
    model = _cnn_task()
    adapter = as_explainable(model)
    assert adapter.kind == "conv" and adapter.binary and adapter.class_names == ["not AF", "AF"]
    w = prepare_window(model, _two_leads(ecg))
    a = grad_cam(model, w, target="AF")
    assert a.values.shape == (2, 300) and a.per_lead is False  # the stem mixes the leads: one map
    np.testing.assert_array_equal(a.values[0], a.values[1])
    with torch.no_grad():
        p = float(model.predict_proba(w.tensor())[0, 0])
    assert a.probability == pytest.approx(p, abs=1e-6)


def test_ig_of_a_z_scoring_task_model_is_complete(ecg):
    """Along a straight path from a flat line a z-score sees one shape: IG runs at the backbone input."""
    model = _cnn_task(kind="multiclass", classes=("N", "A", "O"))
    with torch.no_grad():
        model.head.weight.mul_(1000.0)  # an untrained head barely moves; make the differences visible
    adapter = as_explainable(model)
    assert adapter.input_layer is model.backbone.stem
    w = prepare_window(model, _two_leads(ecg))
    ig = integrated_gradients(model, w, target=1, n_steps=32)
    assert ig.info["space"] == "backbone input" and ig.values.shape == (2, 300)
    assert abs(ig.info["score_gap"]) > 1e-3
    assert ig.values.sum() == pytest.approx(ig.info["score_gap"], rel=0.05, abs=1e-3)


def test_task_model_window_contract(ecg):
    model = _cnn_task()
    with pytest.raises(ModelInputError, match="reads windows of 300 samples"):
        prepare_window(model, _two_leads(ecg[:120]))
    assert prepare_window(model, _two_leads(ecg[:200])).n_samples == 200  # at least half a window is read
    with pytest.raises(Exception, match="needs leads I, II; missing II"):
        prepare_window(model, Record(ecg[None], fs=100.0, leads=["I"]))


def _beat_detector():
    """A small per-sample (beat detection) CNN task model with fixed random weights."""
    torch.manual_seed(0)
    c = create_model("resnet1d-dense", widths=(8, 8, 8, 8))
    return build_task_model(
        c, task="beats", kind="per-sample", classes=["beat"], fs=100.0, leads=["I"], window=300, backbone_name="cnn"
    ).eval()


def test_per_sample_task_model_position(ecg):
    model = _beat_detector()
    w = prepare_window(model, ecg, fs=100.0)
    everywhere = occlusion(model, w, target=1)
    at = occlusion(model, w, target=1, position=150)
    assert at.info["position"] == 150
    assert not np.allclose(everywhere.values, at.values)
    # the output at sample 150 sees about a second around it: what matters most lies there
    assert abs(int(np.argmax(np.abs(at.values[0]))) - 150) < 100
    with pytest.raises(ModelInputError, match="position 300 outside the 300 outputs"):
        occlusion(model, w, position=300)


def test_a_detector_over_a_whole_window_reports_its_mean_beat_probability_and_explains_beats(ecg):
    model = _beat_detector()
    w = prepare_window(model, ecg, fs=100.0)
    with torch.no_grad():
        per_sample = model(w.tensor())
        per_sample = (per_sample[0] if isinstance(per_sample, tuple) else per_sample).sigmoid().squeeze(-1)
    adapter = as_explainable(model)
    assert adapter.per_sample
    index, prob = adapter.target(w)
    # the default class is "beat" however rare beats are, and its probability is the mean over samples
    assert index == 1 and prob == pytest.approx(float(per_sample.mean()), rel=1e-4)
    assert adapter.target(w, target=0)[1] == pytest.approx(1 - float(per_sample.mean()), rel=1e-4)
    at_150 = float(per_sample[0, 150])
    assert adapter.target(w, position=150)[1] == pytest.approx(max(at_150, 1 - at_150), rel=1e-4)


def test_extra_features_are_required_and_held_fixed(ecg):
    model = _gpt_task(kind="multiclass", classes=("N", "V"), leads=("I",), n_extra=2)
    w = prepare_window(model, ecg, fs=100.0)
    with pytest.raises(ModelInputError, match="2 extra features per window"):
        occlusion(model, w)
    w = prepare_window(model, ecg, fs=100.0, extra=[0.8, 0.9])
    a = occlusion(model, w)
    assert a.values.shape == (1, 200)


def test_a_binary_model_explains_the_class_its_validation_threshold_predicts(ecg):
    from cardiolens.explain.report import explain_record

    model = _cnn_task()
    window = prepare_window(model, _two_leads(ecg))
    adapter = as_explainable(model)
    p_af = adapter.target(window, target=1)[1]
    assert adapter.decision_threshold is None and adapter.target(window)[0] == int(p_af >= 0.5)  # no threshold: 0.5
    for threshold, expected in ((p_af / 2, "AF"), (min(0.99, p_af + (1 - p_af) / 2), "not AF")):
        model.config.thresholds = [threshold]  # as fine-tuning stores the threshold chosen on validation data
        adapter = as_explainable(model)
        assert adapter.decision_threshold == pytest.approx(threshold)
        assert adapter.class_name(adapter.target(window)[0]) == expected
        report = explain_record(model, _two_leads(ecg), methods="gradcam")
        assert report.summary["target"] == expected
        assert f">= {threshold:g}" in report.summary["decision_rule"]
    assert adapter.target(window, target="AF")[0] == 1  # a named class is explained whatever the rule
