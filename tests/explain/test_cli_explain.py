"""``cardiolens explain``: figures, summary and report from the command line; clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cardiolens.cli import main
from cardiolens.models import save_checkpoint


@pytest.fixture()
def files(tmp_path, gpt_classifier, ecg):
    ckpt = save_checkpoint(gpt_classifier, tmp_path / "model")
    rec = tmp_path / "ecg.npy"
    np.save(rec, np.repeat(ecg, 3))  # 300 Hz: the command resamples it to the model's 100 Hz
    return ckpt, rec


def test_explain_writes_figures_summary_and_report(files, tmp_path, capsys):
    ckpt, rec = files
    out = tmp_path / "out"
    code = main(["explain", str(ckpt), str(rec), "--fs", "300", "--method", "attention,occlusion", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "prediction:" in printed and "resampled from 300 Hz" in printed and "report.html" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["attention", "occlusion"] and summary["resampled_from"] == 300.0
    assert {"attention_token.png", "attributions.png", "report.html"} <= {p.name for p in out.iterdir()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "gradcam"], "Grad-CAM needs a convolutional layer"),
        (["--method", "attention", "--token", "999"], "token 999 is outside the context"),
        (["--method", "attention", "--layer", "5"], "no layer 5: it has 2 layers"),
        (["--method", "shap"], "unknown explanation method 'shap'"),
    ],
)
def test_explain_errors_are_one_line_messages(files, tmp_path, capsys, args, message):
    ckpt, rec = files
    assert main(["explain", str(ckpt), str(rec), "--fs", "300", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
