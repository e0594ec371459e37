"""The web app after the audit of cardiolens explain: the explanation report takes every model the CLI's
explain takes and refuses what the CLI refuses, the analysis reads the lead asked or says why not, an
upload without a rate is told about the form's field, and cardiolens serve checks its settings."""

from __future__ import annotations

import html

import numpy as np
import pytest

from cardiolens.app import services
from cardiolens.cli import main
from cardiolens.tasks.tree_model import find_tree_model


def _need_trees() -> None:
    if find_tree_model(services.RHYTHM_TREES_MODEL) is None:
        pytest.skip("the tree models are not shipped in the weights folder")


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("rhythm-ecg", "Attributions"),
        ("beats-ecg", "Attributions"),
        ("rhythm-ecg-mean", "Member of rhythm-ecg-mean"),
    ],
)
def test_explain_report_explains_the_shipped_cnns_and_the_mean(client, example, model, says):
    if model == "rhythm-ecg-mean":
        _need_trees()
    url = f"/api/records/{example['id']}/explain-report"
    response = client.get(url, params={"model": model, "lead": "II", "start": 2})
    assert response.status_code == 200, response.text
    text = html.unescape(response.text)
    assert "data:image/png;base64," in text and says in text and "not a GPT language model" not in text


def test_explain_report_of_the_mean_shows_each_member_and_its_window(client, example):
    _need_trees()
    url = f"/api/records/{example['id']}/explain-report"
    text = html.unescape(client.get(url, params={"model": "rhythm-ecg-mean", "lead": "II", "start": 2}).text)
    assert (
        "rhythm-ecg: explains the window 2.00-11.00 s" in text and "rhythm-ecg-trees: explains the whole record" in text
    )
    refused = client.get(url, params={"model": "rhythm-ecg-mean", "lead": "II", "methods": "ig"})
    assert refused.status_code == 422 and "explain a member" in refused.json()["detail"]


def test_explain_report_names_the_models_it_takes(client, example):
    response = client.get(f"/api/records/{example['id']}/explain-report", params={"model": "no-such-model"})
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "the explanation report takes" in detail and "rhythm-ecg" in detail and "ecgpt-small" in detail


def test_explain_report_refuses_a_start_the_tree_models_cannot_honour(client, example):
    _need_trees()
    url = f"/api/records/{example['id']}/explain-report"
    beat = client.get(url, params={"model": "aami-ecg-trees", "lead": "II", "start": 1000})
    assert beat.status_code == 422 and "start 1000 s lies outside the signal (30.00 s long)" in beat.json()["detail"]
    record = client.get(url, params={"model": services.RHYTHM_TREES_MODEL, "lead": "II", "start": 5})
    assert record.status_code == 422 and "reads the whole record" in record.json()["detail"]


def test_an_ecg_model_asked_for_a_ppg_lead_refuses_naming_the_ecg_leads(client, example):
    _need_trees()
    result = client.post(f"/api/records/{example['id']}/analysis", json={"lead": "PLETH"}).json()
    for key in ("rhythm", "rhythm_trees", "rhythm_mean", "beat_model", "beat_classes"):
        answer = result[key]
        assert answer["ok"] is False, (key, answer)
        assert "reads ECG and lead 'PLETH' is PPG" in answer["message"], (key, answer)
        assert "choose one of the record's ECG leads: II" in answer["message"], (key, answer)
    assert result["beats"]["count"] > 10  # the pulses of the PPG lead are still found


def test_a_csv_without_a_rate_is_told_about_the_upload_form(client):
    text = "\n".join(str(v) for v in np.sin(np.arange(2000) / 10.0)).encode()
    response = client.post("/api/records", files={"files": ("trace.csv", text, "text/csv")})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "Sampling rate (Hz, if the file has none)" in detail and "--fs" not in detail and "trace.csv" in detail


def test_a_csv_with_gaps_is_told_about_the_fill_gaps_box_and_filled_when_asked(client):
    values = np.sin(np.arange(2000) / 10.0).astype(str)
    values[100:104] = ""  # four empty cells
    text = "\n".join(values).encode()
    refused = client.post("/api/records", files={"files": ("gaps.csv", text, "text/csv")}, data={"fs": "250"})
    assert refused.status_code == 422
    detail = refused.json()["detail"]
    assert "'Fill gaps' box" in detail and "--nan_policy" not in detail and "gaps.csv" in detail
    filled = client.post(
        "/api/records", files={"files": ("gaps.csv", text, "text/csv")}, data={"fs": "250", "fill_gaps": "true"}
    )
    assert filled.status_code == 201 and filled.json()["samples"] == 2000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "port 99999 is not a TCP port: give one of 1..65535"),
        (["--port", "0"], "give one of 1..65535"),
        (["--ttl_minutes", "-1"], "--ttl_minutes -1: give a number more than 0"),
        (["--max_upload_mb", "0"], "--max_upload_mb 0: give a number more than 0"),
        (["--compute_threads", "0"], "--compute_threads 0: give 1 or more"),
    ],
)
def test_serve_refuses_bad_settings_before_starting(capsys, args, message):
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--models", "runs/a/fold-0/model"], ["runs/a/fold-0/model"]), (["--models", '["a/m", "b/m"]'], ["a/m", "b/m"])],
)
def test_serve_takes_one_model_folder_or_a_list(monkeypatch, args, expected):
    import cardiolens.app

    seen = {}
    monkeypatch.setattr(cardiolens.app, "serve", lambda **kwargs: seen.update(kwargs))
    assert main(["serve", *args]) == 0
    assert [str(p) for p in seen["models"]] == expected
