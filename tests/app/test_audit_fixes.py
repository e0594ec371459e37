"""Defects found by a user-style audit of the app: each request below once gave a 500, a silent
wrong answer, a server path in a message or an overwritten download."""

from __future__ import annotations

import io

import numpy as np

from .conftest import ecg_like
from .test_api import events
from .test_uploads import upload


def npz(signal: np.ndarray, fs: float) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, signal=signal, fs=fs)
    return buf.getvalue()


def test_rates_from_the_file_are_bounded(client):
    x = ecg_like(10, 250)
    too_fast = upload(client, ("fast.npz", npz(x, 1e9)))
    assert too_fast.status_code == 422 and "1e+09 Hz is outside" in too_fast.json()["detail"]
    too_slow = upload(client, ("slow.npz", npz(x, 1.0)))  # 2,500 s of "ECG" at 1 Hz
    assert too_slow.status_code == 422 and "1 Hz is outside" in too_slow.json()["detail"]
    assert upload(client, ("ok.npz", npz(x, 250.0))).status_code == 201


def test_wfdb_header_rate_that_wfdb_would_replace_by_250(client, tmp_path):
    import wfdb

    wfdb.wrsamp(
        "r",
        fs=300,
        units=["mV"],
        sig_name=["I"],
        p_signal=ecg_like(5, 300)[:, None].astype(float),
        fmt=["16"],
        write_dir=str(tmp_path),
    )
    header = (tmp_path / "r.hea").read_text().splitlines()
    for bad in ("-300", "nan"):
        fields = header[0].split()
        fields[2] = bad
        text = "\n".join([" ".join(fields), *header[1:]]) + "\n"
        response = upload(client, ("r.hea", text.encode()), ("r.dat", (tmp_path / "r.dat").read_bytes()))
        assert response.status_code == 422, response.text
        assert f"no valid sampling rate ('{bad}')" in response.json()["detail"]


def test_messages_name_the_uploaded_file_not_the_server_folder(client):
    t = np.arange(30 * 125) / 125
    ppg = (np.sin(2 * np.pi * 1.2 * t) ** 2).astype(np.float32)
    body = "PLETH\n" + "\n".join(f"{v:.5f}" for v in ppg)
    record = upload(client, ("pulse.csv", body.encode()), fs=125).json()
    result = client.post(f"/api/records/{record['id']}/analysis", json={"lead": "PLETH"}).json()
    messages = [result[k]["message"] for k in ("rhythm", "rhythm_trees", "beat_classes") if result.get(k)]
    assert messages and all(m.startswith("pulse.csv: ") for m in messages), messages
    assert not any("cardiolens-app" in m or "/upload/" in m for m in messages)


def test_signal_window_outside_the_record(client, example):
    url = f"/api/records/{example['id']}/signal"
    for query in ("start=inf", "duration=inf", "start=nan"):
        assert client.get(f"{url}?{query}").status_code == 422, query
    past = client.get(f"{url}?start=1e308")
    assert past.status_code == 422 and "past the end of the record (30.00 s)" in past.json()["detail"]
    tail = client.get(f"{url}?start=29&duration=1e308").json()
    assert tail["stop"] == 30.0 and tail["start"] == 29.0


def test_each_generation_keeps_its_own_downloads(client, example):
    first = events(client, example["id"], lead="II", steps=10, seed=1)[-1]
    first_csv = client.get(f"/api/records/{example['id']}/files/{first['csv']}").text
    second = events(client, example["id"], lead="II", steps=30, seed=2)[-1]
    assert client.get(f"/api/records/{example['id']}/files/{first['csv']}").text == first_csv
    second_csv = client.get(f"/api/records/{example['id']}/files/{second['csv']}").text
    # written at the record's 500 Hz: 5 rows per generated 100 Hz step
    assert (second_csv.count("\ngenerated,"), first_csv.count("\ngenerated,")) == (150, 50)


def test_attention_token_and_attribution_method_are_checked(client, example):
    url = f"/api/records/{example['id']}"
    far = client.post(f"{url}/attention", json={"lead": "II", "token": 5000})
    assert far.status_code == 422 and "outside the window of 900 tokens" in far.json()["detail"]
    assert client.post(f"{url}/attributions", json={"lead": "II", "method": "gradcam"}).status_code == 422


def test_attention_shift_without_any_fine_tuned_gpt(client, example):
    response = client.post(f"/api/records/{example['id']}/attention-shift", json={})
    assert response.status_code == 404
    assert response.json()["detail"] == "no installed model is fine-tuned from a shipped GPT"


def test_respiration_is_not_read_as_ecg(client):
    t = np.arange(60 * 125) / 125
    resp = np.sin(2 * np.pi * 0.25 * t)
    pleth = np.sin(2 * np.pi * 1.2 * t) ** 2
    body = "RESP,PLETH\n" + "\n".join(f"{r:.5f},{p:.5f}" for r, p in zip(resp, pleth, strict=True))
    record = upload(client, ("bidmc_like.csv", body.encode()), fs=125).json()
    assert record["modalities"] == ["other", "PPG"] and record["default_lead"] == "PLETH"
    url = f"/api/records/{record['id']}"
    beats = client.post(f"{url}/analysis", json={"lead": "RESP"})
    assert beats.status_code == 422 and "'RESP' (unknown) is not an ECG or PPG lead" in beats.json()["detail"]
    attention = client.post(f"{url}/attention", json={"lead": "RESP", "model": "ecgpt-small"})
    assert attention.status_code == 422 and "neither ECG nor PPG" in attention.json()["detail"]
    generation = client.post(f"{url}/generate", json={"lead": "RESP", "model": "ecgpt-small", "steps": 10})
    assert generation.status_code == 422, generation.text


def test_requests_without_a_body_take_every_default(client, example):
    url = f"/api/records/{example['id']}"
    analysis = client.post(f"{url}/analysis")  # no JSON at all: every field has a default
    assert analysis.status_code == 200 and analysis.json()["lead"] == example["default_lead"]
    assert client.post(f"{url}/attention").status_code == 200
    assert client.post(f"{url}/analysis", json={"lead": 5}).status_code == 422  # a body is still checked
