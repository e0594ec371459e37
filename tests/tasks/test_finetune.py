"""Fine-tuning core: the task model's input contract, freezing policies, splits, windowed prediction,
and a whole cross-validated run on a simulated task the test registers itself."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from cardiolens.errors import CardiolensError, ModelInputError, RecordError
from cardiolens.models import create_model, load_model, save_checkpoint
from cardiolens.models.taskmodel import TaskModel, build_task_model, tokenize_torch
from cardiolens.signal.record import Record
from cardiolens.signal.tokenize import tokenize
from cardiolens.tasks.finetune import (
    FinetuneConfig,
    apply_policy,
    assign_folds,
    backbone_is_fresh,
    choose_thresholds,
    command_line,
    finetune,
    fraction_of_patients,
    predict_items,
    resolve_backbone,
    training_batches,
    weights_digest,
    window_features,
    window_starts,
)
from cardiolens.tasks.predict import evaluate, predict_record
from cardiolens.tasks.suite import Task, TaskData, get_task, list_tasks, register_task
from cardiolens.tasks.tasks_rhythm import binary_score

torch.set_num_threads(1)


def tiny_gpt(**overrides):
    return create_model("gpt", n_layer=2, n_head=2, n_embd=16, block_size=64, dropout=0.0, fs=100.0, **overrides)


def tiny_cnn(**overrides):
    return create_model("resnet1d", widths=(8, 16), blocks=(1, 1), strides=(1, 2), dilations=(1, 1), **overrides)


def sines_config(tmp_path: Path, **changes) -> FinetuneConfig:
    """A quick one-fold run of the simulated ``test-sines`` task, its data folder and cache in ``tmp_path/data``."""
    root = tmp_path / "data"
    root.mkdir(exist_ok=True)
    settings = {
        "task": "test-sines",
        "data": str(root),
        "backbone": "resnet1d",
        "fold_ids": [0],
        "out": str(tmp_path / "run"),
        "progress": False,
        "bootstrap": 50,
        "min_steps": 8,
        "cache_dir": str(root / "cache"),
    }
    return FinetuneConfig(**{**settings, **changes})


# -- input contract ---------------------------------------------------------------------------------
def test_torch_tokeniser_matches_numpy_tokeniser_exactly():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 200)).astype(np.float32)
    x[1] = np.round(x[1] * 4) / 4  # values landing on rounding ties
    expected, _ = tokenize(x.astype(np.float64))
    got = tokenize_torch(torch.as_tensor(x), 101).numpy()
    assert np.array_equal(got, expected)


def test_token_backbone_reads_each_lead_as_its_own_sequence():
    model = build_task_model(
        tiny_gpt(),
        task="t",
        kind="multiclass",
        classes=["a", "b", "c"],
        fs=100,
        leads=["I", "II"],
        window=64,
        backbone_name="gpt",
    ).eval()
    x = torch.randn(3, 2, 64)
    assert model(x).shape == (3, 3)
    assert model.forward_features(x).shape == (3, 64, 32)  # two leads of 16 features
    swapped = x.flip(1)  # the head sees lead identity: swapping leads changes the output
    assert not torch.allclose(model(x), model(swapped))


def test_per_sample_outputs_have_the_input_length_even_after_striding():
    model = build_task_model(
        tiny_cnn(), task="t", kind="per-sample", classes=["beat"], fs=100, leads=["I"], window=100, backbone_name="cnn"
    ).eval()
    assert model(torch.randn(2, 1, 100)).shape == (2, 100, 1)


def test_task_model_rejects_input_that_breaks_its_contract():
    model = build_task_model(
        tiny_gpt(), task="t", kind="binary", classes=["AF"], fs=100, leads=["I"], window=64, backbone_name="gpt"
    )
    with pytest.raises(ModelInputError, match="expects 1 leads"):
        model(torch.randn(1, 2, 64))
    with pytest.raises(ModelInputError, match="exceed the backbone context"):
        model(torch.randn(1, 1, 65))
    with pytest.raises(ModelInputError, match="float windows"):
        model(torch.zeros(1, 1, 64, dtype=torch.long))
    with pytest.raises(ModelInputError, match="exceeds the context"):
        build_task_model(
            tiny_gpt(), task="t", kind="binary", classes=["AF"], fs=100, leads=["I"], window=65, backbone_name="gpt"
        )


# -- freezing policies ------------------------------------------------------------------------------
def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_freezing_policies_train_the_parts_they_name():
    model = build_task_model(
        tiny_gpt(), task="t", kind="binary", classes=["AF"], fs=100, leads=["I"], window=64, backbone_name="gpt"
    )
    apply_policy(model, "linear", 1e-3)
    assert _trainable(model) == {"head.weight", "head.bias"}
    apply_policy(model, "last-block", 1e-3)
    trainable = _trainable(model)
    assert {"head.weight", "backbone.ln_f.weight", "backbone.blocks.1.mlp.fc.weight"} <= trainable
    assert not any(n.startswith(("backbone.blocks.0.", "backbone.wte", "backbone.wpe")) for n in trainable)
    groups = apply_policy(model, "llrd", 1e-3, decay=0.5)
    assert len(_trainable(model)) == len(list(model.parameters()))
    rates = [g["lr"] for g in groups]
    assert rates == sorted(rates) and rates[-1] == pytest.approx(1e-3) and rates[0] == pytest.approx(1e-3 * 0.5**4)


# -- splits -----------------------------------------------------------------------------------------
def _data(n=40, patients=20, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    t = np.arange(300) / 100
    signals = [
        (np.sin(2 * np.pi * (1.0 + 2.0 * label) * t + rng.uniform(0, 6)) + 0.1 * rng.normal(size=300))[None].astype(
            np.float32
        )
        for label in y
    ]
    groups = np.array([f"p{i % patients}" for i in range(n)])
    return TaskData(signals, y, np.array([f"r{i}" for i in range(n)]), groups, y.astype(str), 100.0, ["I"])


def test_folds_never_split_a_patient_and_label_fractions_take_whole_patients():
    data = _data()
    folds = assign_folds(data, 4, seed=0)
    for patient in np.unique(data.groups):
        assert len(set(folds[data.groups == patient])) == 1
    picked = fraction_of_patients(data.groups, 0.25, seed=3)
    chosen = set(data.groups[picked])
    assert len(chosen) == 5 and all(set(np.flatnonzero(data.groups == p)) <= set(picked) for p in chosen)
    assert np.array_equal(picked, fraction_of_patients(data.groups, 0.25, seed=3))
    assert len(set(data.groups[fraction_of_patients(data.groups, 0.01, seed=0)])) == 1


def test_label_fractions_are_nested_and_keep_a_rare_class_in_proportion():
    rng = np.random.default_rng(0)
    groups = np.array([f"p{i}" for i in range(1000)])
    labels = np.where(rng.random(1000) < 0.08, "A", "N")  # 8 % of the patients have the rare class
    patients_of = {}
    for fraction in (0.01, 0.1, 0.25, 0.5):
        picked = fraction_of_patients(groups, fraction, seed=5, strata=labels)
        patients_of[fraction] = set(groups[picked])
        share = np.mean(labels[picked] == "A")
        assert abs(share - np.mean(labels == "A")) <= 1 / len(picked) + 1e-9  # in proportion at every size
    # a smaller fraction's patients are among every larger one's, with and without strata
    assert patients_of[0.01] <= patients_of[0.1] <= patients_of[0.25] <= patients_of[0.5]
    small, large = (set(groups[fraction_of_patients(groups, f, seed=5)]) for f in (0.1, 0.25))
    assert small <= large and len(small) == 100
    assert set(groups[fraction_of_patients(groups, 0.1, seed=6)]) != small  # the seed draws another order


def test_thresholds_are_chosen_to_maximise_f1_on_validation():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.8, 0.9])
    (t,) = choose_thresholds("binary", y, p)
    assert 0.3 < t <= 0.35
    assert choose_thresholds("multiclass", y, p) is None


# -- augmentation -----------------------------------------------------------------------------------
def _beat_items(n: int = 6, length: int = 1000) -> TaskData:
    rng = np.random.default_rng(1)
    signals = [rng.standard_normal((1, length)).astype(np.float32) for _ in range(n)]
    targets = [(np.abs(x) > 2).astype(np.float32) for x in signals]  # per-sample labels tied to the signal
    return TaskData(signals, targets, np.array([f"r{i}" for i in range(n)]), np.arange(n), None, 100.0, ["ECG"])


def test_noise_augmentation_changes_windows_but_not_their_labels_or_the_unaugmented_draw():
    data = _beat_items()
    plain = training_batches(data, 400, 3, seed=0, epoch=0)
    again = training_batches(data, 400, 3, seed=0, epoch=0, augment="none")
    noisy = training_batches(data, 400, 3, seed=0, epoch=0, augment="noise")
    for (i0, x0, y0, _), (_, x1, _, _), (i2, x2, y2, _) in zip(plain, again, noisy, strict=True):
        np.testing.assert_array_equal(x0, x1)  # "none" draws nothing: old runs reproduce
        np.testing.assert_array_equal(i0, i2)  # same items, same crops, same targets
        np.testing.assert_array_equal(y0, y2)
        assert x2.dtype == np.float32 and x2.shape == x0.shape
    changed = np.concatenate([np.abs(b[1] - a[1]).max(axis=(1, 2)) for a, b in zip(plain, noisy, strict=True)])
    assert (changed > 1e-3).any()  # some windows got noise or wander
    # noise stays well below the signal: the added part's spread is at most ~0.5 of the window's
    added = np.concatenate([(b[1] - a[1]).std(axis=-1).ravel() for a, b in zip(plain, noisy, strict=True)])
    assert added.max() < 0.6
    with pytest.raises(CardiolensError, match="augmentations: none, noise"):
        FinetuneConfig(task="cinc2017-rhythm", data="x", augment="mixup")


# -- windowed prediction ----------------------------------------------------------------------------
def test_window_starts_cover_the_whole_record():
    assert window_starts(50, 64, 64) == [0]
    assert window_starts(200, 64, 64) == [0, 64, 128, 136]
    assert window_starts(128, 64, 32) == [0, 32, 64]


def test_record_probabilities_are_the_mean_of_window_probabilities():
    torch.manual_seed(0)
    model = build_task_model(
        tiny_cnn(),
        task="t",
        kind="multiclass",
        classes=["a", "b"],
        fs=100,
        leads=["I"],
        window=64,
        backbone_name="cnn",
    ).eval()
    x = np.random.default_rng(1).normal(size=(1, 200)).astype(np.float32)
    got = predict_items(model, [x])[0]
    windows = torch.as_tensor(np.stack([x[:, s : s + 64] for s in (0, 64, 128, 136)]))
    expected = model(windows).softmax(-1).mean(0).detach().numpy()
    assert np.allclose(got, expected, atol=1e-6)
    short = predict_items(model, [x[:, :40]])[0]  # shorter than a window: read at its own length
    assert np.allclose(short, model(torch.as_tensor(x[None, :, :40])).softmax(-1)[0].detach().numpy(), atol=1e-6)


# -- a whole run ------------------------------------------------------------------------------------
def _load_sines(root: Path, fs: float, **options) -> TaskData:
    return _data(n=48, patients=24, seed=int(options.get("seed", 0)))


SINES = register_task(
    Task(
        name="test-sines",
        kind="binary",
        description="fast or slow sine (a test task)",
        modality="ECG",
        fs=100.0,
        window_seconds=0.64,
        min_seconds=0.5,
        classes=("fast",),
        load=_load_sines,
        score=binary_score,
        score_key="auroc",
        folds=3,
        protocol="grouped 3-fold CV on simulated sines",
    )
)


def test_unknown_task_names_the_known_ones():
    assert "cinc2017-rhythm" in list_tasks() and "test-sines" in list_tasks()
    with pytest.raises(CardiolensError, match="tasks: .*cinc2017-rhythm"):
        get_task("cinc2017-rythm")


@pytest.fixture(scope="module")
def sines_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sines-data")
    out = tmp_path_factory.mktemp("run") / "cnn"
    cfg = FinetuneConfig(
        task="test-sines",
        data=str(root),
        backbone="resnet1d",
        folds=3,
        epochs=6,
        patience=6,
        batch_size=8,
        lr=3e-3,
        out=str(out),
        progress=False,
        bootstrap=100,
        min_steps=24,
        cache_dir=str(root / "cache"),
    )
    return cfg, finetune(cfg)


def test_finetune_learns_a_separable_task_and_writes_its_run(sines_run):
    cfg, results = sines_run
    out = Path(cfg.out)
    assert results["oof"]["auroc"]["value"] > 0.9
    assert results["items"] == 48 and set(results["folds"]) == {"0", "1", "2"}
    assert results["backbone_weights"] == "fresh"  # a preset that ships no weights
    for fold in range(3):
        assert (out / f"fold-{fold}" / "model" / "MODEL_CARD.md").is_file()
        assert (out / f"fold-{fold}" / "last.pt").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert saved["oof"]["auroc"]["value"] == pytest.approx(results["oof"]["auroc"]["value"])
    assert "cardiolens finetune test-sines" in saved["command"]


def test_a_rerun_resumes_instead_of_retraining(sines_run):
    cfg, results = sines_run
    stamp = (Path(cfg.out) / "fold-0" / "model" / "model.safetensors").stat().st_mtime_ns
    again = finetune(cfg)
    assert (Path(cfg.out) / "fold-0" / "model" / "model.safetensors").stat().st_mtime_ns == stamp
    assert again["oof"]["auroc"]["value"] == pytest.approx(results["oof"]["auroc"]["value"])
    changed = FinetuneConfig(**{**cfg.__dict__, "lr": 0.1})
    with pytest.raises(CardiolensError, match="other settings \\(lr: 0.003 -> 0.1\\)"):
        finetune(changed)


def test_fold_checkpoint_reloads_with_the_same_predictions_and_its_test_split(sines_run):
    cfg, _ = sines_run
    folder = Path(cfg.out) / "fold-1" / "model"
    model = load_model(folder)
    assert isinstance(model, TaskModel) and model.config.thresholds is not None
    split = json.loads((folder / "split.json").read_text())
    assert split["fold"] == 1 and not set(split["test"]) & set(split["train"])
    data = _load_sines(Path("."), 100.0)
    x = data.signals[0]
    again = load_model(folder)
    assert np.allclose(predict_items(model, [x]), predict_items(again, [x]))
    result = evaluate(folder, cfg.data, n_resamples=100)
    assert result["items"] == len(split["test"]) and "never trained on" in result["scope"]
    assert 0 <= result["scores"]["auroc"]["value"] <= 1


def test_linear_probe_on_cached_features_equals_the_model_it_saves(tmp_path):
    root = tmp_path / "data"
    torch.manual_seed(0)
    cfg = sines_config(
        tmp_path, policy="linear", folds=2, epochs=3, out=str(tmp_path / "probe"), bootstrap=100, min_steps=24
    )
    finetune(cfg)
    model = load_model(tmp_path / "probe" / "fold-0" / "model")
    data = _load_sines(root, 100.0)
    feats = window_features(model, data.signals[:4])
    with torch.no_grad():
        from_features = np.stack(
            [model.probabilities(model.forward_head(torch.as_tensor(f))).mean(0).numpy() for f in feats]
        )
    assert np.allclose(from_features, predict_items(model, data.signals[:4]), atol=1e-5)
    (cache_file,) = (root / "cache").glob("features-test-sines-resnet1d-*.npz")  # shared by runs of this backbone
    cached = np.load(cache_file)
    assert cached["counts"].sum() == sum(len(f) for f in window_features(model, data.signals))
    # the other fold in a second call: the summary covers both folds, the first one read back
    first = json.loads((tmp_path / "probe" / "results.json").read_text())
    both = finetune(FinetuneConfig(**{**cfg.__dict__, "fold_ids": [1]}))
    assert set(both["folds"]) == {"0", "1"} and both["items"] == len(data) > first["items"]


def test_retrained_weights_under_the_same_name_neither_reuse_cached_features_nor_resume_a_run(tmp_path):
    # a shipped model retrained keeps its name: features and folds of the old weights must not be reused
    root, backbone = tmp_path / "data", tmp_path / "backbone"
    root.mkdir()
    torch.manual_seed(0)
    save_checkpoint(create_model("resnet1d"), backbone)
    cfg = dict(task="test-sines", data=str(root), backbone=str(backbone), policy="linear", folds=2, fold_ids=[0])
    cfg.update(epochs=1, progress=False, bootstrap=20, min_steps=4, cache_dir=str(root / "cache"))
    first = finetune(FinetuneConfig(**cfg, out=str(tmp_path / "old")))
    assert first["backbone_weights"] == weights_digest(load_model(backbone))
    finetune(FinetuneConfig(**cfg, out=str(tmp_path / "old-again")))
    assert len(list((root / "cache").glob("features-test-sines-backbone-*.npz"))) == 1  # same weights: shared
    torch.manual_seed(1)
    save_checkpoint(create_model("resnet1d"), backbone, overwrite=True)
    finetune(FinetuneConfig(**cfg, out=str(tmp_path / "new")))
    old_file, new_file = sorted(
        (root / "cache").glob("features-test-sines-backbone-*.npz"), key=lambda p: p.stat().st_mtime
    )
    assert not np.allclose(np.load(old_file)["features"], np.load(new_file)["features"])
    with pytest.raises(CardiolensError, match="other settings \\(backbone_sha256: '"):
        finetune(FinetuneConfig(**cfg, out=str(tmp_path / "old")))


def test_a_shipped_name_that_is_also_a_preset_means_its_trained_weights():
    # ecgpt-small is a registry preset and a shipped model: fine-tuning it must start from the shipped weights
    shipped = load_model("ecgpt-small")
    assert weights_digest(resolve_backbone("ecgpt-small")) == weights_digest(shipped)
    assert weights_digest(resolve_backbone("ecgpt-small", from_scratch=True)) != weights_digest(shipped)
    assert not backbone_is_fresh("ecgpt-small") and backbone_is_fresh("ecgpt-small", from_scratch=True)
    assert backbone_is_fresh("resnet1d") and backbone_is_fresh("heartgpt-ecg")  # presets that ship no weights


def test_weights_digest_follows_the_values_not_the_object():
    torch.manual_seed(0)
    model = create_model("resnet1d")
    same = copy.deepcopy(model)
    assert weights_digest(model) == weights_digest(same)
    with torch.no_grad():
        next(same.parameters()).view(-1)[0] += 1e-3
    assert weights_digest(model) != weights_digest(same)


def _load_sines_with_split(root: Path, fs: float, **options) -> TaskData:
    data = _load_sines(root, fs, **options)
    # patients p0-p15 train, p16-p19 validation, p20-p23 test, as a published split names them
    role = {f"p{k}": "train" if k < 16 else "val" if k < 20 else "test" for k in range(24)}
    if options.get("no_val"):
        role = {p: "train" if r == "val" else r for p, r in role.items()}
    data.info["split"] = {i: role[g] for i, g in zip(data.item_ids, data.groups, strict=True)}
    return data


register_task(dataclasses.replace(SINES, name="test-sines-split", load=_load_sines_with_split))


def test_a_published_split_runs_as_one_fold_and_cv_can_be_asked_for(tmp_path):
    base = dict(task="test-sines-split", data=str(tmp_path), backbone="resnet1d", folds=3, epochs=1, min_steps=4)
    base.update(batch_size=8, progress=False, bootstrap=20, cache_dir=str(tmp_path / "cache"))
    results = finetune(FinetuneConfig(**base, out=str(tmp_path / "fixed")))
    assert results["split"] == "fixed" and list(results["folds"]) == ["0"]
    roles = json.loads((tmp_path / "fixed" / "folds.json").read_text())
    data = _load_sines_with_split(tmp_path, 100.0)
    assert roles == data.info["split"]  # its own validation items, untouched
    assert results["items"] == results["folds"]["0"]["n_test"] == 8  # only the test items are scored
    split = json.loads((tmp_path / "fixed" / "fold-0" / "model" / "split.json").read_text())
    assert {data.groups[list(data.item_ids).index(i)] for i in split["test"]} == {f"p{k}" for k in range(20, 24)}
    assert (
        "published train / validation / test split"
        in (tmp_path / "fixed" / "fold-0" / "model" / "MODEL_CARD.md").read_text()
    )

    # no validation items in the split: validation is carved from its training patients
    carved = finetune(FinetuneConfig(**base, out=str(tmp_path / "carved"), load_options={"no_val": True}))
    roles = json.loads((tmp_path / "carved" / "folds.json").read_text())
    val_patients = {data.groups[list(data.item_ids).index(i)] for i, r in roles.items() if r == "val"}
    assert val_patients and all(int(p[1:]) < 20 for p in val_patients) and carved["folds"]["0"]["n_test"] == 8

    cv = finetune(FinetuneConfig(**base, split="cv", out=str(tmp_path / "cv")))
    assert cv["split"] == "cross-validation" and set(cv["folds"]) == {"0", "1", "2"} and cv["items"] == 48
    with pytest.raises(CardiolensError, match="names none"):
        finetune(FinetuneConfig(**{**base, "task": "test-sines"}, split="fixed", out=str(tmp_path / "none")))
    with pytest.raises(CardiolensError, match="one fold"):
        finetune(FinetuneConfig(**base, fold_ids=[1], out=str(tmp_path / "bad-fold")))
    with pytest.raises(CardiolensError, match="unknown split"):
        FinetuneConfig(**base, split="holdout")


def test_the_command_in_a_model_card_is_one_the_cli_accepts(capsys):
    from cardiolens.cli import main

    cfg = FinetuneConfig(
        task="mitbih-aami",
        data="/data/mit bih",
        crops_per_item=3,
        min_steps=5,
        split="fixed",
        fold_ids=[0],
        load_options={"train_records": "DS1", "test_records": "DS2"},
    )
    argv = shlex.split(command_line(cfg))
    assert argv[:2] == ["cardiolens", "finetune"]
    with pytest.raises(SystemExit) as done:
        main([*argv[1:], "--print_config"])  # parse only: prints the settings it would run
    assert done.value.code in (0, None)
    printed = capsys.readouterr().out
    for text in ("data: /data/mit bih", "crops_per_item: 3", "min_steps: 5", "split: fixed", "train_records: DS1"):
        assert text in printed


# -- prediction on records --------------------------------------------------------------------------
def test_predict_record_states_its_preprocessing_and_refuses_bad_records(sines_run):
    cfg, _ = sines_run
    model = load_model(Path(cfg.out) / "fold-0" / "model")
    t = np.arange(600) / 200
    record = Record(np.sin(2 * np.pi * 3 * t)[None].astype(np.float32), 200.0, ["II"])
    p = predict_record(model, record)
    assert p.task == "test-sines" and set(p.probabilities) == {"fast"}
    assert any("resampled from 200 Hz to 100 Hz" in s for s in p.preprocessing)
    assert any("'II' used as the model's lead 'I'" in s for s in p.preprocessing)
    with pytest.raises(RecordError, match="shorter than"):
        predict_record(model, Record(record.signal[:, :40], 200.0, ["II"]))
    with pytest.raises(ModelInputError, match="not a fine-tuned task model"):
        predict_record(tiny_gpt(), record)
    with pytest.raises(ModelInputError, match="has a classifier head but no task attached"):  # as HeartGPT's AF head
        predict_record(tiny_gpt(head="classifier"), record)
    twelve = build_task_model(
        tiny_cnn(),
        task="test-sines",
        kind="binary",
        classes=["fast"],
        fs=100,
        leads=["I", "V1"],
        window=64,
        backbone_name="cnn",
    )
    with pytest.raises(RecordError, match="lacks V1"):
        predict_record(twelve, Record(np.stack([record.signal[0], record.signal[0]]), 200.0, ["I", "II"]))
    # an ECG model never reads a PPG lead: it picks the ECG lead, and refuses a PPG-only record or a PPG lead
    both = Record(np.stack([record.signal[0] * 0.5, record.signal[0]]), 200.0, ["PLETH", "II"])
    assert any("'II' used as the model's lead 'I'" in s for s in predict_record(model, both).preprocessing)
    with pytest.raises(RecordError, match="reads ECG and lead 'PLETH' is PPG; the record has no ECG lead"):
        predict_record(model, Record(record.signal, 200.0, ["PLETH"]))
    with pytest.raises(RecordError, match="reads ECG and lead 'PLETH' is PPG$"):
        predict_record(model, both, lead="PLETH")


def test_predict_record_with_a_beat_model_refuses_a_ppg_only_record():
    t = np.arange(3000) / 100
    ppg = Record(np.sin(2 * np.pi * 1.2 * t)[None].astype(np.float32), 100.0, ["PLETH"])
    with pytest.raises(RecordError, match="beats-ecg reads ECG and lead 'PLETH' is PPG"):
        predict_record("beats-ecg", ppg)


def test_the_protocol_says_how_many_folds_the_run_used():
    from cardiolens.tasks.finetune import run_protocol
    from cardiolens.tasks.suite import get_task

    rhythm = get_task("cinc2017-rhythm")
    assert run_protocol(rhythm, 5) == rhythm.protocol
    assert run_protocol(rhythm, 3) == rhythm.protocol + "; this run: 3 folds"
    aami = get_task("mitbih-aami")  # its protocol names no fold count
    assert run_protocol(aami, 3) == aami.protocol


def _one_fold_of_sines(root: Path, out: Path, **settings) -> FinetuneConfig:
    """Fold 0 of 2 of the simulated sine task, a CNN with small batches: a run of seconds."""
    root.mkdir(exist_ok=True)
    return FinetuneConfig(
        task="test-sines",
        data=str(root),
        backbone="resnet1d",
        folds=2,
        fold_ids=[0],
        batch_size=8,
        out=str(out),
        progress=False,
        bootstrap=10,
        min_steps=1,
        **settings,
    )


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    import cardiolens.tasks.finetune as finetune_module

    def run(out: Path) -> dict:
        return finetune(_one_fold_of_sines(tmp_path / "data", out, epochs=3, patience=3, lr=3e-3))

    run(tmp_path / "whole")
    real_predict, calls = finetune_module.predict_items, []

    def interrupt_at_the_second_validation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # after epoch 1's checkpoint, during epoch 2
        return real_predict(*args, **kwargs)

    monkeypatch.setattr(finetune_module, "predict_items", interrupt_at_the_second_validation)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut")
    monkeypatch.setattr(finetune_module, "predict_items", real_predict)
    assert torch.load(tmp_path / "cut" / "fold-0" / "last.pt", weights_only=True)["state"]["epoch"] == 1
    run(tmp_path / "cut")  # resumes after epoch 1
    whole = torch.load(tmp_path / "whole" / "fold-0" / "last.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "fold-0" / "last.pt", weights_only=True)
    assert whole["state"]["history"] == cut["state"]["history"]
    for name, value in whole["model"].items():
        assert torch.equal(value, cut["model"][name]), name  # dropout masks and batches continued as before


def test_train_seed_changes_the_weights_and_keeps_the_folds_and_the_validation_split(tmp_path):
    def run(name: str, train_seed: int | None) -> Path:
        finetune(_one_fold_of_sines(tmp_path / "data", tmp_path / name, epochs=1, train_seed=train_seed))
        return tmp_path / name

    default, same, other = run("default", None), run("seed0", 0), run("seed1", 1)

    def weights(out: Path) -> dict:
        return torch.load(out / "fold-0" / "last.pt", weights_only=True)["model"]

    split = [json.loads((out / "fold-0" / "model" / "split.json").read_text()) for out in (default, same, other)]
    assert split[0] == split[1] == split[2]  # the same test, validation and training items
    assert len({(out / "folds.json").read_text() for out in (default, same, other)}) == 1
    assert all(torch.equal(v, weights(same)[k]) for k, v in weights(default).items())  # None means seed
    assert not all(torch.equal(v, weights(other)[k]) for k, v in weights(default).items())
    with pytest.raises(CardiolensError, match="train_seed must be a non-negative integer"):
        _one_fold_of_sines(tmp_path / "data", tmp_path / "bad", train_seed=-1)


def test_out_of_fold_f1_decides_each_item_at_its_folds_threshold():
    from sklearn.metrics import f1_score, roc_auc_score

    from cardiolens.tasks.finetune import summarise
    from cardiolens.tasks.suite import get_task

    rng = np.random.default_rng(0)
    n = 200
    y = (rng.random(n) < 0.3).astype(int)
    fold = np.arange(n) % 2
    # fold 1's model is shifted down: at 0.5 it finds few positives, at its validated 0.2 it finds them
    p = np.clip(0.25 + 0.5 * y + 0.2 * rng.standard_normal(n) - 0.3 * fold, 0.001, 0.999)
    data = TaskData(
        [np.zeros((1, 10))] * n,
        y,
        np.array([f"r{i}" for i in range(n)]),
        np.array([f"p{i}" for i in range(n)]),
        None,
        100.0,
        ["I"],
    )
    thresholds = {0: [0.5], 1: [0.2]}
    out = summarise(
        get_task("cinc2017-af"), data, p[:, None], n_resamples=50, item_thresholds=[thresholds[f] for f in fold]
    )
    decided = np.where(fold == 0, p >= 0.5, p >= 0.2)
    assert out["f1"]["value"] == pytest.approx(f1_score(y, decided))
    assert out["auroc"]["value"] == pytest.approx(roc_auc_score(y, p))  # ranks the probabilities as they are
    assert "threshold" not in out
    at_half = summarise(get_task("cinc2017-af"), data, p[:, None], n_resamples=50)
    assert (
        at_half["f1"]["value"] == pytest.approx(f1_score(y, p >= 0.5)) and at_half["f1"]["value"] < out["f1"]["value"]
    )


@pytest.mark.parametrize("setting", [{"epochs": 0}, {"batch_size": 0}, {"val_fraction": 0.0}, {"max_items": 0}])
def test_fine_tuning_settings_that_cannot_run_are_refused_when_made(setting):
    with pytest.raises(CardiolensError, match=next(iter(setting))):
        FinetuneConfig(task="cinc2017-rhythm", data="x", **setting)


def test_max_items_below_one_patients_items_keeps_one_whole_patient():
    from cardiolens.tasks.finetune import _subsample

    data = _data(n=100, patients=10)  # 10 items per patient, as a task whose items are windows
    kept = _subsample(data, 3, seed=0)
    assert len(set(kept.groups)) == 1 and len(kept) == 10
    assert len(_subsample(data, 50, seed=0)) <= 50 and len(_subsample(data, 500, seed=0)) == 100


def test_the_same_run_resumes_from_a_relative_out_a_moved_folder_and_an_other_spelling_of_its_data(
    sines_run, tmp_path, monkeypatch
):
    import shutil

    cfg, results = sines_run
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(cfg.out, moved)
    stamp = (moved / "fold-0" / "model" / "model.safetensors").stat().st_mtime_ns
    monkeypatch.chdir(tmp_path)  # the run and its data typed relative to here
    data = os.path.relpath(cfg.data, tmp_path)
    again = finetune(FinetuneConfig(**{**cfg.__dict__, "out": "elsewhere/run", "data": data}))
    assert (moved / "fold-0" / "model" / "model.safetensors").stat().st_mtime_ns == stamp  # resumed, not retrained
    assert again["oof"]["auroc"]["value"] == pytest.approx(results["oof"]["auroc"]["value"])


# -- a trained backbone of other leads -----------------------------------------------------------------
def _load_two_lead_sines(root: Path, fs: float, **options) -> TaskData:
    one = _data(n=48, patients=24)
    return dataclasses.replace(one, signals=[np.vstack([s, 0.5 * s]) for s in one.signals], leads=["I", "II"])


register_task(dataclasses.replace(SINES, name="test-sines-2leads", load=_load_two_lead_sines))


def test_fit_input_channels_spreads_or_sums_a_trained_input_layer_and_keeps_every_other_weight():
    from cardiolens.models.taskmodel import fit_input_channels

    torch.manual_seed(0)
    one = create_model("resnet1d").eval()
    two, note = fit_input_channels(one, 2, keep_weights=True, name="trained")
    assert "adapted to 2" in note and "divided by 2" in note
    for (k, a), (_, b) in zip(one.state_dict().items(), two.state_dict().items(), strict=True):
        assert torch.equal(b, a.expand_as(b) / 2) if k == "stem.weight" else torch.equal(a, b), k
    x = torch.randn(3, 1, 300)
    with torch.no_grad():  # the same signal on both leads gives the trained network's features
        torch.testing.assert_close(two.eval().forward_features(x.repeat(1, 2, 1)), one.forward_features(x))
    back, note = fit_input_channels(two, 1, keep_weights=True)
    assert "summed over its 2 leads" in note and torch.allclose(back.state_dict()["stem.weight"], one.stem.weight)
    with pytest.raises(ModelInputError, match="trained on 2 leads and the task reads 3"):
        fit_input_channels(two, 3, keep_weights=True)
    fresh, note = fit_input_channels(one, 3, keep_weights=False)
    assert fresh.config.in_channels == 3 and note.startswith("fresh")


def test_a_trained_one_lead_backbone_keeps_its_weights_on_a_two_lead_task_and_its_probe_is_the_saved_model(tmp_path):
    backbone = tmp_path / "trained-cnn"
    torch.manual_seed(0)
    trained = create_model("resnet1d")
    save_checkpoint(trained, backbone)
    root = tmp_path / "data"
    cfg = sines_config(
        tmp_path, task="test-sines-2leads", backbone=str(backbone), policy="linear", folds=2, epochs=2,
        out=str(tmp_path / "probe"),
    )  # fmt: skip
    results = finetune(cfg)
    assert "trained on 1 lead(s) adapted to 2" in results["backbone_adapted"]
    model = load_model(tmp_path / "probe" / "fold-0" / "model")
    saved = model.backbone.state_dict()
    kept = {k: v for k, v in trained.state_dict().items() if not k.startswith("head.")}  # the task has its own
    assert set(kept) == set(saved)
    for key, value in kept.items():  # the trained weights, not a random rebuild
        expected = value.expand_as(saved[key]) / 2 if key == "stem.weight" else value
        assert torch.equal(saved[key], expected), key
    data = _load_two_lead_sines(root, 100.0)
    feats = window_features(model, data.signals[:4])
    with torch.no_grad():  # the head was trained on features of the very backbone it is saved with
        from_features = np.stack(
            [model.probabilities(model.forward_head(torch.as_tensor(f))).mean(0).numpy() for f in feats]
        )
    (cache_file,) = (root / "cache").glob("features-test-sines-2leads-*.npz")
    cached = np.load(cache_file)
    first = cached["features"][: cached["counts"][0]]
    assert np.allclose(first, feats[0], atol=1e-5)
    assert np.allclose(from_features, predict_items(model, data.signals[:4]), atol=1e-5)


def test_a_backbone_whose_leads_cannot_be_mapped_is_refused_before_the_out_folder_is_bound(tmp_path):
    backbone = tmp_path / "three-lead-cnn"
    save_checkpoint(create_model("resnet1d", in_channels=3), backbone)
    root = tmp_path / "data"
    root.mkdir()
    common = dict(
        task="test-sines-2leads",
        data=str(root),
        folds=2,
        fold_ids=[0],
        epochs=1,
        min_steps=2,
        out=str(tmp_path / "run"),
    )
    with pytest.raises(ModelInputError, match="trained on 3 leads and the task reads 2"):
        finetune(FinetuneConfig(**common, backbone=str(backbone), progress=False, cache_dir=str(root / "cache")))
    assert not (tmp_path / "run").exists()  # the advice (a fresh backbone) works in the same --out
    finetune(FinetuneConfig(**common, backbone="resnet1d", progress=False, bootstrap=20, cache_dir=str(root / "cache")))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["backbone_input"] == ""


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_damaged_run_record_is_named_instead_of_a_traceback(tmp_path, content):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(content)
    cfg = FinetuneConfig(task="test-sines", data=str(tmp_path), out=str(tmp_path / "run"), progress=False)
    with pytest.raises(CardiolensError, match=r"run\.json: (cannot be read as|not) a run's settings"):
        finetune(cfg)


def test_a_run_refused_for_too_few_patients_leaves_its_folder_free(tmp_path):
    settings = {"max_items": 12, "epochs": 1, "bootstrap": 20, "min_steps": 1}
    with pytest.raises(CardiolensError, match=r"cannot make 10 patient-grouped folds from \d+ patients"):
        finetune(sines_config(tmp_path, folds=10, **settings))
    assert not (tmp_path / "run" / "run.json").exists()
    # the corrected command runs in the same folder (it was refused as "other settings (folds: 10 -> 3)")
    assert set(finetune(sines_config(tmp_path, folds=3, **settings))["folds"]) == {"0"}


@pytest.mark.parametrize("decay", [0.0, -1.0, 1.5])
def test_a_layer_decay_outside_0_1_is_refused(decay):
    # -1 gave alternate layers a negative learning rate (gradient ascent); 0 froze the backbone silently
    with pytest.raises(CardiolensError, match=f"llrd_decay must be in \\(0, 1\\], got {decay}"):
        FinetuneConfig(task="cinc2017-rhythm", data="x", policy="llrd", llrd_decay=decay)
