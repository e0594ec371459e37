"""Next-token pretraining: schedule, deterministic batches, resume, held-out split, export, and DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import wfdb

from cardiolens.errors import CardiolensError
from cardiolens.models import load_model
from cardiolens.tasks import PretrainConfig, heldout_records, pretrain_gpt
from cardiolens.tasks.data import TokenBatches, open_sources
from cardiolens.tasks.pretrain import lr_at

TINY = {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 64, "dropout": 0.0}


def _beats(n: int, fs: float, rate_hz: float, seed: int) -> np.ndarray:
    """A spiky periodic signal in mV (narrow 'R waves' on a wandering baseline) with noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    phase = (t * rate_hz) % 1.0
    spikes = np.exp(-(((phase - 0.3) / 0.02) ** 2)) + 0.2 * np.exp(-(((phase - 0.6) / 0.08) ** 2))
    return spikes + 0.05 * np.sin(2 * np.pi * 0.2 * t) + 0.01 * rng.standard_normal(n)


@pytest.fixture
def cinc_folder(tmp_path: Path) -> Path:
    """A CinC 2017 style folder: 10 single-lead records of 30 s at 300 Hz, REFERENCE.csv."""
    root = tmp_path / "training2017"
    root.mkdir()
    lines = []
    for i in range(10):
        name = f"A{i + 1:05d}"
        x = _beats(9000, 300.0, 1.0 + 0.1 * i, seed=i)
        wfdb.wrsamp(name, fs=300, units=["mV"], sig_name=["ECG"], p_signal=x[:, None], fmt=["16"], write_dir=str(root))
        lines.append(f"{name},{'NAO~'[i % 4]}")
    (root / "REFERENCE.csv").write_text("\n".join(lines) + "\n")
    return root


def _config(folder: Path, out: Path, **changes) -> PretrainConfig:
    base = dict(
        data=[str(folder)],
        model="ecgpt-small",
        model_overrides=TINY,
        out=str(out),
        max_steps=6,
        batch_size=4,
        warmup_steps=2,
        eval_every=3,
        eval_windows=8,
        holdout=0.2,
        progress=False,
        threads=1,
    )
    base.update(changes)
    return PretrainConfig(**base)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_model(folder).state_dict()


def test_learning_rate_warms_up_then_decays_to_min() -> None:
    cfg = PretrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(0.5 * (1e-3 + 1e-4))
    assert lr_at(110, cfg) == pytest.approx(1e-4)
    assert all(lr_at(s, cfg) >= lr_at(s + 1, cfg) for s in range(10, 110))


def test_batches_are_deterministic_and_ranks_split_the_global_batch(cinc_folder: Path, tmp_path: Path) -> None:
    sources = open_sources(
        [str(cinc_folder)], modality="ECG", fs=100.0, cache_dir=tmp_path / "cache", holdout=0.2, progress=False
    )
    batches = TokenBatches(sources, block_size=64, levels=101, seed=3)
    whole = batches.batch(step=7, batch_size=8)
    assert whole.shape == (8, 65) and whole.dtype == np.int64
    assert whole.min() >= 0 and whole.max() <= 100
    # every crop is min-max scaled by itself, as continue_signal scales a context at inference
    assert (whole.min(axis=1) == 0).all() and (whole.max(axis=1) == 100).all()
    np.testing.assert_array_equal(whole, batches.batch(step=7, batch_size=8))
    assert not np.array_equal(whole, batches.batch(step=8, batch_size=8))
    ranks = [batches.batch(step=7, batch_size=8, rank=r, world_size=2) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([ranks[0], ranks[1]]), whole[np.r_[0:8:2, 1:8:2]])
    # record span: scaled by the 10 s window the crop came from, so crops rarely reach both ends
    record = TokenBatches(sources, block_size=64, levels=101, seed=3, token_span="record").batch(7, 8)
    assert record.shape == whole.shape and (record.max(axis=1) - record.min(axis=1) <= 100).all()


def test_held_out_records_are_never_trained_on(cinc_folder: Path, tmp_path: Path) -> None:
    sources = open_sources(
        [str(cinc_folder)], modality="ECG", fs=100.0, cache_dir=tmp_path / "cache", holdout=0.2, progress=False
    )
    (source,) = sources
    assert source.lead == "ECG"  # single-lead recorder: its one lead is taken for ECG
    assert len(source.heldout_ids) == 2 and not set(source.heldout_ids) & set(source.train_ids)
    assert len(source.train_ids) + len(source.heldout_ids) == 10
    train_windows = set(np.asarray(source.windows)[source.train_index].sum(axis=1).round(6))
    held_windows = set(np.asarray(source.windows)[source.heldout_index].sum(axis=1).round(6))
    assert train_windows and held_windows and not train_windows & held_windows


def test_pretraining_learns_exports_and_documents(cinc_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = pretrain_gpt(_config(cinc_folder, out, max_steps=30, eval_every=15, lr=3e-3))
    assert result["finished"] and result["step"] == 30
    assert result["tokens_seen"] == 30 * 4 * 64
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [r["eval_loss"] for r in log if "eval_loss" in r]
    assert len(evals) == 2 and evals[-1] < np.log(101)  # better than a uniform guess over 101 tokens
    assert log[-1]["tokens_per_s"] > 0
    model = load_model(out / "model")
    assert model.config.n_embd == 16 and model.config.fs == 100.0
    card = (out / "model" / "MODEL_CARD.md").read_text()
    assert "held-out" in card and "tokens seen: 7,680" in card
    held = heldout_records(out / "model")
    assert (out / "model" / "heldout.json").exists()
    assert sum(len(v) for v in held.values()) == 2
    assert (out / "best" / "config.json").exists()


def test_resume_after_interruption_continues_the_same_run(cinc_folder: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    straight = pretrain_gpt(_config(cinc_folder, tmp_path / "a", cache_dir=cache))
    first = pretrain_gpt(_config(cinc_folder, tmp_path / "b", cache_dir=cache, stop_at=4))
    assert not first["finished"] and first["step"] == 4
    assert not (tmp_path / "b" / ".last.pt.tmp").exists()
    resumed = pretrain_gpt(_config(cinc_folder, tmp_path / "b", cache_dir=cache))
    assert resumed["finished"] and resumed["tokens_seen"] == straight["tokens_seen"]
    a, b = _weights(tmp_path / "a" / "model"), _weights(tmp_path / "b" / "model")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps))  # no step logged twice after the resume


def test_resume_refuses_changed_settings(cinc_folder: Path, tmp_path: Path, monkeypatch) -> None:
    pretrain_gpt(_config(cinc_folder, tmp_path / "run", stop_at=3))
    with pytest.raises(CardiolensError, match="lr: 0.001 -> 0.005"):
        pretrain_gpt(_config(cinc_folder, tmp_path / "run", lr=5e-3))
    # the same run typed relative to another folder, its data too, resumes (paths are compared as folders)
    monkeypatch.chdir(tmp_path)
    data = os.path.relpath(cinc_folder, tmp_path)
    resumed = pretrain_gpt(_config(cinc_folder, Path("run"), data=[data], stop_at=4))
    assert resumed["step"] == 4


def test_a_run_started_with_relative_paths_resumes_from_another_folder(cinc_folder: Path, tmp_path: Path, monkeypatch):
    import shutil

    shutil.copytree(cinc_folder, tmp_path / "project" / "data" / "cinc")
    (tmp_path / "project" / "runs").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    pretrain_gpt(_config(cinc_folder, Path("runs/pt"), data=["data/cinc"], stop_at=3))
    saved = json.loads((tmp_path / "project" / "runs" / "pt" / "run.json").read_text())["config"]
    assert saved["data"] == [str((tmp_path / "project" / "data" / "cinc").resolve())]  # recorded absolute
    monkeypatch.chdir(tmp_path / "project" / "runs")  # the same run and data, typed from here
    resumed = pretrain_gpt(_config(cinc_folder, Path("pt"), data=["../data/cinc"], stop_at=4))
    assert resumed["step"] == 4


def test_a_setting_the_run_did_not_record_counts_as_its_default(cinc_folder: Path, tmp_path: Path) -> None:
    pretrain_gpt(_config(cinc_folder, tmp_path / "run", stop_at=3))
    run_file = tmp_path / "run" / "run.json"
    record = json.loads(run_file.read_text())
    del record["config"]["token_span"]  # as a run started before cardiolens had the setting
    run_file.write_text(json.dumps(record))
    with pytest.raises(CardiolensError, match="token_span: 'window' -> 'record'"):
        pretrain_gpt(_config(cinc_folder, tmp_path / "run", token_span="record"))
    assert pretrain_gpt(_config(cinc_folder, tmp_path / "run", stop_at=4))["step"] == 4  # the default resumes


def test_a_folder_with_a_checkpoint_but_no_run_record_is_refused_by_name(cinc_folder: Path, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "last.pt").write_bytes(b"not ours")
    with pytest.raises(CardiolensError, match="other: has a training state .last.pt. but no readable run.json"):
        pretrain_gpt(_config(cinc_folder, tmp_path / "other"))


def test_bad_sources_are_refused(tmp_path: Path, cinc_folder: Path) -> None:
    with pytest.raises(CardiolensError, match="at least one dataset"):
        pretrain_gpt(_config(cinc_folder, tmp_path / "r1", data=[]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CardiolensError, match="not a dataset layout"):
        pretrain_gpt(_config(cinc_folder, tmp_path / "r2", data=[str(tmp_path / "empty")]))
    with pytest.raises(CardiolensError, match="no PPG lead"):
        pretrain_gpt(_config(cinc_folder, tmp_path / "r3", model="ppgpt-small"))
    with pytest.raises(CardiolensError, match="divide"):
        pretrain_gpt(_config(cinc_folder, tmp_path / "r4", batch_size=3, devices=2, strategy="ddp"))


@pytest.mark.slow
def test_two_cpu_processes_train_the_same_model_as_one(cinc_folder: Path, tmp_path: Path) -> None:
    """DDP over gloo: 2 processes x 2 windows give the weights 1 process x 4 windows gives."""
    common = [
        "pretrain",
        "gpt",
        "--data",
        str(cinc_folder),
        "--model_overrides",
        json.dumps(TINY),
        "--max_steps",
        "3",
        "--batch_size",
        "4",
        "--eval_every",
        "3",
        "--eval_windows",
        "8",
        "--holdout",
        "0.2",
        "--threads",
        "1",
        "--cache_dir",
        str(tmp_path / "cache"),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    script = [sys.executable, "-m", "cardiolens.cli"]
    single = subprocess.run(
        [*script, *common, "--out", str(tmp_path / "one")], capture_output=True, text=True, env=env, timeout=300
    )
    assert single.returncode == 0, single.stderr[-2000:]
    double = subprocess.run(
        [*script, *common, "--out", str(tmp_path / "two"), "--devices", "2", "--strategy", "ddp"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert double.returncode == 0, double.stderr[-2000:]
    assert double.stdout.count("held-out loss") == 1  # one report, from rank 0
    one, two = _weights(tmp_path / "one" / "model"), _weights(tmp_path / "two" / "model")
    for name in one:
        torch.testing.assert_close(one[name], two[name], rtol=1e-4, atol=1e-5)
    state = torch.load(tmp_path / "two" / "last.pt", weights_only=True)
    assert state["step"] == 3
    # the logged training loss is the whole batch's in both runs, not rank 0's half of it
    logged = [
        [json.loads(x)["loss"] for x in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        for run in ("one", "two")
    ]
    assert len(logged[0]) == len(logged[1]) >= 1 and np.allclose(logged[0], logged[1], rtol=1e-4)


def test_pretraining_on_real_bidmc_pleth(bidmc_dir: Path, tmp_path: Path) -> None:
    """Two steps on the real BIDMC folder: PLETH found by name, 53 records split by patient, 50 Hz."""
    out = tmp_path / "run"
    cfg = _config(bidmc_dir, out, model="ppgpt-small", max_steps=2, warmup_steps=1, eval_every=2, holdout=0.1)
    result = pretrain_gpt(cfg)
    assert result["finished"] and result["eval_loss"] < 2 * np.log(101)
    split = json.loads((out / "split.json").read_text())
    (source,) = split["sources"]
    assert source["lead"] == "PLETH"
    assert len(source["train_ids"]) + len(source["heldout_ids"]) == 53
    assert all(r.startswith("bidmc") for r in source["heldout_ids"])
    # 8-minute records cut into 10 s windows (a 65-sample crop fits one): 48 per record, none flat
    assert source["train_windows"] + source["heldout_windows"] == 53 * 48
    assert load_model(out / "model").config.fs == 50.0


def test_pretraining_and_fine_tuning_never_share_a_run_folder(cinc_folder: Path, tmp_path: Path) -> None:
    from cardiolens.tasks.finetune import FinetuneConfig, finetune

    finetuned = tmp_path / "finetuned"
    finetuned.mkdir()
    (finetuned / "run.json").write_text(json.dumps({"task": "cinc2017-rhythm", "backbone": "resnet1d"}))
    (finetuned / "folds.json").write_text("{}")
    with pytest.raises(CardiolensError, match="holds a fine-tuning run"):
        pretrain_gpt(_config(cinc_folder, finetuned))
    assert not (finetuned / "last.pt").exists()
    pretrained = tmp_path / "pretrained"
    pretrain_gpt(_config(cinc_folder, pretrained, stop_at=3))
    before = (pretrained / "run.json").read_text()
    with pytest.raises(CardiolensError, match="holds a pretraining run"):
        finetune(
            FinetuneConfig(task="cinc2017-rhythm", data=str(cinc_folder), backbone="resnet1d", out=str(pretrained))
        )
    assert (pretrained / "run.json").read_text() == before and not (pretrained / "folds.json").exists()


@pytest.mark.parametrize(
    "setting", [{"batch_size": 0}, {"eval_every": 0}, {"max_steps": 0}, {"lr": 0.0}, {"min_lr": 0.05}]
)
def test_settings_that_cannot_run_are_refused_before_anything_is_written(setting: dict, tmp_path: Path) -> None:
    with pytest.raises(CardiolensError, match=next(iter(setting))):
        PretrainConfig(data=["x"], out=str(tmp_path / "run"), **setting)
    assert not (tmp_path / "run").exists()


def test_a_model_of_one_heart_signal_is_not_trained_on_the_other(cinc_folder: Path, tmp_path: Path) -> None:
    from cardiolens.tasks.finetune import FinetuneConfig, finetune

    bidmc = tmp_path / "bidmc"
    bidmc.mkdir()
    x = _beats(3000, 125.0, 1.1, seed=0)
    for name in ("bidmc01", "bidmc02"):
        wfdb.wrsamp(
            name, fs=125, units=["mV", "NU", "NU"], sig_name=["II", "PLETH", "RESP"], p_signal=np.c_[x, x, x],
            fmt=["16", "16", "16"], write_dir=str(bidmc),
        )  # fmt: skip
    with pytest.raises(CardiolensError, match="lead PLETH is PPG and the model reads ECG"):
        pretrain_gpt(_config(cinc_folder, tmp_path / "run", data=[f"{bidmc}#PLETH"]))
    # nor on a signal that is no heart signal at all (it was trained on and called ECG in the card)
    with pytest.raises(CardiolensError, match="lead RESP is no heart signal .* name an ECG lead"):
        pretrain_gpt(_config(cinc_folder, tmp_path / "run", data=[f"{bidmc}#RESP"]))
    with pytest.raises(CardiolensError, match="pretrained on PPG and cinc2017-rhythm reads ECG"):
        finetune(
            FinetuneConfig(
                task="cinc2017-rhythm", data=str(cinc_folder), backbone="ppgpt-small", out=str(tmp_path / "ft")
            )
        )
    assert not (tmp_path / "ft").exists()


@pytest.mark.parametrize("holdout", [0.0, 1.0, 1.5])
def test_a_holdout_outside_0_1_is_refused_by_its_name(holdout: float) -> None:
    with pytest.raises(CardiolensError, match=r"holdout \(the share of records held out .*\) must be in \(0, 1\)"):
        PretrainConfig(data=["x"], holdout=holdout)


@pytest.mark.parametrize("weights", [[1.0], [1.0, -1.0], [0.0, 0.0], [1.0, float("nan")]])
def test_sampling_weights_that_do_not_fit_the_sources_are_refused_before_any_data_is_read(weights) -> None:
    with pytest.raises(CardiolensError, match=r"weights: one non-negative sampling weight per --data source \(2\)"):
        PretrainConfig(data=["a", "b"], weights=weights)


def test_the_model_card_says_how_a_record_span_run_was_tokenised(cinc_folder: Path, tmp_path: Path) -> None:
    pretrain_gpt(_config(cinc_folder, tmp_path / "rec", token_span="record", max_steps=2, eval_every=2))
    card = (tmp_path / "rec" / "model" / "MODEL_CARD.md").read_text()
    # it said "each context min-max scaled ... as continue_signal does at inference", which is not what ran
    assert "each record min-max scaled as a whole" in card and "each context min-max" not in card
    assert "a window's tokens there can differ" in card


def test_a_lead_none_of_the_first_records_has_is_refused_before_any_process_starts(
    cinc_folder: Path, tmp_path: Path
) -> None:
    # with --devices 2 it surfaced only at the processes' first barrier, as a connection error in the other
    with pytest.raises(CardiolensError, match=r"#II: no lead II in the first \d+ record\(s\) .*their leads: ECG"):
        pretrain_gpt(_config(cinc_folder, tmp_path / "run", data=[f"{cinc_folder}#II"], devices=2))
    assert not (tmp_path / "run").exists()
