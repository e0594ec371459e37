"""explain_record: every applicable method on one window, PNGs, summary.json and a self-contained HTML page."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from cardiolens.errors import ModelInputError
from cardiolens.explain import explain_record
from cardiolens.signal import Record


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)]


def test_report_of_a_token_classifier(gpt_classifier, make_ecg, tmp_path):
    rec = Record(make_ecg(seconds=8.0, fs=250.0)[None], fs=250.0, leads=["II"], units=["mV"], name="sim")
    report = explain_record(gpt_classifier, rec, out=tmp_path, n_steps=8, start=1.0, curve_steps=10, n_random=1)
    assert report.methods == [
        "attention",
        "embeddings",
        "physiology",
        "ig",
        "occlusion",
        "gradrollout",
        "faithfulness",
        "randomization",
    ]
    s = report.summary
    assert s["resampled_from"] == 250.0 and s["samples"] == 256 and s["start_s"] == pytest.approx(1.0)
    assert set(s["faithfulness"]) == {
        "target",
        "ig",
        "occlusion",
        "attention",
        "gradrollout",
        "random",
        "random blocks",
    }
    assert s["attention"]["token"] == 255 and s["attention"]["beats"] >= 3
    assert set(s["physiology"]) == {"P", "QRS", "T"}
    html = (tmp_path / "report.html").read_text()
    # self-contained: no scripts, no links, no external sources; every figure embedded
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert not re.search(r"src=['\"](?!data:)", html)
    images = _images(html)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(images) == len(pngs) >= 8
    assert all(img[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["model"] == report.model and on_disk["methods"] == report.methods
    assert "attributions.png" in pngs and "faithfulness.png" in pngs
    assert "not what decides its output" in html  # the attention section warns what attention is not


def test_report_of_a_cnn_with_chosen_methods(cnn, ecg, tmp_path):
    report = explain_record(cnn, ecg[:300], "gradcam,occlusion", out=tmp_path, fs=100.0, target=1)
    assert report.methods == ["gradcam", "occlusion"]
    assert report.summary["target"] == "class 1"
    assert set(report.results["attributions"]) == {"gradcam", "occlusion"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attributions.png", "report.html", "summary.json"]
    # a second report into the same folder replaces the first one's figures, and leaves other files alone
    (tmp_path / "notes.txt").write_text("mine")
    explain_record(cnn, ecg[:300], "occlusion,faithfulness", out=tmp_path, fs=100.0, target=1, n_random=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "attributions.png",
        "faithfulness.png",
        "notes.txt",
        "report.html",
        "summary.json",
    ]
    explain_record(cnn, ecg[:300], "gradcam", out=tmp_path, fs=100.0, target=1)
    assert json.loads((tmp_path / "summary.json").read_text())["figures"] == ["attributions.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "attributions.png",
        "notes.txt",
        "report.html",
        "summary.json",
    ]


def test_faithfulness_alone_computes_the_attributions_it_needs(cnn, ecg):
    report = explain_record(cnn, ecg[:300], ["faithfulness"], fs=100.0, n_steps=8, curve_steps=10, n_random=2)
    assert set(report.summary["faithfulness"]) == {
        "target",
        "gradcam",
        "hirescam",
        "ig",
        "occlusion",
        "random",
        "random blocks",
    }
    assert report.files == []


def test_bad_arguments_list_what_exists(gpt_lm, cnn, ecg):
    with pytest.raises(ModelInputError, match="token 256 is outside the context.*256 tokens"):
        explain_record(gpt_lm, ecg, "attention", fs=100.0, token=256)
    with pytest.raises(ModelInputError, match=r"no layer 2: it has 2 layers \(0..1, or -2..-1 from the last\)"):
        explain_record(gpt_lm, ecg, "attention", fs=100.0, layer=2)
    with pytest.raises(ModelInputError, match=r"no head 5: it has 2 heads \(0..1, or -2..-1\)"):
        explain_record(gpt_lm, ecg, "attention", fs=100.0, layer=0, head=5)
    with pytest.raises(ModelInputError, match="Grad-CAM needs a convolutional layer"):
        explain_record(gpt_lm, ecg, "gradcam", fs=100.0)
    with pytest.raises(ModelInputError, match="has none"):
        explain_record(cnn, ecg, "ig", fs=100.0, layer=0)


def test_lm_explains_the_predicted_next_token(gpt_lm, ecg):
    report = explain_record(gpt_lm, ecg, "attention", fs=100.0, layer=1, head=0, token=200)
    assert report.summary["attention"]["view"] == "layer 1 head 0"
    assert report.summary["target"].startswith("token ")
    assert np.all(report.results["attention"]["profile"][201:] == 0)
