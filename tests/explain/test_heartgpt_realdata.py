"""The published HeartGPT models explained on their own example inputs (../shared/data/heartgpt)."""

from __future__ import annotations

import numpy as np
import pytest

from cardiolens.explain import (
    as_explainable,
    attention_maps,
    attention_shift,
    feature_masks,
    head_feature_shares,
    prepare_window,
    window_peaks,
)
from cardiolens.models import load_model

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def ecg_models(heartgpt_dir):
    return load_model(heartgpt_dir / "ECGPT_560k_iters.zip"), load_model(heartgpt_dir / "ECGPT_AF_1k_iters.zip")


def test_af_fine_tuning_changed_only_the_last_layers_attention(ecg_models, heartgpt_dir):
    """HeartGPT fine-tuned the last block only: layers 0-6 must attend exactly as ECG-PT does."""
    pretrained, af = ecg_models
    w = prepare_window(af, heartgpt_dir / "example_inputs" / "example_context_ECG_AFib1.csv")
    assert w.n_samples == 500 and w.fs == 100.0
    a, b = attention_maps(pretrained, w), attention_maps(af, w)
    assert a.weights.shape == b.weights.shape == (8, 8, 500, 500)
    np.testing.assert_allclose(a.weights[:7], b.weights[:7], atol=1e-5)
    assert np.abs(a.weights[7] - b.weights[7]).max() > 0.05


def test_af_model_attends_more_to_r_peaks_in_af_examples(ecg_models, heartgpt_dir):
    pretrained, af = ecg_models
    windows = [prepare_window(af, heartgpt_dir / "example_inputs" / f"example_context_ECG_AFib{i}.csv") for i in (1, 2)]
    peaks = [window_peaks(w) for w in windows]
    assert all(len(p) >= 6 for p in peaks)
    shift = attention_shift(pretrained, af, windows, peaks)
    last = shift.views.index("layer 7")
    assert np.all(shift.finetuned["enrichment"][:, last] > shift.pretrained["enrichment"][:, last])
    assert np.all(shift.distance[:, shift.views.index("layer 6")] < 1e-4)  # frozen layers: no shift


def test_ppg_af_heads_on_the_pulse(heartgpt_dir):
    model = load_model(heartgpt_dir / "PPGPT_AF_1k_iters.zip")
    w = prepare_window(model, heartgpt_dir / "example_inputs" / "example_context_PPG_AFib.csv")
    assert w.fs == 50.0 and w.n_samples == 500 and w.leads == ["PLETH"]
    assert as_explainable(model).target(w)[0] == 1  # the published AF example is called AF
    peaks = window_peaks(w, modality="PPG")
    assert len(peaks) >= 10
    masks = feature_masks(w, modality="PPG")
    assert masks["systolic peak"][peaks].all() and masks["dicrotic notch"].any()
    table = head_feature_shares(attention_maps(model, w), masks)
    # some head concentrates on the systolic peaks well beyond chance; the average head does not
    top = table.top_heads("systolic peak", k=1)
    assert top and top[0]["enrichment"] > 2
    assert table.summary()["systolic peak"]["mean_share"] < 2 * table.summary()["systolic peak"]["chance"]
