"""Fixtures of the web-app tests: an app on a private store, the bundled example, small record files."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the web app needs the 'web' extra")

from fastapi.testclient import TestClient  # noqa: E402

from cardiolens.app import AppSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    """A TestClient of an app whose store lives in a test folder (entered: lifespan runs)."""
    root = tmp_path_factory.mktemp("store")
    app = create_app(AppSettings(store_root=str(root)))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def example(client) -> dict:
    """The bundled simulated example, loaded once per module."""
    response = client.post("/api/examples/simulated")
    assert response.status_code == 201, response.text
    return response.json()


def ecg_like(seconds: float, fs: float) -> np.ndarray:
    """A clean, periodic ECG-shaped trace (sharp peaks at 1 Hz on a slow wave), in mV."""
    t = np.arange(int(seconds * fs)) / fs
    return (0.1 * np.sin(2 * np.pi * 0.3 * t) + np.exp(-(((t % 1.0) - 0.2) ** 2) / 0.0005)).astype(np.float32)


TUNED = "tuned-ecgpt"


def save_tuned_stand_in(folder) -> str:
    """A checkpoint as ``cardiolens finetune --backbone ecgpt-small`` writes one: ecgpt-small with its
    last block's weights changed (so its attention differs there only) and a 2-class head."""
    import copy

    import torch

    from cardiolens.models import load_model, save_checkpoint
    from cardiolens.models.taskmodel import build_task_model

    torch.manual_seed(0)
    backbone = copy.deepcopy(load_model("ecgpt-small"))
    with torch.no_grad():
        for p in backbone.blocks[-1].parameters():
            p.add_(0.5 * torch.randn_like(p))
    tuned = build_task_model(
        backbone,
        task="test",
        kind="multiclass",
        classes=["N", "A"],
        fs=100.0,
        leads=["I"],
        window=900,
        backbone_name="ecgpt-small",
        name=TUNED,
    )
    path = folder / TUNED
    save_checkpoint(tuned, path, "a test stand-in: ecgpt-small with its last block perturbed")
    return str(path)


@pytest.fixture(scope="session")
def tuned_checkpoint(tmp_path_factory) -> str:
    return save_tuned_stand_in(tmp_path_factory.mktemp("models"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, tuned_checkpoint) -> str:
    """``cardiolens serve`` in its own process on a free loopback port, offering the shipped models and
    the fine-tuned stand-in (``--models``); yields its base URL."""
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "cardiolens.cli", "serve", "--port", str(port)),
                *("--models", json.dumps([tuned_checkpoint])),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"cardiolens serve did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
