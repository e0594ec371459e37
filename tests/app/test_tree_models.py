"""The shipped feature-tree rhythm model (rhythm-ecg-trees) in the web app: listed, analysed beside the
CNN, explained by its feature effects, and refused with a reason where it does not apply."""

from __future__ import annotations

import html

import pytest

from cardiolens.analysis import simulated_record
from cardiolens.app import services
from cardiolens.tasks.predict import predict_record
from cardiolens.tasks.tree_model import find_tree_model, load_tree_model

TREES = services.RHYTHM_TREES_MODEL


@pytest.fixture(scope="module")
def trees():
    folder = find_tree_model(TREES)
    assert folder is not None, f"{TREES} is not shipped in the weights folder"
    return load_tree_model(folder)


def test_models_list_the_trees_as_a_predictor(client, trees):
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert TREES in models and services.RHYTHM_MODEL in models
    info = models[TREES]
    cfg = trees.config
    assert info["kind"] == "predictor" and info["modality"] == "ECG"
    assert (info["task"], info["classes"], info["fs"], info["window"]) == (cfg.task, cfg.classes, cfg.fs, cfg.window)
    assert set(info["classes"]) == {"N", "A", "O", "~"}
    assert info["n_layer"] is None and info["n_head"] is None


def test_analysis_shows_both_rhythm_models(client, example, trees):
    result = client.post(f"/api/records/{example['id']}/analysis", json={"lead": "II"}).json()
    cnn, forest = result["rhythm"], result["rhythm_trees"]
    assert cnn["model"] == services.RHYTHM_MODEL  # the existing field keeps the CNN
    assert forest["ok"], forest
    assert forest["model"] == TREES and set(forest) >= set(cnn)  # the same shape as the CNN's
    assert list(forest["probabilities"]) == forest["classes"] == ["N", "A", "O", "~"]
    assert sum(forest["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert forest["names"]["A"] == "atrial fibrillation"
    expected = predict_record(trees, simulated_record(), lead="II")
    assert forest["probabilities"] == pytest.approx(expected.probabilities)
    assert forest["labels"] == expected.labels and forest["preprocessing"] == expected.preprocessing
    # on the PPG lead the trees refuse, naming the ECG lead to choose (as cardiolens predict --lead PLETH refuses)
    ppg = client.post(f"/api/records/{example['id']}/analysis", json={"lead": "PLETH"}).json()["rhythm_trees"]
    assert not ppg["ok"] and "reads ECG" in ppg["message"] and "ECG leads: II" in ppg["message"]


def test_analysis_shows_the_mean_of_both_rhythm_models_and_the_report_lists_it(client, example):
    result = client.post(f"/api/records/{example['id']}/analysis", json={"lead": "II"}).json()
    cnn, forest, mean = result["rhythm"], result["rhythm_trees"], result["rhythm_mean"]
    assert mean["ok"], mean
    assert mean["model"] == services.RHYTHM_MEAN_MODEL and set(mean) >= set(cnn)
    for c in mean["classes"]:
        assert mean["probabilities"][c] == pytest.approx((cnn["probabilities"][c] + forest["probabilities"][c]) / 2)
    assert mean["names"]["A"] == "atrial fibrillation" and "unweighted mean" in mean["preprocessing"][-1]
    assert mean["members"] == [services.RHYTHM_MODEL, TREES] and "members" not in cnn
    # a mean predicts only: it is not offered to the explain and generate views
    assert services.RHYTHM_MEAN_MODEL not in [m["name"] for m in client.get("/api/models").json()]
    text = client.get(f"/api/records/{example['id']}/report", params={"lead": "II"}).text
    assert f"<h3>{services.RHYTHM_MEAN_MODEL}</h3>" in text


def test_a_missing_tree_model_is_reported_not_fatal(client, example, monkeypatch):
    monkeypatch.setattr(services, "shipped_tree_models", lambda: [])
    result = client.post(f"/api/records/{example['id']}/analysis", json={"lead": "II"})
    assert result.status_code == 200
    forest = result.json()["rhythm_trees"]
    assert forest["available"] is False and TREES in forest["message"] and "not installed" in forest["message"]
    assert TREES not in [m["name"] for m in client.get("/api/models").json()]
    # the mean needs the trees: it says it is not installed, and the rest of the analysis stands
    mean = result.json()["rhythm_mean"]
    assert mean["available"] is False and "not installed" in mean["message"] and result.json()["rhythm"]["ok"]


def test_the_report_has_both_rhythm_models(client, example):
    text = client.get(f"/api/records/{example['id']}/report", params={"lead": "II"}).text
    assert f"<h3>{services.RHYTHM_MODEL}</h3>" in text and f"<h3>{TREES}</h3>" in text


def test_explain_report_of_the_trees_is_their_feature_effects(client, example, trees):
    from cardiolens.explain import explain_record

    url = f"/api/records/{example['id']}/explain-report"
    response = client.get(url, params={"model": TREES, "lead": "II"})
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    text = html.unescape(response.text)
    assert "<html" in text.lower() and "data:image/png;base64," in text
    top = explain_record(trees, simulated_record(), methods="features", lead="II").summary["features"]["top"]
    assert top[0]["feature"] in text  # the feature that moved the prediction most is named
    wrong = client.get(url, params={"model": TREES, "lead": "II", "methods": "attention,ig"})
    assert wrong.status_code == 422 and "features" in wrong.json()["detail"]
    ppg = client.get(url, params={"model": TREES, "lead": "PLETH"})
    assert ppg.status_code == 422 and "PPG" in ppg.json()["detail"] and TREES in ppg.json()["detail"]


@pytest.mark.parametrize(
    ("endpoint", "body", "says"),
    [
        ("attention", {}, "no attention"),
        ("attributions", {"method": "ig"}, "no per-sample attributions"),
        ("generate", {"steps": 5}, "not a generative model"),
    ],
)
def test_signal_explanations_and_generation_refuse_the_trees(client, example, endpoint, body, says):
    response = client.post(f"/api/records/{example['id']}/{endpoint}", json={"model": TREES, "lead": "II", **body})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert TREES in detail and says in detail and "ecgpt-small" in detail


def test_attention_shift_refuses_the_trees(client, example):
    response = client.post(f"/api/records/{example['id']}/attention-shift", json={"model": TREES, "lead": "II"})
    assert response.status_code == 404 and "not fine-tuned from a shipped GPT" in response.json()["detail"]


def test_serve_models_cannot_shadow_the_trees(tmp_path, tuned_checkpoint):
    import shutil

    from cardiolens.app.server import operator_models

    shadow = tmp_path / "mine" / TREES
    shutil.copytree(tuned_checkpoint, shadow)
    assert operator_models([shadow]) == {f"mine/{TREES}": str(shadow.resolve())}  # named apart from the shipped trees
