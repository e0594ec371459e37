"""The page in a real browser: headless Debian chromium driven by playwright-core (tests/app/e2e.mjs).

``make test`` installs both (``apt-get install chromium``, ``npm ci``). Screenshots of every step are
kept in ``tests/artifacts/app/`` (ignored by git). Without the browser these tests skip, and fail
under ``CI=true``, like the tests that need ../shared/data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cardiolens.io import load_record
from cardiolens.tasks.predict import predict_record

from .conftest import TUNED

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
DRIVER = REPO / "node_modules" / "playwright-core"
ARTIFACTS = REPO / "tests" / "artifacts" / "app"


def _browser_or_skip() -> str:
    node = shutil.which("node")
    missing = [
        what
        for what, ok in (("node", node), (str(CHROMIUM), CHROMIUM.exists()), (str(DRIVER), DRIVER.is_dir()))
        if not ok
    ]
    if missing:
        message = f"browser test needs {', '.join(missing)} (make test installs them)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return node


@pytest.mark.realdata
@pytest.mark.slow
def test_page_end_to_end(live_server, cinc2017_dir):
    node = _browser_or_skip()
    hea = sorted(cinc2017_dir.glob("*.hea"))[0]
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    run = subprocess.run(
        [
            node,
            str(REPO / "tests" / "app" / "e2e.mjs"),
            live_server,
            str(hea),
            str(hea.with_suffix(".mat")),
            str(ARTIFACTS),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result from the browser run (exit {run.returncode}):\n{run.stdout}\n{run.stderr}"
    result = json.loads(lines[-1])
    (ARTIFACTS / "result.json").write_text(json.dumps(result, indent=2))
    assert result["failed"] is None, result["failed"]

    assert result["plotlyLoaded"] and result["offsite"] == []  # plotly.js from the server: no network needed
    assert "not uploaded" in result["badUploadMessage"] and hea.with_suffix(".mat").name in result["badUploadMessage"]
    assert result["expectedErrors"] and all("400" in e for e in result["expectedErrors"])  # only the refused upload

    record = result["record"]
    assert record["traces"] == 1 and record["points"] > 1000 and "300 Hz" in record["info"]
    assert hea.stem in record["info"]

    analysis = result["analysis"]
    # beats are marked by the shipped beats-ecg model when installed, the heart-rate series comes from
    # the R-peak detector: both see the record's beats, not necessarily the very same ones at its edges
    assert analysis["beatMarkers"] > 5 and abs(analysis["hrPoints"] - (analysis["beatMarkers"] - 1)) <= 5
    assert "beats in lead" in analysis["summary"] and "bpm" in analysis["summary"]
    assert analysis["rhythmNote"]  # probabilities' model and preprocessing, or why the model is unavailable
    # the shipped rhythm models side by side: grouped bars, one trace (legend entry) per model, their mean last
    assert analysis["rhythmModels"] == ["rhythm-ecg", "rhythm-ecg-trees", "rhythm-ecg-mean"]
    assert analysis["rhythmBarmode"] == "group"
    assert "rhythm-ecg-trees" in analysis["summary"] and "rhythm-ecg-trees" in analysis["rhythmNote"]
    assert "rhythm-ecg-mean: the unweighted mean of rhythm-ecg and rhythm-ecg-trees" in analysis["rhythmNote"]
    assert analysis["treesReportPage"]["status"] == 200 and "rhythm-ecg-trees" in analysis["treesReportPage"]["text"]
    assert_beat_classes_drawn(analysis, hea)

    attention = result["attention"]
    assert attention["changed"], "moving the head slider did not change the attention plot"
    assert "all heads" in attention["before"] and "head 2" in attention["after"] and attention["tokens"] == 900

    assert result["similarityUpdates"] >= 2  # the similarity map follows the sliders too
    # the default is the method that passed the deletion check; plain rollout is offered with its caveat
    assert result["attributions"]["points"] == 900 and "gradrollout" in result["attributions"]["note"]

    # the server offers a model fine-tuned from ecgpt-small (serve --models): its attention shift is drawn
    shift = result["shift"]
    assert shift["enabled"] and shift["names"] == ["ecgpt-small", TUNED] and shift["points"] > 100
    layers = shift["layers"]  # only the last block differs from the pretrained model
    assert len(layers) == 6 and max(layers[:-1]) < 1e-3 and 0.01 < layers[-1] <= 1
    assert shift["changed"] and "total-variation distance" in shift["note"]

    generate = result["generate"]
    assert generate["generated"] == 100  # samples at the model's 100 Hz, drawn as they arrive
    assert generate["csvGeneratedRows"] == 300  # the CSV has them at the record's 300 Hz, as `cardiolens generate`
    assert generate["csv"].startswith("/api/records/")
    assert result["consoleErrors"] == []
    names = sorted(p.name for p in ARTIFACTS.glob("*.png"))
    assert len(names) == 7, names


def assert_beat_classes_drawn(analysis: dict, hea: Path) -> None:
    """The page shows the classes aami-ecg-trees gives the record's (only) lead when called directly:
    counts in the summary, one marker trace per class present (S, V, F shaped apart), words on hover."""
    record = load_record(hea)
    expected = predict_record("aami-ecg-trees", record)
    counts = expected.extra["beats_per_class"]
    assert "beats: " + ", ".join(f"{c} {n}" for c, n in counts.items()) + " (aami-ecg-trees)" in analysis["summary"]
    assert "aami-ecg-trees" in analysis["beatClassesNote"] and "unavailable" not in analysis["beatClassesNote"]
    drawn = {trace["cls"]: trace for trace in analysis["beatClasses"]}
    assert sorted(drawn) == sorted(c for c, n in counts.items() if n) and analysis["showLegend"]
    in_view = expected.beats / record.fs <= min(record.duration, 60)  # the page shows the first minute
    labels = np.asarray(expected.extra["beat_labels"])
    words = {"N": "normal", "S": "supraventricular ectopic", "V": "ventricular ectopic", "F": "fusion"}
    for cls, trace in drawn.items():
        assert trace["markers"] == int(np.sum(in_view & (labels == cls))), cls
        assert words[cls] in trace["name"] and trace["hover"].startswith(f"{cls} {words[cls]}, confidence ")
    ectopic = [drawn[c]["symbol"] for c in "SVF" if c in drawn]
    assert len(set(ectopic)) == len(ectopic) and drawn.get("N", {}).get("symbol") not in ectopic
