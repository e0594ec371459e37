"""The JSON API: every endpoint on the bundled example, with the answers checked against the library."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from cardiolens.analysis import find_beats, simulated_record
from cardiolens.generate import continue_signal
from cardiolens.models import load_model

from .conftest import TUNED


def events(client, record_id: str, **body) -> list[dict]:
    with client.stream("POST", f"/api/records/{record_id}/generate", json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        return [json.loads(line) for line in response.iter_lines() if line.strip()]


def test_health_models_examples(client):
    assert client.get("/api/health").json()["status"] == "ok"
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert models["ecgpt-small"]["kind"] == "generative"
    assert (models["ecgpt-small"]["modality"], models["ecgpt-small"]["fs"]) == ("ECG", 100.0)
    assert (models["ppgpt-small"]["modality"], models["ppgpt-small"]["fs"]) == ("PPG", 50.0)
    assert [e["name"] for e in client.get("/api/examples").json()] == ["simulated"]
    assert client.post("/api/examples/nope").status_code == 404


def test_example_record_summary(client, example):
    assert example["fs"] == 500.0 and example["leads"] == ["II", "PLETH"] and example["modalities"] == ["ECG", "PPG"]
    assert example["samples"] == 15000 and example["duration_s"] == 30.0 and example["default_lead"] == "II"
    assert [q["lead"] for q in example["quality"]["leads"]] == ["II", "PLETH"]
    assert "source" not in example  # server paths are never shown
    again = client.get(f"/api/records/{example['id']}").json()
    assert again["id"] == example["id"] and again["samples"] == example["samples"]


def test_signal_view_keeps_peaks_when_reduced(client, example):
    rec = simulated_record()
    full = client.get(f"/api/records/{example['id']}/signal", params={"max_points": 1000}).json()
    assert full["reduced"] and len(full["t"]) <= 1000 and "minimum and maximum" in full["note"]
    ecg = np.asarray(full["leads"][0]["values"])
    # min-max buckets keep the extremes of the lead exactly (to the rounding of the payload)
    assert ecg.max() == pytest.approx(rec.signal[0].max(), abs=1e-4)
    assert ecg.min() == pytest.approx(rec.signal[0].min(), abs=1e-4)
    part = client.get(f"/api/records/{example['id']}/signal", params={"start": 2, "duration": 1}).json()
    assert not part["reduced"] and len(part["t"]) == 500 and part["t"][0] == pytest.approx(2.0)
    np.testing.assert_allclose(part["leads"][1]["values"], rec.signal[1, 1000:1500], atol=1e-4)
    assert client.get(f"/api/records/{example['id']}/signal", params={"start": -1}).status_code == 422


def test_analysis_matches_find_beats(client, example):
    result = client.post(f"/api/records/{example['id']}/analysis", json={"lead": "II"}).json()
    beats = find_beats(simulated_record(), "II")
    assert result["beats"]["samples"] == beats.samples.tolist()
    assert result["heart_rate"]["median_bpm"] == pytest.approx(beats.heart_rate, abs=0.1)
    assert 65 < result["heart_rate"]["median_bpm"] < 80  # simulated at 72 bpm
    assert len(result["rr"]["seconds"]) == len(result["beats"]["samples"]) - 1
    np.testing.assert_allclose(np.asarray(result["heart_rate"]["bpm"]) * result["rr"]["seconds"], 60, rtol=1e-3)
    # the shipped fine-tuned models either answer or say why not; never a failed request
    for key in ("rhythm", "beat_model"):
        part = result[key]
        if part.get("ok"):
            assert sum(part["probabilities"].values()) == pytest.approx(1.0, abs=1e-3) or key == "beat_model"
        else:
            assert part["message"]
    ppg = client.post(f"/api/records/{example['id']}/analysis", json={"lead": "PLETH"}).json()
    assert ppg["modality"] == "PPG" and 65 < ppg["heart_rate"]["median_bpm"] < 80
    bad = client.post(f"/api/records/{example['id']}/analysis", json={"lead": "V9"})
    assert bad.status_code == 422 and "V9" in bad.json()["detail"]


def test_attention_rows_are_causal_distributions(client, example):
    url = f"/api/records/{example['id']}/attention"
    first = client.post(url, json={"lead": "II", "start": 3.0}).json()
    assert first["model"] == "ecgpt-small"  # chosen by the lead's modality
    assert (first["layers"], first["heads"], first["tokens"]) == (6, 4, 900) and first["token"] == 899
    assert first["start"] == pytest.approx(3.0) and any("resampled" in n for n in first["notes"])
    row = np.asarray(first["row"])
    assert row.size == 900 and row.sum() == pytest.approx(1.0, abs=0.02) and (row >= 0).all()
    one = client.post(url, json={"lead": "II", "start": 3.0, "layer": 2, "head": 1, "token": 100}).json()
    other = client.post(url, json={"lead": "II", "start": 3.0, "layer": 2, "head": 3, "token": 100}).json()
    assert len(one["row"]) == 101  # a token sees itself and the past only
    assert one["row"] != other["row"]  # two heads attend differently
    assert np.asarray(one["distance"]).shape == (6, 4)
    assert len(one["map"]["z"]) <= 180
    # the window the model read is the record's lead, resampled to 100 Hz, from 3 s
    assert one["t"][0] == pytest.approx(3.0) and one["t"][1] - one["t"][0] == pytest.approx(0.01)
    # hidden-state similarity of the token to itself is 1 in every layer
    sim = np.asarray(one["similarity"]["z"])
    assert sim.shape == (7, 900) and np.allclose(sim[:, 100], 1.0, atol=1e-3)
    assert one["similarity"]["layers"][0] == "embedding"
    ppg = client.post(url, json={"lead": "PLETH", "token": 10}).json()
    assert ppg["model"] == "ppgpt-small" and ppg["tokens"] == 500
    assert client.post(url, json={"lead": "II", "layer": 99}).status_code == 422
    wrong = client.post(url, json={"lead": "PLETH", "model": "ecgpt-small"})
    assert wrong.status_code == 422 and "PPG" in wrong.json()["detail"]
    unknown = client.post(url, json={"lead": "II", "model": "../../etc/passwd"})
    assert unknown.status_code == 404 and "unknown model" in unknown.json()["detail"]


def test_explain_sections_say_what_is_missing(client):
    info = client.get("/api/explain").json()
    sections = info["sections"]
    assert set(sections) == {"similarity", "attributions", "shift"}
    assert sections["similarity"] is None and sections["attributions"] is None
    if info["tuned"]:  # a shipped model fine-tuned from a shipped GPT: the shift is drawn
        assert sections["shift"] is None and set(info["tuned"].values()) <= {"ecgpt-small", "ppgpt-small"}
    else:
        assert "fine-tuned" in sections["shift"]


@pytest.fixture(scope="module")
def tuned_client(tuned_checkpoint, tmp_path_factory):
    """An app offering, beside the shipped models, a model fine-tuned from ecgpt-small (``serve --models``)."""
    from fastapi.testclient import TestClient

    from cardiolens.app import AppSettings, create_app
    from cardiolens.app.server import operator_models

    settings = AppSettings(store_root=str(tmp_path_factory.mktemp("store")), models=operator_models([tuned_checkpoint]))
    with TestClient(create_app(settings)) as c:
        yield c


def test_attention_shift_compares_a_fine_tuned_gpt_with_its_pretrained_one(tuned_client):
    client = tuned_client
    assert TUNED in [m["name"] for m in client.get("/api/models").json()]
    info = client.get("/api/explain").json()
    assert info["tuned"][TUNED] == "ecgpt-small" and info["sections"]["shift"] is None
    example = client.post("/api/examples/simulated").json()
    url = f"/api/records/{example['id']}/attention-shift"
    body = {"model": TUNED, "lead": "II", "start": 1.0, "layer": None, "head": None, "token": 400}
    view = client.post(url, json=body).json()
    assert view["pretrained"] == "ecgpt-small" and view["finetuned"] == TUNED and view["token"] == 400
    before, after = np.array(view["row_pretrained"]), np.array(view["row_finetuned"])
    assert len(before) == len(after) == 401
    assert before.sum() == pytest.approx(1.0, abs=0.01) and after.sum() == pytest.approx(1.0, abs=0.01)
    assert np.allclose(np.array(view["difference"]), after - before, atol=2e-4)
    # only the last block changed: the layers before it attend exactly as before
    tv = np.array(view["tv_distance"])
    assert len(tv) == view["layers"] == 6
    assert np.all(tv[:-1] < 1e-3) and 0.01 < tv[-1] <= 1
    # the pretrained row is the one the attention endpoint shows for ecgpt-small
    same = {**body, "model": "ecgpt-small"}
    plain = client.post(f"/api/records/{example['id']}/attention", json=same).json()
    assert np.allclose(plain["row"], before, atol=1e-4)
    # one layer and head
    one = client.post(url, json={**body, "layer": 5, "head": 1}).json()
    assert one["tv_selected"] == pytest.approx(0.5 * np.abs(np.array(one["difference"])).sum(), abs=2e-3)
    assert client.post(url, json={**body, "model": "ecgpt-small"}).status_code == 404  # not a fine-tuned model
    assert client.post(url, json={**body, "layer": 6}).status_code == 422


def test_attributions_per_lead(client, example):
    url = f"/api/records/{example['id']}/attributions"
    result = client.post(url, json={"lead": "II", "start": 1.0, "method": "attention"}).json()
    assert result["method"] == "attention" and result["target"].startswith("token")
    assert [lead["name"] for lead in result["leads"]] == ["II"]
    values = np.asarray(result["leads"][0]["values"])
    assert values.shape == (900,) and np.isfinite(values).all() and values.std() > 0
    assert result["t"][0] == pytest.approx(1.0)
    # the class-specific form: the next token the model predicts, weighted by its gradient
    weighted = client.post(url, json={"lead": "II", "start": 1.0, "method": "gradrollout"}).json()
    assert weighted["method"] == "gradrollout" and weighted["target"] == result["target"]
    w = np.asarray(weighted["leads"][0]["values"])
    assert w.shape == (900,) and (w >= 0).all() and not np.allclose(w / w.sum(), values / values.sum())
    # plain rollout carries the faithfulness caveat, the gradient-weighted form does not need it
    assert any("no better than random" in n for n in result["notes"])
    assert not any("no better than random" in n for n in weighted["notes"])
    assert client.post(url, json={"lead": "II", "method": "magic"}).status_code == 422
    assert client.post(url, json={"lead": "PLETH", "model": "ecgpt-small"}).status_code == 422


def test_explain_report(client, example):
    response = client.get(
        f"/api/records/{example['id']}/explain-report", params={"lead": "II", "start": 2, "methods": "attention"}
    )
    assert response.status_code == 200, response.text
    assert "attachment" in response.headers["content-disposition"]
    assert "<html" in response.text.lower() and "data:image/png;base64," in response.text
    bad = client.get(f"/api/records/{example['id']}/explain-report", params={"methods": "nonsense"})
    assert bad.status_code == 422


def test_generation_streams_what_continue_signal_gives(client, example):
    got = events(client, example["id"], lead="II", steps=60, top_k=5, seed=3, chunk=25)
    kinds = [e["type"] for e in got]
    assert kinds == ["start", "chunk", "chunk", "chunk", "done"]
    start = got[0]
    assert (start["model"], start["model_fs"], start["resampled"], start["end"]) == ("ecgpt-small", 100.0, True, 30.0)
    chunks = got[1:-1]
    assert [c["start"] for c in chunks] == [0, 25, 50] and sum(len(c["values"]) for c in chunks) == 60
    tokens = np.concatenate([c["tokens"] for c in chunks])
    direct = continue_signal(load_model("ecgpt-small"), simulated_record(), lead="II", steps=60, top_k=5, seed=3)
    np.testing.assert_array_equal(tokens, direct.tokens)  # the same generator, the same seed
    assert chunks[0]["t"][0] == pytest.approx(30.0) and chunks[-1]["t"][-1] == pytest.approx(30.59)
    done = got[-1]
    assert "60 steps" in done["summary"] and "/" not in done["summary"].split("after")[0].replace("1.00 s", "")
    table = client.get(f"/api/records/{example['id']}/files/{done['csv']}")
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    generated = [float(r["value"]) for r in rows if r["part"] == "generated"]
    np.testing.assert_allclose(generated, direct.signal, rtol=1e-5, atol=1e-6)  # the CLI's CSV of the same run
    png = client.get(f"/api/records/{example['id']}/files/{done['png']}")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert client.get(f"/api/records/{example['id']}/files/AAAAAAAAAAAA").status_code == 404


def test_generation_refuses_bad_settings_before_streaming(client, example):
    url = f"/api/records/{example['id']}/generate"
    assert client.post(url, json={"lead": "II", "steps": 0}).status_code == 422
    assert client.post(url, json={"lead": "II", "temperature": 0}).status_code == 422
    assert client.post(url, json={"lead": "II", "steps": 100_000}).status_code == 422
    wrong = client.post(url, json={"lead": "PLETH", "model": "ecgpt-small", "steps": 5})
    assert wrong.status_code == 422 and "PPG" in wrong.json()["detail"]
    assert client.post(url, json={"lead": "II", "model": "nope"}).status_code == 404
    ppg = events(client, example["id"], lead="PLETH", steps=30, seed=0)
    assert ppg[0]["model"] == "ppgpt-small" and ppg[-1]["type"] == "done"


def test_report_is_self_contained_html(client, example):
    response = client.get(f"/api/records/{example['id']}/report", params={"lead": "II"})
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    text = response.text
    assert text.startswith("<!doctype html>") and "simulated" in text and "data:image/png;base64," in text
    assert "http://" not in text and "https://" not in text  # opens without a network


def test_unknown_and_malformed_ids(client):
    assert client.get("/api/records/AAAAAAAAAAAAAAAAAAAAAAAA").status_code == 404
    assert "expired" in client.get("/api/records/AAAAAAAAAAAAAAAAAAAAAAAA").json()["detail"]
    assert client.get("/api/records/..%2F..%2Fetc").status_code in (404, 422)
    assert client.post("/api/records/short/analysis", json={}).status_code == 422


def test_delete_removes_the_record_and_its_folder(client):
    info = client.post("/api/examples/simulated").json()
    store = client.app.state.store
    folder = store.root / info["id"]
    assert folder.is_dir()
    assert client.delete(f"/api/records/{info['id']}").status_code == 204
    assert not folder.exists()
    assert client.get(f"/api/records/{info['id']}").status_code == 404
    assert client.delete(f"/api/records/{info['id']}").status_code == 404


def test_page_assets_and_schema(client):
    page = client.get("/")
    assert page.status_code == 200 and "/vendor/plotly.min.js" in page.text
    # no asset is fetched from another host: the page works offline
    assert "http://" not in page.text.replace('href="/openapi.json"', "") and "https://" not in page.text
    js = client.get("/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000 and b"plotly" in js.content[:2000].lower()
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/app.css").status_code == 200
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    for path in (
        "/api/health",
        "/api/models",
        "/api/examples",
        "/api/examples/{name}",
        "/api/records",
        "/api/records/{record_id}",
        "/api/records/{record_id}/signal",
        "/api/records/{record_id}/analysis",
        "/api/records/{record_id}/attention",
        "/api/records/{record_id}/generate",
        "/api/records/{record_id}/files/{file_id}",
        "/api/records/{record_id}/report",
        "/api/explain",
        "/api/records/{record_id}/attributions",
        "/api/records/{record_id}/explain-report",
        "/api/records/{record_id}/attention-shift",
    ):
        assert path in paths, path
    assert all(p.startswith("/api/") for p in paths)
    # the API's own documentation pages load their scripts from this server too
    for docs in ("/docs", "/redoc"):
        html = client.get(docs).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
        assert sources and all(u.startswith("/") for u in sources), (docs, sources)
        for url in sources:
            assert client.get(url).status_code == 200, url


def test_analysis_runs_a_fine_tuned_model_through_predict_record(client, example, monkeypatch):
    # a small untrained rhythm model stands in for the shipped rhythm-ecg: the app must call
    # cardiolens.tasks.predict.predict_record with it and pass its probabilities and notes on
    predict = pytest.importorskip("cardiolens.tasks.predict")
    from cardiolens.app import services
    from cardiolens.models.taskmodel import TaskModel, TaskModelConfig

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    config = TaskModelConfig(task="rhythm", classes=["N", "A", "O", "~"], fs=100.0, leads=["I"], window=500)
    stand_in = TaskModel(config).eval()
    shipped = services.ModelPool().names()
    monkeypatch.setattr(services.ModelPool, "names", staticmethod(lambda: [*shipped, services.RHYTHM_MODEL]))
    real_get = services.ModelPool.get
    monkeypatch.setattr(
        services.ModelPool,
        "get",
        lambda self, name: stand_in if name == services.RHYTHM_MODEL else real_get(self, name),
    )
    result = client.post(f"/api/records/{example['id']}/analysis", json={"lead": "II"}).json()
    rhythm = result["rhythm"]
    assert rhythm["ok"], rhythm
    expected = predict.predict_record(stand_in, simulated_record(), lead="II")
    assert rhythm["probabilities"] == pytest.approx(expected.probabilities)
    assert sum(rhythm["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert rhythm["names"]["A"] == "atrial fibrillation" and rhythm["preprocessing"] == expected.preprocessing
    assert any("resampled" in note for note in rhythm["preprocessing"])


def test_serve_models_are_checked_when_the_server_starts(tmp_path, tuned_checkpoint):
    from cardiolens.app.server import operator_models
    from cardiolens.errors import CardiolensError

    assert operator_models([tuned_checkpoint]) == {TUNED: str(Path(tuned_checkpoint).resolve())}
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    with pytest.raises(CardiolensError, match="not-a-model"):
        operator_models([empty])
    with pytest.raises(CardiolensError, match="given twice"):
        operator_models([tuned_checkpoint, tuned_checkpoint])
    # fine-tuning writes every fold's checkpoint to .../fold-N/model: two runs, or a folder named like a
    # shipped model, get the folders above them in their names instead of an error or a shadowed model
    import shutil

    runs = tmp_path / "runs"
    for run in ("af", "af2"):
        shutil.copytree(tuned_checkpoint, runs / run / "fold-0" / "model")
    shutil.copytree(tuned_checkpoint, runs / "rhythm-ecg")
    offered = operator_models([runs / "af/fold-0/model", runs / "af2/fold-0/model", runs / "rhythm-ecg"])
    assert offered == {
        "af/fold-0/model": str((runs / "af/fold-0/model").resolve()),
        "af2/fold-0/model": str((runs / "af2/fold-0/model").resolve()),
        "runs/rhythm-ecg": str((runs / "rhythm-ecg").resolve()),
    }
