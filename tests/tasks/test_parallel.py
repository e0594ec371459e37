"""Multi-process training options: refused before any process starts; a 2-process fine-tuning run resumes exactly."""

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
from safetensors.torch import load_file

from cardiolens.errors import CardiolensError
from cardiolens.tasks import PretrainConfig, pretrain_gpt
from cardiolens.tasks import pretrain as pretrain_module
from cardiolens.tasks.finetune import FinetuneConfig
from cardiolens.tasks.parallel import check_launch_environment, check_parallel_options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(devices=0), "devices must be a whole number of at least 1"),
        (dict(devices=-1), "devices must be"),
        (dict(num_nodes=0), "num_nodes must be"),
        (dict(strategy="bogus"), "strategy 'bogus' is not supported; choose auto"),
        (dict(strategy="ddp_spawn"), "strategy 'ddp_spawn' is not supported"),
        (dict(accelerator="tpu"), "accelerator 'tpu' is not supported"),
        (dict(precision="64"), "precision '64' is not supported"),
        (dict(precision="16-mixed"), "16-mixed needs a GPU"),
    ],
)
def test_options_the_loops_cannot_run_are_refused_with_the_choices(options, message):
    settings = dict(accelerator="cpu", devices=1, num_nodes=1, strategy="auto", precision="32-true") | options
    with pytest.raises(CardiolensError, match=message):
        check_parallel_options(**settings)
    with pytest.raises(CardiolensError, match=message):  # a fine-tuning config refuses them when made
        FinetuneConfig(task="cinc2017-rhythm", data="x", **settings)


def test_good_options_pass_and_a_gpu_is_refused_only_where_there_is_none():
    check_parallel_options("cpu", 2, 1, "ddp", "bf16-mixed")
    if not torch.cuda.is_available():
        with pytest.raises(CardiolensError, match="no GPU"):
            check_parallel_options("gpu", 1, 1, "auto", "32-true")


def test_a_launcher_with_another_process_count_and_nodes_without_addresses_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(CardiolensError, match="WORLD_SIZE=2, but --devices 1 x --num_nodes 1 is 1 process"):
        check_launch_environment("cpu", 1, 1)
    check_launch_environment("cpu", 2, 1)  # torchrun --nproc_per_node 2 with --devices 2
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(CardiolensError, match="MASTER_ADDR, MASTER_PORT and NODE_RANK"):
        check_launch_environment("cpu", 1, 2)


def test_pretraining_refuses_a_missing_folder_before_starting_processes(monkeypatch, tmp_path):
    def launched(*args, **kwargs):
        raise AssertionError("processes were started before the data folder was checked")

    monkeypatch.setattr(pretrain_module, "launch_fabric", launched)
    cfg = PretrainConfig(
        data=[str(tmp_path / "nowhere")], out=str(tmp_path / "run"), batch_size=4, devices=2, strategy="ddp"
    )
    with pytest.raises(CardiolensError, match="nowhere"):
        pretrain_gpt(cfg)


def _cinc_folder(root: Path, n: int = 40) -> Path:
    """A CinC 2017 style folder: n single-lead records of 30 s at 300 Hz (sines whose rate follows the class)."""
    root.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(9000) / 300.0
    lines = []
    for i in range(n):
        label = "NAO~"[i % 4]
        x = np.sin(2 * np.pi * (1.0 + 0.4 * "NAO~".index(label)) * t) + 0.05 * rng.standard_normal(len(t))
        name = f"A{i + 1:05d}"
        wfdb.wrsamp(name, fs=300, units=["mV"], sig_name=["ECG"], p_signal=x[:, None], fmt=["16"], write_dir=str(root))
        lines.append(f"{name},{label}")
    (root / "REFERENCE.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.slow
def test_two_process_fine_tuning_stopped_and_resumed_equals_an_uninterrupted_run(tmp_path):
    data = _cinc_folder(tmp_path / "training2017")
    command = [
        sys.executable,
        "-m",
        "cardiolens.cli",
        "finetune",
        "cinc2017-rhythm",
        str(data),
        "--backbone",
        "resnet1d",
        "--epochs",
        "3",
        "--patience",
        "5",
        "--min_steps",
        "1",
        "--batch_size",
        "5",  # the last batch of each epoch splits unevenly, so the two processes' random streams part
        "--fold_ids",
        "[0]",
        "--threads",
        "1",
        "--bootstrap",
        "10",
        "--cache_dir",
        str(tmp_path / "cache"),
        "--devices",
        "2",
        "--strategy",
        "ddp",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def run(*extra: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*command, *extra], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    whole = run("--out", str(tmp_path / "whole"))
    assert whole.stdout.count("out-of-fold scores") == 1  # one report, from rank 0
    stopped = run("--out", str(tmp_path / "parts"), "--stop_at_epoch", "1")
    assert "stopped after epoch 1 of fold 0" in stopped.stdout
    assert (tmp_path / "parts" / "fold-0" / "last.pt").exists()
    assert not (tmp_path / "parts" / "fold-0" / "model").exists()
    run("--out", str(tmp_path / "parts"))
    one = load_file(tmp_path / "whole" / "fold-0" / "model" / "model.safetensors")
    two = load_file(tmp_path / "parts" / "fold-0" / "model" / "model.safetensors")
    assert one.keys() == two.keys()
    for name in one:  # every process's dropout stream and rank 0's validation continue as they were
        assert torch.equal(one[name], two[name]), name
    history = [json.loads((tmp_path / d / "fold-0" / "result.json").read_text())["history"] for d in ("whole", "parts")]
    assert history[0] == history[1]
