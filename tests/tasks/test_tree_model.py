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
from cardiolens.errors import CheckpointError, ModelInputError, RecordError
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
    (folder / "trees.json").write_text("{")
    with pytest.raises(CheckpointError, match="trees.json is not valid JSON"):
        load_tree_model(folder)
    looped = TreeEnsemble.from_sklearn(fitted).arrays()
    inner = np.flatnonzero(looped["is_leaf"] == 0)[:2]
    looped["left"][inner[1]] = looped["right"][inner[1]] = inner[1]  # an inner node that links to itself
    looped["roots"][:] = inner[1]
    with pytest.raises(CheckpointError, match="never reaches a leaf"):
        TreeEnsemble(looped).predict_proba(x[:2])
    wide = TreeEnsemble.from_sklearn(fitted)
    narrow = TreeModelConfig("narrow", "cinc2017-rhythm", ["N", "A", "O", "~"], 300.0, ["I"], 600, list(FEATURE_NAMES))
    wide.feature[~wide.is_leaf] = len(FEATURE_NAMES) + 5
    with pytest.raises(CheckpointError, match="split on features outside 0..101"):
        RhythmTreeModel(narrow, wide)
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
    # shorter than the task's 5 s (the training records are 9-61 s; a 3 s cut of sinus rhythm was called
    # noise with probability 1.000): the error names the record and the minimum
    short = Record(record.signal[:, : int(3 * record.fs)], record.fs, record.leads, metadata={"path": "short.csv"})
    with pytest.raises(RecordError, match=r"short\.csv.*shorter than the 5 s rhythm-ecg-trees needs"):
        predict_record("rhythm-ecg-trees", short, lead="II")
    with pytest.raises(CheckpointError, match="feature-tree model, not a network"):
        load_model("rhythm-ecg-trees")
    # the command line: a CSV written here, JSON out
    path = tmp_path / "sinus.csv"
    lead = record.signal[record.leads.index("II")]
    np.savetxt(path, np.c_[np.arange(lead.size) / record.fs, lead], delimiter=",", header="time,II", comments="")
    capsys.readouterr()
    assert main(["predict", "rhythm-ecg-trees", str(path), "--as_json", "true"]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert printed["model"] == "rhythm-ecg-trees" and printed["labels"] == ["N"] and printed["windows"] == 1


def _toy_model(tmp_path: Path) -> RhythmTreeModel:
    """Trees whose class is decided by the first feature alone (the reference: training medians)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((800, len(FEATURE_NAMES)))
    y = (x[:, 0] > 0).astype(int) * 1  # class A when feature 0 is positive
    fitted = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, np.where(y == 1, 1, 0))
    trees = TreeEnsemble.from_sklearn(fitted)
    reference = [float(v) for v in np.median(x, axis=0)]
    reference[0] = -1.0  # a typical training record is not AF: its deciding feature is on the other side
    config = TreeModelConfig(
        "toy", "cinc2017-af", ["not AF", "AF"], 300.0, ["I"], 600, list(FEATURE_NAMES), reference=reference
    )
    return RhythmTreeModel(config, trees)


def test_feature_explanation_names_the_deciding_feature_and_beats_random_deletion(tmp_path: Path) -> None:
    from cardiolens.explain.features import explain_features, feature_groups

    model = _toy_model(tmp_path)
    row = np.zeros(len(FEATURE_NAMES))
    row[0] = 2.0  # clearly AF by the rule the trees learned
    e = explain_features(model, row)
    assert e.target == "AF" and e.probability > 0.9
    first = next(iter(e.features))
    assert first == FEATURE_NAMES[0] and e.features[first]["effect"] > 2  # log-odds fall by more than 2
    assert all(abs(v["effect"]) < 0.5 for n, v in list(e.features.items())[1:])
    assert e.groups["RR intervals"] == pytest.approx(e.features[first]["effect"], abs=0.3)
    assert e.deletion["auc"] < e.deletion["random_auc"]
    assert sorted(i for g in feature_groups().values() for i in g) == list(range(len(FEATURE_NAMES)))
    # the other class can be asked for, by name; an unknown one is refused with the classes listed
    assert explain_features(model, row, target="not AF").target == "not AF"
    with pytest.raises(ModelInputError, match="unknown class 'O'; toy has not AF, AF"):
        explain_features(model, row, target="O")
    with pytest.raises(ModelInputError, match="reads 102 features, got 3"):
        explain_features(model, row[:3])


def test_explain_command_on_the_shipped_trees_writes_a_report_and_refuses_network_methods(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cardiolens.explain import explain_record

    record = simulated_record()
    lead = record.signal[record.leads.index("II")]
    path = tmp_path / "sinus.csv"
    np.savetxt(path, np.c_[np.arange(lead.size) / record.fs, lead], delimiter=",", header="time,II", comments="")
    assert main(["explain", "rhythm-ecg-trees", str(path), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "rhythm-ecg-trees on" in printed and "features with the largest effect" in printed
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["target"] == "N" and len(summary["features"]["top"]) == 15
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Record features behind the prediction" in html and "http" not in html.split("<body>")[1]
    assert (tmp_path / "out" / "features.png").stat().st_size > 10_000
    with pytest.raises(ModelInputError, match="gradcam does not apply to rhythm-ecg-trees.*available: features"):
        explain_record("rhythm-ecg-trees", path, "gradcam")


def test_shipped_rhythm_trees_explain_af_by_rhythm_and_p_wave(cinc2017_dir: Path) -> None:
    from cardiolens.datasets import CinC2017
    from cardiolens.explain.features import explain_features
    from cardiolens.io import load_record
    from cardiolens.tasks.rhythm_features import record_features

    model = load_tree_model(weights_dir() / "rhythm-ecg-trees")
    labels = CinC2017(cinc2017_dir).records.set_index("record_id")["label"]
    test = json.loads((weights_dir() / "rhythm-ecg-trees" / "split.json").read_text())["test"]
    af = [r for r in test if labels[r] == "A"][:8]  # records the trees never trained on
    rhythm_or_p = ("rr_", "drr_", "frac_abs_drr", "window_", "p_wave", "sd1", "rmssd", "median_abs_drr", "heart_rate")
    called_af = 0
    for rid in af:
        record = load_record(cinc2017_dir / f"{rid}.hea")
        e = explain_features(model, record_features(record.signal[0], record.fs), target="A")
        if e.probability < 0.5:
            continue  # missed by the model: its explanation of A says why not, not why
        called_af += 1
        top = list(e.features)[:5]
        assert any(n.startswith(rhythm_or_p) for n in top), (rid, top)
        assert e.deletion["auc"] < e.deletion["random_auc"], rid
    assert called_af >= 5


def test_shipped_rhythm_trees_reproduce_their_card_on_their_test_fold(cinc2017_dir: Path) -> None:
    report = evaluate("rhythm-ecg-trees", cinc2017_dir, n_resamples=100)
    assert report["items"] == 1001 and "never trained on" in report["scope"]
    card = (weights_dir() / "rhythm-ecg-trees" / "MODEL_CARD.md").read_text()
    assert f"challenge score {report['scores']['score']['value']:.4f}" in card
    assert report["scores"]["AUROC_A"]["value"] > 0.97
