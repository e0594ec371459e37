"""Beat-level tree models: features of one recording's beats (``record_beat_features``), the
``BeatTreeModel`` saved without pickle, and the shipped ``aami-ecg-trees`` through predict, evaluate
and explain (simulated signals, then MIT-BIH records of its test fold)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from cardiolens.cli import main
from cardiolens.errors import CheckpointError, RecordError
from cardiolens.models.pretrained import weights_dir
from cardiolens.signal.record import Record
from cardiolens.tasks.aami_features import FEATURE_NAMES, record_beat_features
from cardiolens.tasks.predict import evaluate, predict_record
from cardiolens.tasks.tree_model import BeatTreeModel, RhythmTreeModel, TreeEnsemble, TreeModelConfig, load_tree_model

FS = 250.0


def _ecg(beat_times: np.ndarray, wide: set[int], seconds: float = 30.0) -> np.ndarray:
    """Narrow upright QRS spikes with a T wave; the beats in ``wide`` broad and inverted (ventricular-like)."""
    t = np.arange(int(seconds * FS)) / FS
    x = np.zeros_like(t)
    for i, b in enumerate(beat_times):
        if i in wide:
            x += -1.2 * np.exp(-0.5 * ((t - b) / 0.04) ** 2)
        else:
            x += np.exp(-0.5 * ((t - b) / 0.01) ** 2) + 0.2 * np.exp(-0.5 * ((t - b - 0.25) / 0.04) ** 2)
    return x


def _regular_with_one_early_wide_beat() -> tuple[np.ndarray, np.ndarray]:
    times = list(np.arange(0.5, 29.5, 0.8))
    times[12] = times[11] + 0.45  # premature
    times[13:] = [t + 0.3 for t in times[13:]]  # and a compensatory pause
    times = np.array([t for t in times if t < 29.5])
    return times, _ecg(times, {12})


def test_beat_features_single_out_a_premature_wide_beat_whatever_the_gain() -> None:
    times, x = _regular_with_one_early_wide_beat()
    beats = np.round(times * FS).astype(int)
    rows, kept = record_beat_features(x, FS, beats, FS)
    assert rows.shape == (len(beats) - 2, len(FEATURE_NAMES))
    np.testing.assert_array_equal(kept, np.arange(1, len(beats) - 1))  # the ends have no pre- or post-RR
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    odd = list(kept).index(12)
    others = np.delete(rows, odd, axis=0)
    assert rows[odd, col["corr_qrs"]] < others[:, col["corr_qrs"]].min() - 0.3
    assert rows[odd, col["log_pre_local"]] < -0.3 < 0.1 < rows[odd, col["log_post_local"]]
    assert rows[odd, col["rms_difference_in_record"]] > 5  # far outside the record's usual spread
    # a gain and an offset change nothing: amplitudes are in units of the median beat's QRS height
    again, _ = record_beat_features(3.0 * x + 2.0, FS, beats, FS)
    np.testing.assert_allclose(again, rows, rtol=1e-4, atol=1e-4)  # windows are float32
    # beats given at another rate are placed at the same samples
    at_500, _ = record_beat_features(x, FS, beats * 2, 2 * FS)
    np.testing.assert_allclose(at_500, rows, rtol=1e-9, atol=1e-9)


def test_a_short_recording_with_fewer_beats_than_the_irregularity_window_works() -> None:
    times = np.arange(0.5, 9.0, 0.8)  # 11 beats: fewer than the 33-beat irregularity window
    rows, kept = record_beat_features(_ecg(times, set(), seconds=10), FS, np.round(times * FS).astype(int), FS)
    assert rows.shape == (9, len(FEATURE_NAMES)) and list(kept) == list(range(1, 10))
    irregular = [FEATURE_NAMES.index(f"rr_irregularity_{h}") for h in (4, 8, 16)]
    assert np.all(np.abs(rows[:, irregular]) < 1e-9)  # a regular rhythm


def test_beat_features_refuse_too_few_beats_and_several_leads() -> None:
    from cardiolens.errors import CardiolensError

    x = np.zeros(2500)
    with pytest.raises(CardiolensError, match="at least 3 beat positions"):
        record_beat_features(x, FS, [100, 300], FS)
    with pytest.raises(CardiolensError, match="needs one lead"):
        record_beat_features(np.zeros((2, 2500)), FS, [100, 300, 500], FS)


def _toy_beat_model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((800, len(FEATURE_NAMES)))
    y = np.where(x[:, 5] < -0.8, 2, (x[:, 0] > 0.5).astype(int))  # N, S, V by two columns
    fitted = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y)
    config = TreeModelConfig(
        "toy-beats",
        "mitbih-aami",
        ["N", "S", "V"],
        FS,
        ["MLII"],
        int(10 * FS),
        list(FEATURE_NAMES),
        feature_set="cardiolens.tasks.aami_features",
        kind="per-beat",
        reference=[0.0] * len(FEATURE_NAMES),
    )
    return BeatTreeModel(config, TreeEnsemble.from_sklearn(fitted)).save(tmp_path / "toy-beats")


def test_beat_tree_model_reloads_as_a_beat_model_and_bad_feature_sets_are_refused(tmp_path: Path) -> None:
    folder = _toy_beat_model(tmp_path)
    model = load_tree_model(folder)
    assert isinstance(model, BeatTreeModel) and not isinstance(model, RhythmTreeModel)
    times, x = _regular_with_one_early_wide_beat()
    probs, kept = model.predict_beats(x, np.round(times * FS).astype(int), FS)
    assert probs.shape == (len(times) - 2, 3) and np.allclose(probs.sum(axis=1), 1)
    meta = json.loads((folder / "trees.json").read_text())
    # the features of another set under this model's name, or a set this version does not know
    meta["config"]["feature_set"] = "cardiolens.tasks.rhythm_features"
    (folder / "trees.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="features of cardiolens.tasks.rhythm_features that are not"):
        load_tree_model(folder)
    meta["config"]["feature_set"] = "somebody.elses_features"
    (folder / "trees.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="reads features of 'somebody.elses_features'; this version knows"):
        load_tree_model(folder)


def test_predict_names_each_beat_of_a_simulated_record(tmp_path: Path) -> None:
    model = load_tree_model(_toy_beat_model(tmp_path))
    times, x = _regular_with_one_early_wide_beat()
    record = Record(signal=x[None], fs=FS, leads=["MLII"], name="sim")
    p = predict_record(model, record)
    assert p.kind == "per-beat" and p.classes == ["N", "S", "V"]
    assert len(p.beats) == len(p.confidence) == len(p.extra["beat_labels"]) == len(p.extra["beat_probabilities"])
    assert len(times) - 4 <= len(p.beats) <= len(times)  # the detector finds the simulated beats (not the ends)
    assert np.min(np.abs(p.beats[:, None] - times[None, :] * FS), axis=1).max() <= 0.15 * FS  # at the record rate
    assert sum(p.extra["beats_per_class"].values()) == len(p.beats)
    assert p.labels == [c for c in p.classes if p.extra["beats_per_class"][c]]
    assert any("first and last beat are not classified" in n for n in p.preprocessing)
    too_few = Record(signal=_ecg(np.array([1.0, 2.0]), set(), seconds=12)[None], fs=FS, leads=["MLII"], name="two")
    with pytest.raises(RecordError, match="2 beats found; classifying beats needs at least 3"):
        predict_record(model, too_few)


# -- the shipped model on real MIT-BIH records of its test fold ---------------------------------------
@pytest.mark.parametrize("rid", ["109", "201"])
def test_beat_features_of_a_recording_equal_the_benchmarks(mitdb_dir: Path, rid: str) -> None:
    # the trees were trained on aami_feature_matrix; predict computes record_beat_features: they must agree
    from cardiolens.datasets import MITBIH
    from cardiolens.signal.resample import resample
    from cardiolens.tasks.aami_features import aami_feature_matrix
    from cardiolens.tasks.suite import get_task, load_task_data

    db = MITBIH(mitdb_dir)
    beats = db.beats(rid)
    assert not (beats["aami"] == "Q").any()  # then every annotated beat is an item of the task
    data = load_task_data(get_task("mitbih-aami"), mitdb_dir, FS, progress=False, template=True, records=[rid])
    record = db.load(rid)
    x = resample(record.signal[list(record.leads).index("MLII")][None], record.fs, FS)[0]
    rows, kept = record_beat_features(x, FS, beats["sample"].to_numpy(), record.fs)
    np.testing.assert_allclose(rows, aami_feature_matrix(data), rtol=0, atol=1e-9)
    assert len(kept) == len(beats) - 2


def test_shipped_aami_trees_find_the_ventricular_beats_of_a_test_record(mitdb_dir: Path) -> None:
    from cardiolens.datasets import MITBIH
    from cardiolens.tasks.metrics import matched_pairs

    split = json.loads((weights_dir() / "aami-ecg-trees" / "split.json").read_text())
    assert "208" in split["test"]  # never trained on
    db = MITBIH(mitdb_dir)
    p = predict_record("aami-ecg-trees", db.load("208"), lead="MLII")
    beats = db.beats("208")
    ref = beats["sample"].to_numpy()
    ref_i, det_i = matched_pairs(ref, p.beats, int(0.15 * 360))
    assert len(ref_i) > 0.99 * len(p.beats)
    truth = beats["aami"].to_numpy()[ref_i]
    called = np.array(p.extra["beat_labels"])[det_i]
    assert np.mean(called[truth == "V"] == "V") > 0.7  # 992 annotated V beats
    assert np.mean(called[truth == "N"] == "N") > 0.9


def test_evaluate_reproduces_the_cards_fold_scores(mitdb_dir: Path) -> None:
    result = evaluate("aami-ecg-trees", mitdb_dir, n_resamples=50)
    card = json.loads((Path(__file__).parents[2] / "benchmarks" / "results" / "aami_ecg_trees.json").read_text())
    assert "test fold" in result["scope"] and result["patients"] == len(card["test_records"])
    scores = result["scores"]
    f1_v = scores["F1_V"]["value"] if isinstance(scores["F1_V"], dict) else scores["F1_V"]
    assert f1_v == pytest.approx(card["annotated_beats"]["F1_V"], abs=1e-9)


def test_explain_a_beat_of_a_real_record(mitdb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = mitdb_dir / "118.hea"
    assert main(["explain", "aami-ecg-trees", str(record), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["target"] != "N" and summary["explained"].startswith("the beat at ")
    assert set(summary["features"]["groups"]) == {
        "RR intervals",
        "beat against the median beat",
        "RR irregularity",
        "RR, unusual for the record",
        "shape, unusual for the record",
    }
    assert summary["features"]["deletion_auc"] < summary["features"]["random_deletion_auc"]
    # the beat is drawn over the record's median beat, with the RR intervals around it
    assert (tmp_path / "out" / "beat.png").stat().st_size > 10_000
    assert "The beat against the record" in (tmp_path / "out" / "report.html").read_text()
    # a chosen time explains the beat nearest it
    assert main(["explain", "aami-ecg-trees", str(record), "--start", "10", "--out", str(tmp_path / "at10")]) == 0
    at10 = json.loads((tmp_path / "at10" / "summary.json").read_text())
    assert abs(float(at10["explained"].split()[3]) - 10) < 1.0
    assert "Beat features behind the prediction" in (tmp_path / "at10" / "report.html").read_text()
    capsys.readouterr()


def test_predict_writes_a_csv_row_per_beat_and_per_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import csv

    folder = _toy_beat_model(tmp_path)
    times, x = _regular_with_one_early_wide_beat()
    path = tmp_path / "sim.csv"
    np.savetxt(path, np.c_[np.arange(x.size) / FS, x], delimiter=",", header="time,MLII", comments="")
    assert main(["predict", str(folder), str(path), "--out", str(tmp_path / "out")]) == 0
    assert "beats classified" in capsys.readouterr().out
    with open(tmp_path / "out" / "sim_beats.csv") as f:
        beats = list(csv.DictReader(f))
    assert list(beats[0]) == ["sample", "time_s", "confidence", "class", "p_N", "p_S", "p_V"]
    assert len(times) - 4 <= len(beats) <= len(times)
    for row in beats:
        assert float(row["time_s"]) == pytest.approx(int(row["sample"]) / FS, abs=1e-4)
        probs = [float(row[f"p_{c}"]) for c in "NSV"]
        assert sum(probs) == pytest.approx(1, abs=1e-3) and row["class"] == "NSV"[int(np.argmax(probs))]
    with open(tmp_path / "out" / "predictions.csv") as f:
        (record,) = list(csv.DictReader(f))
    assert record["source"].endswith("sim.csv") and int(record["beats"]) == len(beats)
    saved = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert saved[0]["kind"] == "per-beat" and saved[0]["fs"] == pytest.approx(FS)
    # two records of the same name (from different folders) get a beat file each
    from cardiolens.tasks.predict import predict_paths, write_predictions

    twice = predict_paths(folder, [path, path])
    names = [f.name for f in write_predictions(twice, tmp_path / "twice")]
    assert names == ["predictions.json", "predictions.csv", "sim_beats.csv", "sim-2_beats.csv"]
