"""The model adapter and window preparation: every model looks the same to the methods."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from cardiolens.errors import CardiolensError, ModelInputError, RecordError
from cardiolens.explain import as_explainable, available_methods, canonical_method, prepare_window
from cardiolens.explain.report import resolve_methods
from cardiolens.signal import Record, tokenize


def test_prepare_window_resamples_crops_and_tokenises(gpt_classifier, ecg, caplog):
    x300 = np.repeat(ecg, 3)  # the same lead at 300 Hz
    with caplog.at_level(logging.INFO, logger="cardiolens.explain"):
        w = prepare_window(gpt_classifier, x300, fs=300.0, start=1.0)
    assert "resampled from 300 Hz" in caplog.text
    assert w.fs == 100.0 and w.resampled_from == 300.0
    assert w.signal.shape == (1, 256)  # cropped to the context (block_size 256)
    assert w.start == 100
    expected, scale = tokenize(w.signal[0].astype(np.float64), 101)
    np.testing.assert_array_equal(w.tokens, expected)
    assert w.scale == pytest.approx(scale)


def test_prepare_window_contract_errors(gpt_classifier, ecg):
    with pytest.raises(RecordError, match="fs="):
        prepare_window(gpt_classifier, ecg)
    with pytest.raises(RecordError, match="outside the signal"):
        prepare_window(gpt_classifier, ecg, fs=100.0, start=100.0)
    flat = np.ones(600, dtype=np.float32)
    with pytest.raises(RecordError, match="constant"):
        prepare_window(gpt_classifier, flat, fs=100.0)
    rec = Record(np.stack([ecg, ecg]), fs=100.0, leads=["I", "PLETH"])
    with pytest.raises(ModelInputError, match="PPG"):
        prepare_window(gpt_classifier, rec, lead="PLETH")
    with pytest.raises(RecordError, match="leads are I, PLETH"):
        prepare_window(gpt_classifier, rec, lead="V9")
    assert prepare_window(gpt_classifier, rec).leads == ["I"]  # the preferred ECG lead by default


def test_binary_output_becomes_two_classes(gpt_classifier, ecg):
    adapter = as_explainable(gpt_classifier)
    assert adapter.binary and adapter.kind == "gpt"
    w = prepare_window(gpt_classifier, ecg, fs=100.0)
    with torch.no_grad():
        logits = adapter.scorer(w)(w.tensor())
        z = gpt_classifier(torch.as_tensor(w.tokens)[None])[0, 0]
    assert logits.shape == (1, 2)
    p = adapter.probabilities(logits)[0]
    assert float(p[1]) == pytest.approx(float(torch.sigmoid(z)), abs=1e-6)
    index, prob = adapter.target(w)
    assert index == int(p.argmax()) and prob == pytest.approx(float(p.max()))
    assert adapter.target(w, "positive")[0] == 1
    with pytest.raises(ModelInputError, match="not positive, positive"):
        adapter.target(w, "AF")
    with pytest.raises(ModelInputError, match="valid: 0..1"):
        adapter.target(w, 5)


def test_fixed_scale_scorer_changes_only_perturbed_tokens(gpt_lm, ecg):
    """A bare GPT's float view keeps the window's scale: deleting the maximum must not rescale the rest."""
    adapter = as_explainable(gpt_lm)
    w = prepare_window(gpt_lm, ecg, fs=100.0)
    seen = []
    handle = gpt_lm.wte.register_forward_pre_hook(lambda m, i: seen.append(i[0].clone()))
    try:
        x = w.tensor().clone()
        x[0, 0, int(np.argmax(w.signal[0]))] = float(np.median(w.signal))
        adapter.scorer(w)(x)
    finally:
        handle.remove()
    changed = (seen[0][0] != torch.as_tensor(w.tokens)).sum()
    assert int(changed) == 1
    assert adapter.is_lm and adapter.scorer(w)(w.tensor()).shape == (1, 101)


def test_methods_per_model_and_errors(gpt_classifier, cnn):
    assert available_methods(gpt_classifier) == [
        "attention",
        "embeddings",
        "physiology",
        "ig",
        "occlusion",
        "gradrollout",
        "faithfulness",
        "randomization",
    ]
    assert "gradcam" in available_methods(cnn) and "hirescam" in available_methods(cnn)
    assert "attention" not in available_methods(cnn) and "gradrollout" not in available_methods(cnn)
    with pytest.raises(ModelInputError) as err:
        resolve_methods(gpt_classifier, "gradcam")
    assert "Grad-CAM needs a convolutional layer" in str(err.value)
    assert "available for this model: attention, embeddings" in str(err.value)
    with pytest.raises(ModelInputError, match="attention needs|no attention layers"):
        resolve_methods(cnn, ["attention"])
    with pytest.raises(ModelInputError, match="unknown explanation method 'shap'"):
        canonical_method("shap")
    assert resolve_methods(cnn, "integrated_gradients, grad-cam") == ["ig", "gradcam"]


def test_cnn_window_is_ten_seconds_or_what_there_is(cnn, ecg):
    w = prepare_window(cnn, ecg, fs=100.0)
    assert w.signal.shape == (1, 600) and w.tokens is None
    w = prepare_window(cnn, np.tile(ecg, 3), fs=100.0)
    assert w.signal.shape == (1, 1000)
    with pytest.raises(CardiolensError, match="flat"):
        prepare_window(cnn, np.zeros(600), fs=100.0)


def test_leads_a_model_must_not_read(ecg):
    from cardiolens.models import load_model

    ppg_model = load_model("ppgpt-small")
    cinc_like = Record(ecg[None], fs=100.0, leads=["ECG"])  # CinC 2017 names its single lead "ECG"
    with pytest.raises(ModelInputError, match="lead 'ECG' is ECG, but 'ppgpt-small' is a model of PPG"):
        prepare_window(ppg_model, cinc_like)
    resp = Record(ecg[None], fs=100.0, leads=["RESP"])
    with pytest.raises(ModelInputError, match="lead 'RESP' is neither ECG nor PPG"):
        prepare_window(load_model("ecgpt-small"), resp)
    assert prepare_window(ppg_model, Record(ecg[None], fs=100.0, leads=["ch0"])).leads == ["ch0"]  # unnamed: allowed


def test_a_ppg_model_picks_the_records_ppg_lead(ecg):
    from cardiolens.models import load_model

    bidmc_like = Record(np.stack([ecg, ecg, ecg]), fs=100.0, leads=["RESP", "PLETH", "II"])
    assert prepare_window(load_model("ppgpt-small"), bidmc_like).leads == ["PLETH"]
    assert prepare_window(load_model("ecgpt-small"), bidmc_like).leads == ["II"]
