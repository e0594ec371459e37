"""The shipped fine-tuned rhythm model (a CNN TaskModel) explained on a CinC 2017 record."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiolens.errors import ModelInputError
from cardiolens.explain import as_explainable, explain_record, grad_cam, integrated_gradients, prepare_window
from cardiolens.io import load_record
from cardiolens.models import list_pretrained, load_model

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def rhythm():
    if "rhythm-ecg" not in list_pretrained():
        pytest.skip("rhythm-ecg is not installed")
    return load_model("rhythm-ecg")


def test_rhythm_model_attributions_on_an_af_record(rhythm, cinc2017_dir):
    record = load_record(cinc2017_dir / "A00004.hea")  # labelled A in REFERENCE.csv
    adapter = as_explainable(rhythm)
    assert adapter.kind == "conv" and adapter.class_names == ["N", "A", "O", "~"]
    w = prepare_window(rhythm, record, start=5.0)
    assert w.fs == 100.0 and w.resampled_from == 300.0 and w.signal.shape == (1, 900)
    with torch.no_grad():
        expected = rhythm.predict_proba(w.tensor())[0]
    cam = grad_cam(rhythm, w, target="A")
    assert cam.values.shape == (1, 900) and cam.values.min() >= 0 and cam.values.max() > 0
    assert cam.probability == pytest.approx(float(expected[1]), abs=1e-5)
    ig = integrated_gradients(rhythm, w, target="A", n_steps=32)
    assert ig.values.sum() == pytest.approx(ig.info["score_gap"], abs=0.05 * abs(ig.info["score_gap"]) + 1e-3)
    with pytest.raises(ModelInputError, match="no attention layers.*available for this model: gradcam, hirescam, ig"):
        explain_record(rhythm, record, "attention")


def test_rhythm_report(rhythm, cinc2017_dir, tmp_path):
    report = explain_record(
        rhythm,
        cinc2017_dir / "A00004.hea",
        "gradcam,hirescam,occlusion,faithfulness",
        out=tmp_path,
        curve_steps=10,
        n_random=2,
    )
    f = report.summary["faithfulness"]
    assert set(f) == {"target", "gradcam", "hirescam", "occlusion", "random", "random blocks"}
    assert all(0.0 <= f[m]["deletion_auc"] <= 1.0 for m in ("gradcam", "hirescam", "occlusion", "random"))
    assert report.results["attributions"]["hirescam"].info["layer"] == "backbone.stages.0"
    assert report.results["attributions"]["gradcam"].info["layer"] == "backbone.stages.0"
    # on this AF record both maps, read at the first stage, delete what the model uses faster than random
    # order does (HiResCAM 0.23, Grad-CAM 0.28, random 0.30; Grad-CAM at the last stage: 0.57, worse than random)
    assert f["hirescam"]["deletion_auc"] < f["gradcam"]["deletion_auc"] < f["random"]["deletion_auc"]
    assert np.isclose(sum(report.prediction.values()), 1.0, atol=1e-5)
    assert (tmp_path / "report.html").is_file() and (tmp_path / "faithfulness.png").is_file()
