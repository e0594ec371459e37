"""``cardiolens features``, ``predict`` and ``evaluate`` on the input an audit of the command found them weak on."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from cardiolens.cli import main

FS = 250


def _ecg_npz(path: Path, seconds: float) -> Path:
    from cardiolens.analysis import simulated_record

    sim = simulated_record(seconds, fs=FS)
    np.savez(path, signal=sim.signal[:1].astype(np.float64), fs=FS, leads=np.array(["II"]))
    return path


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("cardiolens: error:") and "Traceback" not in err, err
    return err


@pytest.mark.realdata
def test_evaluate_a_beat_detector_scores_its_beats(
    mitdb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cardiolens.tasks.predict import evaluate

    # one record of beats-ecg's test fold: a subset folder is scored on the test records it holds
    for suffix in ("hea", "dat", "atr"):
        (tmp_path / f"104.{suffix}").symlink_to(mitdb_dir / f"104.{suffix}")
    result = evaluate("beats-ecg", tmp_path, n_resamples=20)  # crashed: curves of unequal length in one array
    scores = {k: v["value"] for k, v in result["scores"].items()}
    assert result["items"] == 30 and result["patients"] == 1
    assert "5 of its test records are not in this folder (108, 118, 124, 205, 209)" in result["scope"]
    assert scores["tp"] + scores["fn"] > 2000 and scores["f1"] > 0.98 and scores["threshold"] == 0.5
    assert main(["evaluate", "beats-ecg", str(tmp_path), "--bootstrap", "20"]) == 0
    out = capsys.readouterr().out
    assert "f1: 0.99" in out and f"beats: {scores['tp']} found, {scores['fn']} missed, {scores['fp']} false" in out
    # a folder without any of the model's test records says so instead of scoring nothing
    assert main(["evaluate", "aami-ecg-trees", str(tmp_path)]) == 2
    assert "none of the 5 test records of aami-ecg-trees" in _err(capsys)


def test_features_skip_a_folders_unreadable_records_as_predict_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    _ecg_npz(folder / "good.npz", 30)
    (folder / "empty.csv").write_text("")
    np.save(folder / "nofs.npy", np.zeros(1000))
    out = tmp_path / "features.csv"
    with caplog.at_level(logging.WARNING):
        assert main(["features", str(folder), "--out", str(out)]) == 0  # it stopped at the first bad record
    with open(out) as f:
        assert [row["record"] for row in csv.DictReader(f)] == ["good"]
    warned = caplog.text
    assert "skipped" in warned and "empty.csv" in warned and "nofs.npy" in warned and "sampling rate" in warned
    assert "of 1 record(s), 2 skipped" in capsys.readouterr().err
    # a file named itself still fails, and so does a folder where nothing could be computed
    assert main(["features", str(folder / "empty.csv")]) == 2
    assert "empty.csv" in _err(capsys)
    (folder / "good.npz").unlink()
    assert main(["features", str(folder)]) == 2
    assert "no record's features could be computed (2 skipped)" in _err(capsys)


def test_features_help_describes_the_command_in_a_whole_sentence(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["features", "--help"])
    description = " ".join(capsys.readouterr().out.split("\n\n")[1].split())  # it stopped mid-sentence
    assert description == "Write record-level rhythm features of an ECG lead as CSV, one row per record."


def test_predict_takes_nan_policy_and_says_what_it_filled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _ecg_npz(tmp_path / "gap.npz", 20)
    with np.load(path) as z:
        signal = z["signal"].copy()
    signal[0, 1000:1010] = np.nan
    np.savez(path, signal=signal, fs=FS, leads=np.array(["II"]))
    assert main(["predict", "rhythm-ecg", str(path)]) == 2
    assert "(--nan_policy interpolate on the command line)" in _err(capsys)  # the hint names a flag predict has
    assert main(["predict", "rhythm-ecg", str(path), "--nan_policy", "interpolate"]) == 0
    assert "missing samples filled by linear interpolation: 10 in lead 'II'" in capsys.readouterr().out
    assert main(["predict", "rhythm-ecg", str(path), "--nan_policy", "zero"]) == 2
    assert "nan_policy must be 'raise' or 'interpolate'" in _err(capsys)


def test_a_record_shorter_than_the_window_is_said_to_be_read_at_its_own_length(tmp_path: Path) -> None:
    from cardiolens.tasks.predict import predict_record

    p = predict_record("rhythm-ecg", _ecg_npz(tmp_path / "short.npz", 5))
    notes = "; ".join(p.preprocessing)
    assert "window(s) of 9 s" not in notes  # it was said to be a 9 s window
    assert "1 window of 5.0 s: the record is shorter than the model's 9 s window" in notes and "not padded" in notes
