"""Record-level tree models (``cardiolens.tasks.tree_model``): the NumPy trees equal scikit-learn's,
save/load without pickle, bad folders refused, and the shipped ``rhythm-ecg-trees`` through predict
and evaluate (simulated record, then its real test fold of CinC 2017)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from cardiolens.analysis import simulated_record
from cardiolens.cli import main
from cardiolens.errors import CheckpointError, RecordError
from cardiolens.models import load_model
from cardiolens.models.pretrained import weights_dir
from cardiolens.signal.record import Record
from cardiolens.tasks.predict import evaluate, predict_record
from cardiolens.tasks.rhythm_features import FEATURE_NAMES
from cardiolens.tasks.tree_model import (
    TREES_WEIGHTS,
    RhythmTreeModel,
    TreeEnsemble,
    TreeModelConfig,
    load_tree_model,
)


def _data(classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features whose first two columns decide the class, with NaNs the trees must route."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((600, len(FEATURE_NAMES)))
    y = (x[:, 0] > 0).astype(int) + (classes > 2) * (x[:, 1] > 0.5).astype(int) * 2
    y = np.minimum(y, classes - 1)
    x[rng.random(x.shape) < 0.1] = np.nan
    return x, y


@pytest.mark.parametrize("classes", [2, 4])
def test_numpy_trees_give_scikit_learns_probabilities(classes: int) -> None:
    x, y = _data(classes)
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(x[:400], y[:400])
    trees = TreeEnsemble.from_sklearn(model)
    np.testing.assert_allclose(trees.predict_proba(x[400:]), model.predict_proba(x[400:]), rtol=0, atol=1e-12)
    assert trees.roots.shape == (model.n_iter_, 1 if classes == 2 else classes)


def test_tree_model_saves_as_safetensors_and_json_and_reloads_the_same(tmp_path: Path) -> None:
    x, y = _data(4)
    fitted = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    config = TreeModelConfig("toy", "cinc2017-rhythm", ["N", "A", "O", "~"], 300.0, ["I"], 600, list(FEATURE_NAMES))
    folder = RhythmTreeModel(config, TreeEnsemble.from_sklearn(fitted)).save(tmp_path / "toy", card="# toy\n")
    assert sorted(p.name for p in folder.iterdir()) == ["MODEL_CARD.md", "trees.json", TREES_WEIGHTS]
    again = load_tree_model(folder)
    assert again.config == config
    np.testing.assert_allclose(again.ensemble.predict_proba(x), fitted.predict_proba(x), rtol=0, atol=1e-12)
    # saving over it again is allowed; over a folder that is something else is not
    RhythmTreeModel(config, again.ensemble).save(folder)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="refusing to replace"):
        RhythmTreeModel(config, again.ensemble).save(other)
    assert (other / "notes.txt").read_text() == "mine"


def test_bad_tree_model_folders_are_refused_with_the_reason(tmp_path: Path) -> None:
    x, y = _data(4)
    fitted = HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(x, y)
    config = TreeModelConfig("toy", "cinc2017-rhythm", ["N", "A", "O", "~"], 300.0, ["I"], 600, list(FEATURE_NAMES))
    folder = RhythmTreeModel(config, TreeEnsemble.from_sklearn(fitted)).save(tmp_path / "toy")
    with pytest.raises(CheckpointError, match="no trees.json"):
        load_tree_model(tmp_path)
    weights = folder / TREES_WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the digest"):
        load_tree_model(folder)
    meta = json.loads((folder / "trees.json").read_text())
    meta["format"] = "something-else"
    (folder / "trees.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="names format 'something-else'"):
        load_tree_model(folder)
    old_features = TreeModelConfig("old", "cinc2017-rhythm", ["N", "A", "O", "~"], 300.0, ["I"], 600, ["rr_cv"])
    with pytest.raises(CheckpointError, match="re-export it"):
        RhythmTreeModel(old_features, TreeEnsemble.from_sklearn(fitted))


def test_shipped_rhythm_trees_classify_a_sinus_record_and_state_their_preprocessing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = simulated_record()
    prediction = predict_record("rhythm-ecg-trees", record, lead="II")
    assert prediction.model == "rhythm-ecg-trees" and prediction.labels == ["N"]
    assert prediction.probabilities["N"] > 0.8 and sum(prediction.probabilities.values()) == pytest.approx(1)
    steps = "; ".join(prediction.preprocessing)
    assert "resampled from 500 Hz to 300 Hz" in steps and "102 rhythm features of the whole record" in steps
    # too short for the features: the error names the record and the minimum
    short = Record(record.signal[:, : int(1.5 * record.fs)], record.fs, record.leads, metadata={"path": "short.csv"})
    with pytest.raises(RecordError, match=r"short\.csv.*shorter than the 2 s rhythm-ecg-trees needs"):
        predict_record("rhythm-ecg-trees", short, lead="II")
    with pytest.raises(CheckpointError, match="record-level tree model"):
        load_model("rhythm-ecg-trees")
    # the command line: a CSV written here, JSON out
    path = tmp_path / "sinus.csv"
    lead = record.signal[record.leads.index("II")]
    np.savetxt(path, np.c_[np.arange(lead.size) / record.fs, lead], delimiter=",", header="time,II", comments="")
    capsys.readouterr()
    assert main(["predict", "rhythm-ecg-trees", str(path), "--as_json", "true"]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert printed["model"] == "rhythm-ecg-trees" and printed["labels"] == ["N"] and printed["windows"] == 1


def test_shipped_rhythm_trees_reproduce_their_card_on_their_test_fold(cinc2017_dir: Path) -> None:
    report = evaluate("rhythm-ecg-trees", cinc2017_dir, n_resamples=100)
    assert report["items"] == 1001 and "never trained on" in report["scope"]
    card = (weights_dir() / "rhythm-ecg-trees" / "MODEL_CARD.md").read_text()
    assert f"challenge score {report['scores']['score']['value']:.4f}" in card
    assert report["scores"]["AUROC_A"]["value"] > 0.97
