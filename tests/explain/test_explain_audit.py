"""``cardiolens explain`` after the audit of its options: a start or attention option a model cannot honour
is refused, the mean's members say which window they explain, the tree summaries read like the others',
and a feature missing from the window is said once, the same way everywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cardiolens.analysis import simulated_record
from cardiolens.cli import main
from cardiolens.errors import ModelInputError, RecordError
from cardiolens.explain import explain_mean, explain_record, summary_lines
from cardiolens.explain.physiology import HeadFeatureTable, not_found_text
from cardiolens.explain.plots import plot_head_features
from cardiolens.explain.report import render_html
from cardiolens.tasks.tree_model import find_tree_model, load_tree_model


def _trees(name: str):
    folder = find_tree_model(name)
    if folder is None:
        pytest.skip(f"{name} is not shipped in the weights folder")
    return load_tree_model(folder)


@pytest.fixture(scope="module")
def record():
    return simulated_record()  # 30 s, leads II and PLETH


def test_a_beat_time_outside_the_record_is_refused(record):
    beats = _trees("aami-ecg-trees")
    with pytest.raises(RecordError, match=r"start 1000 s lies outside the signal \(30.00 s long\)"):
        explain_record(beats, record, lead="II", start=1000.0)
    inside = explain_record(beats, record, lead="II", start=12.0)
    assert abs(inside.summary["beat"]["time_s"] - 12.0) < 1.0


def test_a_whole_record_model_refuses_a_start(record):
    with pytest.raises(ModelInputError, match="reads the whole record .* start 5 s does not apply"):
        explain_record(_trees("rhythm-ecg-trees"), record, lead="II", start=5.0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"token": 5}, "token 5: token/layer/head select attention"),
        ({"token": 5, "layer": 3}, "token 5, layer 3: token/layer/head select attention"),
        ({"head": 1}, "head 1: token/layer/head select attention"),
        ({"position": 10}, "position selects a sample of a per-sample output"),
    ],
)
def test_tree_models_refuse_the_options_of_attention_and_per_sample_outputs(record, options, message):
    with pytest.raises(ModelInputError, match=message):
        explain_record(_trees("rhythm-ecg-trees"), record, lead="II", **options)


def test_a_model_without_attention_refuses_a_token(cnn, ecg):
    with pytest.raises(ModelInputError, match="token 5: token/layer/head select attention, and .* has none"):
        explain_record(cnn, ecg, "ig", fs=100.0, token=5)


def test_the_features_method_names_the_models_it_applies_to(cnn, ecg):
    with pytest.raises(ModelInputError, match=r"features applies only to feature-tree models .*; available for"):
        explain_record(cnn, ecg, "features", fs=100.0)


def test_cli_refuses_start_and_attention_options_of_tree_models(tmp_path, capsys):
    _trees("rhythm-ecg-trees")
    path = tmp_path / "rec.npy"
    np.save(path, simulated_record().signal[0])
    for args, message in (
        (["aami-ecg-trees", "--start", "100000"], "start 100000 s lies outside the signal"),
        (["rhythm-ecg-trees", "--start", "1000"], "reads the whole record"),
        (["rhythm-ecg-trees", "--token", "5", "--layer", "3"], "token/layer/head select attention"),
    ):
        code = main(["explain", args[0], str(path), "--fs", "500", "--out", str(tmp_path / "o"), *args[1:]])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (args, err)


def test_tree_summary_has_the_keys_of_the_neural_summaries(record, tmp_path):
    report = explain_record(_trees("rhythm-ecg-trees"), record, lead="II", out=tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "rhythm-ecg-trees" and summary["methods"] == ["features"]
    assert set(summary["prediction"]) == {"N", "A", "O", "~"}
    assert summary["prediction"] == pytest.approx(report.prediction)
    assert {"features", "start_s", "target", "explained"} <= set(summary)  # the keys it had
    assert summary["leads"] == ["II"]  # the record's lead read (the model calls its lead I)


def test_a_position_on_a_model_with_one_output_per_window_is_refused(cnn, ecg):
    with pytest.raises(ModelInputError, match="position selects a sample of a per-sample output, and .* has none"):
        explain_record(cnn, ecg, "ig", fs=100.0, position=5)


def test_mean_members_say_which_window_they_explain(record, tmp_path):
    _trees("rhythm-ecg-trees")
    reports = explain_mean("rhythm-ecg-mean", record, tmp_path, lead="II", start=3.0)
    cnn, trees = reports
    assert cnn.summary["in_mean"]["explained"] == "the window 3.00-12.00 s"
    assert trees.summary["in_mean"]["explained"] == "the whole record"
    assert trees.summary["start_s"] == 0.0  # the trees read the whole record, in the mean as alone
    for r in reports:
        info = r.summary["in_mean"]
        assert info["prediction_explained"] == r.prediction and set(info["prediction_whole_record"]) == set(
            r.prediction
        )
    index = (tmp_path / "index.html").read_text()
    assert "explains the window 3.00-12.00 s" in index and "explains the whole record" in index
    assert "rhythm-ecg<br>the window 3.00-12.00 s" in index and "rhythm-ecg<br>whole record" in index
    page = (tmp_path / "rhythm-ecg" / "report.html").read_text()
    assert "prediction on the window 3.00-12.00 s (over the whole record, as rhythm-ecg-mean averages it:" in page
    assert "Member of rhythm-ecg-mean" in page
    assert any("prediction on the window 3.00-12.00 s" in line for line in summary_lines(cnn))


def _table_without_p() -> HeadFeatureTable:
    L, H = 2, 2
    share = np.full((L, H, 3), 0.2)
    chance = np.full((L, H, 3), 0.1)
    share[..., 0] = chance[..., 0] = np.nan  # no P wave delineated in any window
    return HeadFeatureTable(["P", "QRS", "T"], share, chance, [0, 1, 1], "m")


def test_a_feature_not_found_is_said_once_everywhere(gpt_lm, ecg, monkeypatch):
    table = _table_without_p()
    assert not table.found("P") and table.found("QRS")
    assert not_found_text("P") == "P waves not found in this window"
    fig = plot_head_features(table)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts] + [ax.get_title() for ax in fig.axes]
    assert "P waves not found in this window" in texts and not any("not found)" in t for t in texts)

    import cardiolens.explain.report as report_module

    monkeypatch.setattr(report_module, "head_feature_shares", lambda maps, masks: table)
    report = explain_record(gpt_lm, ecg, "physiology", fs=100.0)
    lines = summary_lines(report)
    assert "P waves not found in this window" in lines and not any(line.startswith("heads on P:") for line in lines)
    assert any(line.startswith("heads on QRS:") for line in lines)
    assert "P waves not found in this window." in render_html(report)
    # summary.json has chance null: the text is the same when read back
    report.summary["physiology"]["P"]["chance"] = None
    assert "P waves not found in this window" in summary_lines(report)
