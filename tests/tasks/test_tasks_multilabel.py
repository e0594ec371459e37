"""12-lead multi-label tasks (PTB-XL label sets, CinC 2021 SNOMED-CT): lead order, class filtering and
scores worked out by hand, the real subsets, and whole fine-tuning runs on them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cardiolens.datasets import PTBXL
from cardiolens.errors import CardiolensError, DatasetError
from cardiolens.models import load_model
from cardiolens.tasks.finetune import FinetuneConfig, finetune
from cardiolens.tasks.suite import get_task, list_tasks, load_task_data
from cardiolens.tasks.tasks_multilabel import (
    load_ptbxl,
    multilabel_report,
    multilabel_score,
    ptbxl_class_filter,
    ptbxl_task,
    rarest_label,
    standard_lead_order,
)

torch.set_num_threads(1)
STANDARD = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]


# -- pure functions -------------------------------------------------------------------------------
def test_standard_lead_order_reorders_and_ignores_case():
    ptbxl = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert standard_lead_order(ptbxl, "x.hea") == list(range(12))
    shuffled = STANDARD[6:] + STANDARD[:6]
    order = standard_lead_order(shuffled, "x.hea")
    assert [shuffled[i] for i in order] == STANDARD
    with pytest.raises(DatasetError, match="x.hea: not a 12-lead ECG: lacks V5, V6"):
        standard_lead_order(STANDARD[:10], "x.hea")


def test_rarest_label_is_each_records_least_common_class():
    y = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1], [0, 0, 0], [0, 1, 0]])  # counts 3, 2, 1
    assert rarest_label(y, ["a", "b", "c"]).tolist() == ["b", "a", "c", "none", "b"]


def test_ptbxl_class_filter_keeps_what_the_recommended_split_can_train_and_score():
    folds = np.array([1, 2, 3, 4, 5, 6, 9, 10])
    y = np.array(
        [  # class a: 5 train, 1 val, 1 test; b: 6 train, no val; c: 4 train
            [1, 1, 1],
            [1, 1, 1],
            [1, 1, 1],
            [1, 1, 1],
            [1, 1, 0],
            [0, 1, 0],
            [1, 0, 1],
            [1, 1, 1],
        ]
    )
    keep, dropped = ptbxl_class_filter(y, folds, ["a", "b", "c"])
    assert keep.tolist() == [True, False, False]
    assert dropped == {"b": {"train": 6, "val": 0, "test": 1}, "c": {"train": 4, "val": 1, "test": 1}}
    keep, _ = ptbxl_class_filter(y, folds, ["a", "b", "c"], min_train_positives=4, min_eval_positives=0)
    assert keep.tolist() == [True, True, True]


def test_multilabel_score_by_hand():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[0.9, 0.2], [0.1, 0.8], [0.3, 0.6], [0.4, 0.7]])
    s = multilabel_score(y, p)
    # class 0: positives 0.9, 0.3 vs negatives 0.1, 0.4 -> 3 of 4 pairs ordered; class 1: 0.8, 0.6 vs 0.2, 0.7 -> 3/4
    assert s["macro_auroc"] == pytest.approx(0.75)
    # micro: positives .9 .3 .8 .6 against negatives .1 .4 .2 .7 -> 4 + 2 + 4 + 3 = 13 of 16 pairs
    assert s["micro_auroc"] == pytest.approx(13 / 16)
    # at 0.5: class 0 predicts rows 0 (TP) -> F1 2/3; class 1 predicts 1, 2 (TP) and 3 (FP) -> F1 0.8
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert multilabel_score(y, p, thresholds=[0.25, 0.75])["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert 0 < s["macro_auprc"] <= 1 and 0 < s["fmax"] <= 1
    # undefined scores are NaN, not an exception (a validation split may hold no positive)
    empty = multilabel_score(np.zeros((3, 2)), np.full((3, 2), 0.5))
    assert np.isnan(empty["macro_auroc"]) and np.isnan(empty["macro_auprc"])
    report = multilabel_report(y, p, ["a", "b"])
    assert report["per_class"]["a"] == {"positives": 2, "auroc": 0.75, "f1": pytest.approx(2 / 3), "threshold": 0.5}
    json.dumps(report)


def test_every_ptbxl_label_set_is_a_task_and_unknown_ones_are_named():
    assert {f"ptbxl-{s}" for s in ("all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm")} <= set(
        list_tasks()
    )
    assert ptbxl_task("rhythm").kind == "multilabel" and ptbxl_task("rhythm").classes is None
    with pytest.raises(CardiolensError, match="label sets: all, diagnostic, subdiagnostic, superdiagnostic, form"):
        ptbxl_task("superdiag")
    with pytest.raises(CardiolensError, match="tasks: .*ptbxl-superdiagnostic"):
        get_task("ptbxl-superdiag")
    with pytest.raises(DatasetError, match="unknown PTB-XL label set 'rythm'"):
        load_ptbxl(".", 100.0, label_set="rythm")


# -- real subsets ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def task_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("task-cache")


@pytest.fixture(scope="module")
def ptbxl_super(ptbxl_dir, task_cache):
    return load_task_data("ptbxl-superdiagnostic", ptbxl_dir, 100.0, cache_dir=task_cache, progress=False)


@pytest.mark.realdata
def test_ptbxl_subset_loads_12_leads_labels_and_the_recommended_split(ptbxl_super, ptbxl_dir):
    data = ptbxl_super
    db = PTBXL(ptbxl_dir, fs=100, missing="drop")
    assert data.leads == STANDARD and all(x.shape == (12, 1000) for x in data.signals)
    assert data.info["classes"] == ["CD", "HYP", "MI", "NORM", "STTC"] and data.targets.shape == (len(data), 5)
    matrix = db.labels("superdiagnostic")
    assert len(data) == len(matrix) and np.array_equal(data.targets, matrix.to_frame().loc[data.item_ids].to_numpy())
    record = db.load(data.item_ids[0])
    assert np.allclose(data.signals[0][3], record.signal[record.leads.index("AVR")])  # aVR, read as PTB-XL spells it
    folds = db.records.set_index("record_id").loc[data.item_ids, "fold"].to_numpy()
    split = np.array([data.info["split"][i] for i in data.item_ids])
    assert (
        set(split[folds <= 8]) == {"train"}
        and set(split[folds == 9]) == {"val"}
        and set(split[folds == 10]) == {"test"}
    )
    assert data.groups.tolist() == db.records.set_index("record_id").loc[data.item_ids, "patient_id"].tolist()


@pytest.mark.realdata
def test_ptbxl_rare_classes_of_the_subset_are_dropped_and_listed(ptbxl_dir, task_cache):
    data = load_task_data("ptbxl-subdiagnostic", ptbxl_dir, 100.0, cache_dir=task_cache, progress=False)
    kept, dropped = data.info["classes"], data.info["dropped_classes"]
    assert "NORM" in kept and "WPW" in dropped and not set(kept) & set(dropped)
    assert dropped["WPW"] == {"train": 0, "val": 1, "test": 0}
    assert np.asarray(data.targets).sum(axis=1).min() >= 1  # records left without a class are dropped


@pytest.mark.realdata
def test_cinc2021_samples_load_with_classes_from_the_data(cinc2021_dir, task_cache):
    data = load_task_data("cinc2021-dx", cinc2021_dir, 100.0, cache_dir=task_cache, progress=False)
    assert len(data) == 50 and data.leads == STANDARD and data.signals[0].shape == (12, 1000)
    counts = np.asarray(data.targets).sum(axis=0)
    assert (counts >= 5).all() and len(data.info["classes"]) == data.targets.shape[1]
    assert all(0 < n < 5 for n in data.info["dropped_classes"].values())
    assert data.info["descriptions"]["427084000"] == "STach"
    assert len(set(data.groups)) == 50  # no patient ids: each record its own


def _quick(task, data, out, cache, **overrides):
    settings = dict(
        task=task,
        data=str(data),
        backbone="resnet1d",
        folds=2,
        val_fraction=0.25,
        epochs=1,
        min_steps=0,  # one epoch, however few the items
        batch_size=32,
        out=str(out),
        progress=False,
        bootstrap=20,  # the intervals are not what these tests check
        cache_dir=str(cache),
    )
    return FinetuneConfig(**{**settings, **overrides})


@pytest.mark.realdata
def test_ptbxl_finetune_runs_end_to_end(ptbxl_super, ptbxl_dir, task_cache, tmp_path):
    results = finetune(_quick("ptbxl-superdiagnostic", ptbxl_dir, tmp_path / "run", task_cache, max_items=100))
    for key in ("macro_auroc", "micro_auroc", "macro_auprc", "fmax", "macro_f1"):
        assert 0 <= results["oof"][key]["value"] <= 1
    fold = results["folds"]["0"]
    model = load_model(tmp_path / "run" / "fold-0" / "model")
    assert model.config.classes == ["CD", "HYP", "MI", "NORM", "STTC"] and len(model.config.leads) == 12
    assert model.config.thresholds is not None and len(model.config.thresholds) == 5
    assert 0 <= fold["test"]["macro_f1"] <= 1 and (tmp_path / "run" / "results.json").is_file()


@pytest.mark.realdata
def test_ptbxl_runs_the_recommended_split_as_one_fold(ptbxl_super, ptbxl_dir, task_cache, tmp_path):
    results = finetune(_quick("ptbxl-superdiagnostic", ptbxl_dir, tmp_path / "run", task_cache, max_items=100))
    assert list(results["folds"]) == ["0"] and results["split"] == "fixed"
    split = json.loads((tmp_path / "run" / "folds.json").read_text())
    test = sorted(i for i, s in split.items() if s == "test")
    assert test and all(ptbxl_super.info["split"][i] == "test" for i in test)
    fold = results["folds"]["0"]
    assert fold["n_test"] == len(test) == results["items"]
    assert fold["n_val"] == sum(s == "val" for s in split.values())


@pytest.mark.realdata
@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")  # 50 records, rare classes
def test_cinc2021_finetune_runs_end_to_end(cinc2021_dir, task_cache, tmp_path):
    results = finetune(_quick("cinc2021-dx", cinc2021_dir, tmp_path / "run", task_cache))
    assert set(results["folds"]) == {"0", "1"} and results["items"] == 50
    assert 0 <= results["oof"]["macro_auroc"]["value"] <= 1
    with np.load(tmp_path / "run" / "oof.npz") as z:
        assert z["probs"].shape == z["targets"].shape == (50, 8)


def test_an_unknown_ptbxl_loading_option_is_named_with_those_it_takes(ptbxl_dir):
    with pytest.raises(DatasetError, match="takes no loading option lead; its options: min_train_positives, min_eval"):
        load_task_data(get_task("ptbxl-superdiagnostic"), ptbxl_dir, 100.0, lead="II")
