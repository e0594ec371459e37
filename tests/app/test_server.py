"""The server as it runs: work off the event loop, streaming over a real socket, host checks, the store."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest

from cardiolens.app import RecordStore, services
from cardiolens.app.uploads import UploadError, safe_name
from cardiolens.signal.record import Record


def test_long_work_does_not_block_the_event_loop(client, example, monkeypatch):
    real = services.analyse

    def slow(*args, **kwargs):
        time.sleep(1.5)  # blocks its thread: were it on the event loop, nothing else would be answered
        return real(*args, **kwargs)

    monkeypatch.setattr(services, "analyse", slow)
    done: dict = {}

    def analyse() -> None:
        done["response"] = client.post(f"/api/records/{example['id']}/analysis", json={})

    worker = threading.Thread(target=analyse)
    worker.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert client.get("/api/health").status_code == 200
    answered = time.monotonic() - t0
    still_running = worker.is_alive()
    worker.join()
    assert still_running and answered < 0.8
    assert done["response"].status_code == 200


def test_generation_arrives_progressively_over_http(live_server):
    with httpx.Client(base_url=live_server, timeout=60) as http:
        record = http.post("/api/examples/simulated").json()
        arrivals = []
        t0 = time.monotonic()
        body = {"lead": "II", "steps": 800, "chunk": 50, "top_k": 5, "seed": 1}
        with http.stream("POST", f"/api/records/{record['id']}/generate", json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.strip():
                    arrivals.append((json.loads(line)["type"], time.monotonic() - t0))
        kinds = [k for k, _ in arrivals]
        assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("chunk") == 16
        chunk_times = [t for k, t in arrivals if k == "chunk"]
        gaps = np.diff(chunk_times)
        # the chunks reach the client as they are generated, one after the other, not all at the end
        # (the time to the first one, loading the model and the compiled step, is not the point)
        assert chunk_times[-1] - chunk_times[0] > 0.1 and (gaps > 0.005).sum() >= 8, gaps


def test_server_refuses_foreign_host_headers(live_server):
    # cardiolens serve on loopback answers only to loopback names (a DNS-rebinding page sends its own)
    assert httpx.get(live_server + "/api/health", headers={"host": "evil.example"}).status_code == 400
    assert httpx.get(live_server.replace("127.0.0.1", "localhost") + "/api/health").status_code == 200


def test_store_expiry_lru_and_close(tmp_path):
    store = RecordStore(tmp_path / "s", ttl_s=3600, max_entries=2)
    rec = Record([[0.0, 1.0, 0.0]], 100.0, leads=["II"])
    ids = []
    for _ in range(3):
        key, folder = store.new_folder()
        (folder / "f").write_text("x")
        store.add(key, rec, "upload")
        ids.append(key)
    assert len(store) == 2 and not (tmp_path / "s" / ids[0]).exists()  # least recently used dropped
    store.get(ids[1])
    store.ttl_s = 0.0
    assert store.sweep() == 2 and list((tmp_path / "s").iterdir()) == []
    own = RecordStore()
    key, _ = own.new_folder()
    own.add(key, rec, "example")
    root = own.root
    own.close()
    assert not root.exists()


@pytest.mark.parametrize(
    ("given", "stored"),
    [("rec.hea", "rec.hea"), ("C:\\data\\rec.dat", "rec.dat"), ("../../etc/passwd", "passwd"), ("a b.csv", "a_b.csv")],
)
def test_safe_names(given, stored):
    assert safe_name(given) == stored


@pytest.mark.parametrize("given", ["", "..", ".hidden", "/"])
def test_unusable_names(given):
    with pytest.raises(UploadError):
        safe_name(given)
