"""CinC 2017 rhythm and AF tasks on the real records, HeartGPT's AF head, and the predict/evaluate CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cardiolens.cli import main
from cardiolens.datasets import CinC2017
from cardiolens.models import load_model
from cardiolens.tasks.finetune import FinetuneConfig, finetune
from cardiolens.tasks.metrics import CINC2017_CLASSES
from cardiolens.tasks.suite import load_task_data
from cardiolens.tasks.tasks_rhythm import heartgpt_af_probabilities, rhythm_score

pytestmark = pytest.mark.realdata
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def subset(cinc2017_dir):
    """Eight records of each class."""
    records = CinC2017(cinc2017_dir).records
    return [rid for label in CINC2017_CLASSES for rid in records.loc[records.label == label, "record_id"][:8]]


def test_rhythm_items_are_records_resampled_to_the_backbone_rate(cinc2017_dir, subset, tmp_path):
    data = load_task_data("cinc2017-rhythm", cinc2017_dir, 100.0, records=subset, cache_dir=tmp_path)
    assert len(data) == 32 and data.leads == ["I"] and data.fs == 100.0
    assert np.array_equal(np.bincount(data.targets), [8, 8, 8, 8])
    original = CinC2017(cinc2017_dir).load(subset[0])
    assert abs(data.signals[0].shape[-1] - original.signal.shape[-1] / 3) <= 1
    again = load_task_data("cinc2017-rhythm", cinc2017_dir, 100.0, records=subset, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1  # read back from the cache, not rebuilt
    assert np.array_equal(again.signals[5], data.signals[5])
    af = load_task_data("cinc2017-af", cinc2017_dir, 100.0, records=subset, cache_dir=tmp_path)
    assert af.targets.tolist() == (data.targets == 1).astype(int).tolist()


def test_rhythm_score_is_the_challenge_score_of_the_argmax():
    y = np.array([0, 1, 2, 3, 0, 1])
    probs = np.eye(4)[[0, 1, 2, 3, 0, 0]] * 0.9 + 0.025
    scores = rhythm_score(y, probs)
    # N: 2 right, 1 predicted wrongly as N; A: 1 of 2 found
    assert scores["F1_N"] == pytest.approx(2 * 2 / (2 + 3))
    assert scores["F1_A"] == pytest.approx(2 * 1 / (2 + 1))
    assert scores["score"] == pytest.approx((scores["F1_N"] + scores["F1_A"] + 1.0) / 3)


def test_heartgpt_af_head_separates_af_from_normal_records(cinc2017_dir, subset, heartgpt_dir, tmp_path):
    data = load_task_data("cinc2017-rhythm", cinc2017_dir, 100.0, records=subset, cache_dir=tmp_path)
    keep = np.isin(data.targets, [0, 1])
    model = load_model(heartgpt_dir / "ECGPT_AF_1k_iters.zip")
    probs = heartgpt_af_probabilities(model, [s for s, k in zip(data.signals, keep, strict=True) if k])
    is_af = data.targets[keep] == 1
    assert probs[is_af].min() > 0.8
    assert probs[is_af].mean() > probs[~is_af].mean() + 0.2


def test_finetune_predict_and_evaluate_from_the_command_line(cinc2017_dir, subset, tmp_path, capsys):
    cfg = FinetuneConfig(
        task="cinc2017-rhythm",
        data=str(cinc2017_dir),
        backbone="resnet1d",
        folds=2,
        fold_ids=[0],
        epochs=1,
        batch_size=16,
        out=str(tmp_path / "run"),
        progress=False,
        bootstrap=100,
        min_steps=1,
        cache_dir=str(tmp_path / "cache"),
        load_options={"records": subset},
    )
    results = finetune(cfg)
    assert results["items"] == 16 and 0 <= results["oof"]["score"]["value"] <= 1
    model_dir = tmp_path / "run" / "fold-0" / "model"
    assert main(["predict", str(model_dir), str(cinc2017_dir / f"{subset[9]}.hea"), "--as_json", "true"]) == 0
    (prediction,) = json.loads(capsys.readouterr().out)
    assert set(prediction["probabilities"]) == set(CINC2017_CLASSES)
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    assert prediction["labels"][0] in CINC2017_CLASSES
    assert "resampled from 300 Hz to 100 Hz" in prediction["preprocessing"]
    assert main(["predict", str(model_dir), str(tmp_path / "nothing-here")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", str(model_dir), str(empty)]) == 2
    assert "holds no record" in capsys.readouterr().err
    assert main(["predict", "ecgpt-small", str(cinc2017_dir / f"{subset[0]}.hea")]) == 2
    assert "not a fine-tuned task model" in capsys.readouterr().err
    assert main(["evaluate", str(model_dir), str(cinc2017_dir), "--bootstrap", "100", "--as_json", "true"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["items"] == 16 and "never trained on" in report["scope"]
    assert 0 <= report["scores"]["score"]["value"] <= 1


def test_shipped_rhythm_model_labels_af_and_normal_records_of_its_test_fold(cinc2017_dir):
    from cardiolens.models.pretrained import weights_dir
    from cardiolens.tasks.predict import predict_record

    db = CinC2017(cinc2017_dir)
    labels = db.records.set_index("record_id")["label"]
    test = json.loads((weights_dir() / "rhythm-ecg" / "split.json").read_text())["test"]
    for wanted in ("A", "N"):
        records = [r for r in test if labels[r] == wanted][:10]
        predictions = [predict_record("rhythm-ecg", db.load(r)) for r in records]
        assert sum(p.labels == [wanted] for p in predictions) >= 8
    assert predictions[0].model == "rhythm-ecg"
    assert "resampled from 300 Hz to 100 Hz" in predictions[0].preprocessing


def test_loading_options_and_records_that_do_not_exist(cinc2017_dir, tmp_path):
    from cardiolens.errors import DatasetError

    with pytest.raises(DatasetError, match="takes no loading option foo; its options: records, progress"):
        load_task_data("cinc2017-rhythm", cinc2017_dir, cache_dir=tmp_path, foo=1)
    with pytest.raises(DatasetError, match="no usable items among the records asked for \\(Z9999\\)"):
        load_task_data("cinc2017-rhythm", cinc2017_dir, cache_dir=tmp_path, records=["Z9999"], progress=False)


def test_rhythm_score_of_a_part_with_one_class_leaves_the_aurocs_undefined_instead_of_failing():
    # a low label fraction can leave a validation part with normal rhythms only
    from cardiolens.tasks.tasks_rhythm import rhythm_score

    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1], [0.2, 0.5, 0.2, 0.1]])
    out = rhythm_score(np.zeros(3, dtype=int), probs)
    assert np.isnan(out["macro_auroc"]) and all(np.isnan(out[f"AUROC_{c}"]) for c in "NAO~")
    assert out["F1_N"] == pytest.approx(0.8)  # 2 of 3 called N: F1 = 2 * 2 / (2 * 2 + 1)
