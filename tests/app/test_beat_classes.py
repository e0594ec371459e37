"""The AAMI class of every beat (aami-ecg-trees) in the web app's analysis: the classes the library gives,
in a compact form, and a message instead of a failed analysis where the model cannot read the lead."""

from __future__ import annotations

import html
import json

import numpy as np
import pytest

from cardiolens.analysis import simulated_record
from cardiolens.app import services
from cardiolens.tasks.predict import predict_record

from .conftest import ecg_like

MODEL = services.BEAT_CLASS_MODEL


def analysis(client, record_id: str, **body) -> dict:
    response = client.post(f"/api/records/{record_id}/analysis", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def upload_csv(client, name: str, lead: str, x: np.ndarray, fs: float) -> dict:
    text = f"time,{lead}\n" + "\n".join(f"{i / fs:.4f},{v:.5f}" for i, v in enumerate(x))
    response = client.post("/api/records", files=[("files", (name, text.encode()))])
    assert response.status_code == 201, response.text
    return response.json()


def assert_as_the_library(classified: dict, record, lead: str) -> None:
    """``beat_classes`` of an analysis holds what predict_record gives for the same record and lead."""
    expected = predict_record(MODEL, record, lead=lead)
    assert classified["ok"] and classified["available"] and classified["model"] == MODEL
    assert classified["classes"] == expected.classes == ["N", "S", "V", "F"]
    beats = classified["beats"]
    n = len(expected.beats)
    assert n >= 3 and all(len(beats[k]) == n for k in ("times", "values", "classes", "confidence"))
    assert beats["classes"] == expected.extra["beat_labels"]
    np.testing.assert_allclose(beats["times"], expected.beats / record.fs, atol=1e-3)
    np.testing.assert_allclose(beats["confidence"], expected.confidence, atol=5e-4)
    # the markers sit on the analysed lead at those beats
    np.testing.assert_allclose(beats["values"], record.signal[record.lead_index(lead), expected.beats], atol=1e-3)
    assert classified["counts"] == expected.extra["beats_per_class"] and sum(classified["counts"].values()) == n
    assert classified["names"] == {
        "N": "normal",
        "S": "supraventricular ectopic",
        "V": "ventricular ectopic",
        "F": "fusion",
    }


def test_analysis_gives_every_beat_its_class_as_the_library_does(client, example):
    result = analysis(client, example["id"], lead="II")
    classified = result["beat_classes"]
    assert_as_the_library(classified, simulated_record(), "II")
    assert all(round(c, 3) == c and 0 <= c <= 1 for c in classified["beats"]["confidence"])
    # compact: per beat one class and one confidence, never the probability matrix
    assert "beat_probabilities" not in json.dumps(classified)
    assert all(not isinstance(v, list) for values in classified["beats"].values() for v in values)
    assert result["beats"]["count"] > 0 and result["rhythm_trees"]["ok"]  # the rest of the analysis is unchanged


@pytest.mark.realdata
def test_ectopic_beats_of_a_real_record_are_classified_as_the_library_does(mitdb_dir):
    # MIT-BIH 119 (ventricular bigeminy): a minute with V beats, so not every beat is N
    from cardiolens.io import load_record

    record = load_record(mitdb_dir / "119.hea").crop(0, 60)
    classified = services.analyse(record, services.ModelPool(), "MLII")["beat_classes"]
    assert_as_the_library(classified, record, "MLII")
    assert classified["counts"]["V"] > 0


@pytest.mark.realdata
def test_the_record_report_lists_the_ectopic_beats_with_their_times(mitdb_dir):
    from cardiolens.io import load_record

    record = load_record(mitdb_dir / "119.hea").crop(0, 60)
    pool = services.ModelPool()
    classified = services.analyse(record, pool, "MLII")["beat_classes"]
    text = services.report_html(record, pool, "MLII")
    assert "<h2>Beat classes (AAMI)</h2>" in text
    beats = classified["beats"]
    first_v = next(t for t, c in zip(beats["times"], beats["classes"], strict=True) if c == "V")
    assert f"<th>V (ventricular ectopic)</th><td>{classified['counts']['V']}</td>" in text
    assert f"{first_v:.2f} s" in text and f"{classified['counts']['N']} beats N (normal)" in text


def test_a_ppg_lead_is_refused_with_a_message_not_a_failed_analysis(client, example):
    # the example's PLETH lead: beat classes belong to the analysed lead, never to the record's ECG
    result = analysis(client, example["id"], lead="PLETH")
    classified = result["beat_classes"]
    assert classified["model"] == MODEL and classified["ok"] is False and "beats" not in classified
    assert "PPG" in classified["message"] and "ECG" in classified["message"] and MODEL in classified["message"]
    assert result["modality"] == "PPG" and result["beats"]["count"] > 10


def test_a_ppg_only_record_still_gets_its_analysis(client):
    ppg = simulated_record().select_leads("PLETH")
    info = upload_csv(client, "pulse.csv", "PLETH", ppg.signal[0], ppg.fs)
    result = analysis(client, info["id"])
    classified = result["beat_classes"]
    assert classified["ok"] is False and "PPG" in classified["message"] and "ECG" in classified["message"]
    assert result["lead"] == "PLETH" and result["beats"]["count"] > 10 and result["heart_rate"]["median_bpm"]


def test_a_short_record_is_refused_with_the_reason(client):
    info = upload_csv(client, "short.csv", "II", ecg_like(8, 200), 200.0)
    result = analysis(client, info["id"])
    classified = result["beat_classes"]
    assert classified["ok"] is False and "10 s" in classified["message"] and "8.0 s" in classified["message"]
    assert result["beats"]["count"] >= 7  # the detector's beats are still there


def test_a_missing_model_is_reported_not_fatal(client, example, monkeypatch):
    monkeypatch.setattr(services, "shipped_tree_models", lambda: [])
    classified = analysis(client, example["id"], lead="II")["beat_classes"]
    assert classified["available"] is False
    assert MODEL in classified["message"] and "not installed" in classified["message"]


def test_explain_report_explains_the_beat_nearest_start(client, example):
    url = f"/api/records/{example['id']}/explain-report"
    response = client.get(url, params={"model": MODEL, "lead": "II", "start": 12.0})
    assert response.status_code == 200, response.text
    text = html.unescape(response.text)
    assert "Beat features behind the prediction (the beat at " in text and "The beat against the record" in text
    explained = float(text.split("(the beat at ")[1].split(" s)")[0])
    assert abs(explained - 12.0) < 1.0  # one beat period of the 72 bpm example
    refused = client.get(url, params={"model": MODEL, "lead": "PLETH"})
    assert refused.status_code == 422 and "reads ECG" in refused.text
