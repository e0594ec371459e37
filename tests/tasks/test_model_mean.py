"""Means of models (``cardiolens.tasks.model_mean``): the shipped ``rhythm-ecg-mean`` averages its two
members exactly, states both members' preprocessing, round-trips through its folder, refuses members
that do not fit, is explained member by member, and reproduces its card on its real CinC 2017 test fold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from cardiolens.analysis import simulated_record
from cardiolens.cli import main
from cardiolens.errors import CheckpointError, ModelInputError
from cardiolens.models import load_model
from cardiolens.models.pretrained import weights_dir
from cardiolens.tasks.model_mean import MEAN_CONFIG, ModelMean, ModelMeanConfig, load_model_mean
from cardiolens.tasks.predict import evaluate, load_predictor, predict_record

MEMBERS = ["rhythm-ecg", "rhythm-ecg-trees"]
CLASSES = ["N", "A", "O", "~"]


def _write_sinus_csv(path: Path) -> Path:
    record = simulated_record()
    lead = record.signal[record.leads.index("II")]
    np.savetxt(path, np.c_[np.arange(lead.size) / record.fs, lead], delimiter=",", header="time,II", comments="")
    return path


def test_shipped_mean_averages_its_members_and_states_both_preprocessings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = simulated_record()
    mean = predict_record("rhythm-ecg-mean", record, lead="II")
    parts = [predict_record(name, record, lead="II") for name in MEMBERS]
    for c in CLASSES:
        assert mean.probabilities[c] == pytest.approx(np.mean([p.probabilities[c] for p in parts]), abs=1e-12)
    assert mean.labels == [max(mean.probabilities, key=mean.probabilities.get)] == ["N"]
    assert mean.extra["members"] == {p.model: p.probabilities for p in parts}
    steps = "; ".join(mean.preprocessing)
    assert "rhythm-ecg: resampled from 500 Hz to 100 Hz" in steps
    assert "rhythm-ecg-trees: resampled from 500 Hz to 300 Hz" in steps
    assert "unweighted mean of rhythm-ecg, rhythm-ecg-trees" in steps
    # the command line names the mean and prints its members' probabilities in the JSON
    path = _write_sinus_csv(tmp_path / "sinus.csv")
    capsys.readouterr()
    assert main(["predict", "rhythm-ecg-mean", str(path), "--as_json", "true"]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert printed["model"] == "rhythm-ecg-mean" and printed["labels"] == ["N"]
    assert set(printed["extra"]["members"]) == set(MEMBERS)


def test_a_saved_mean_reloads_and_predicts_the_same(tmp_path: Path) -> None:
    config = ModelMeanConfig("my-mean", "cinc2017-rhythm", CLASSES, MEMBERS)
    ModelMean(config, [load_predictor(m) for m in MEMBERS]).save(tmp_path / "my-mean", card="# my-mean\n")
    reloaded = load_model_mean(tmp_path / "my-mean")
    assert reloaded.config == config and (tmp_path / "my-mean" / "MODEL_CARD.md").is_file()
    record = simulated_record()
    ours = predict_record(str(tmp_path / "my-mean"), record, lead="II")
    shipped = predict_record("rhythm-ecg-mean", record, lead="II")
    assert ours.model == "my-mean" and ours.probabilities == shipped.probabilities


def test_members_that_do_not_fit_and_bad_folders_are_refused(tmp_path: Path) -> None:
    members = [load_predictor(m) for m in MEMBERS]
    config = ModelMeanConfig("m", "cinc2017-rhythm", CLASSES, MEMBERS)
    with pytest.raises(CheckpointError, match="at least two models, got 1"):
        ModelMean(ModelMeanConfig("m", "cinc2017-rhythm", CLASSES, MEMBERS[:1]), members[:1])
    with pytest.raises(CheckpointError, match=r"member 'beats-ecg' predicts per-sample mitbih-beats"):
        ModelMean(ModelMeanConfig("m", "cinc2017-rhythm", CLASSES, ["rhythm-ecg", "beats-ecg"]),
                  [members[0], load_predictor("beats-ecg")])  # fmt: skip
    with pytest.raises(CheckpointError, match="averages multiclass models, not 'multilabel'"):
        ModelMean(ModelMeanConfig("m", "cinc2017-rhythm", CLASSES, MEMBERS, kind="multilabel"), members)
    with pytest.raises(CheckpointError, match="'rhythm-ecg-mean' is itself a mean"):
        ModelMean(ModelMeanConfig("m", "cinc2017-rhythm", CLASSES, ["rhythm-ecg", "rhythm-ecg-mean"]),
                  [members[0], load_predictor("rhythm-ecg-mean")])  # fmt: skip
    # folders: a member that does not exist, a nested mean, another format, broken JSON
    folder = tmp_path / "m"
    ModelMean(config, members).save(folder)
    meta = json.loads((folder / MEAN_CONFIG).read_text())
    for change, message in [
        ({"members": ["rhythm-ecg", "no-such-model"]}, r"member 'no-such-model' cannot be loaded: .*no such model"),
        ({"members": ["rhythm-ecg", "rhythm-ecg-mean"]}, "'rhythm-ecg-mean' is itself a mean"),
        ({"members": ["rhythm-ecg", "."]}, "'.' is itself a mean"),  # itself: refused, not loaded forever
        ({"members": "rhythm-ecg"}, "members must be a list of model names or folders"),
    ]:
        (folder / MEAN_CONFIG).write_text(json.dumps({**meta, "config": {**meta["config"], **change}}))
        with pytest.raises(CheckpointError, match=message):
            load_model_mean(folder)
    (folder / MEAN_CONFIG).write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(CheckpointError, match="names format 'other'"):
        load_model_mean(folder)
    (folder / MEAN_CONFIG).write_text("{")
    with pytest.raises(CheckpointError, match=f"cannot read {MEAN_CONFIG}"):
        load_model_mean(folder)
    # a folder holding something else is not written into
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not a model-mean folder; refusing"):
        ModelMean(config, members).save(tmp_path / "other")


def test_a_mean_is_explained_member_by_member_for_the_means_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cardiolens.explain import explain_mean, explain_record

    path = _write_sinus_csv(tmp_path / "sinus.csv")
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["explain", "rhythm-ecg-mean", str(path), "--out", str(out), "--target", "A"]) == 0
    printed = capsys.readouterr().out
    assert "rhythm-ecg on" in printed and "rhythm-ecg-trees on" in printed and "index.html" in printed
    for member, method in (("rhythm-ecg", "attributions"), ("rhythm-ecg-trees", "features")):
        summary = json.loads((out / member / "summary.json").read_text())
        assert summary["target"] == "A" and method in summary, member  # the mean's class, not the member's own
        assert (out / member / "report.html").is_file()
    index = (out / "index.html").read_text()
    assert 'href="rhythm-ecg/report.html"' in index and 'href="rhythm-ecg-trees/report.html"' in index
    assert "explains the class <b>A</b>" in index and "http" not in index
    # by default the class is the mean's prediction
    assert {r.summary["target"] for r in explain_mean("rhythm-ecg-mean", path, lead="II")} == {"N"}
    # options that select within one model are refused, naming the way out
    assert main(["explain", "rhythm-ecg-mean", str(path), "--method", "ig"]) == 2
    assert "explain a member" in capsys.readouterr().err
    with pytest.raises(ModelInputError, match="unknown class 'X'; rhythm-ecg-mean has N, A, O, ~"):
        explain_mean("rhythm-ecg-mean", path, target="X")
    with pytest.raises(ModelInputError, match="rhythm-ecg is not a mean of models"):
        explain_mean("rhythm-ecg", path)
    with pytest.raises(ModelInputError, match="mean of rhythm-ecg, rhythm-ecg-trees: explain each of them, or use"):
        explain_record("rhythm-ecg-mean", path, "auto", tmp_path / "out")


def test_load_model_sends_the_user_to_predict_and_evaluate() -> None:
    with pytest.raises(CheckpointError, match="is a mean of other models, not a network"):
        load_model("rhythm-ecg-mean")
    with pytest.raises(CheckpointError, match="means of models for predict, evaluate and explain: rhythm-ecg-mean"):
        load_model("no-such-model")


def test_shipped_mean_reproduces_its_card_and_beats_each_member_on_its_test_fold(cinc2017_dir: Path) -> None:
    report = evaluate("rhythm-ecg-mean", cinc2017_dir, n_resamples=100)
    assert report["items"] == 1001 and "never trained on" in report["scope"]
    score = report["scores"]["score"]["value"]
    assert f"challenge score {score:.4f}" in (weights_dir() / "rhythm-ecg-mean" / "MODEL_CARD.md").read_text()
    # each member's card states its own score on the same 1,001 records
    member_scores = [
        float(re.search(r"Test scores of this fold: (?:challenge )?score (0\.\d+)", text).group(1))
        for text in ((weights_dir() / m / "MODEL_CARD.md").read_text() for m in MEMBERS)
    ]
    assert score > max(member_scores)
