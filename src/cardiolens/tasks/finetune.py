"""Fine-tuning any registry backbone on a task, with cross-validation, on Lightning Fabric.

One run::

    run/run.json              the settings
    run/folds.json            the item -> fold assignment (patient-grouped, stratified), or with a
                              fixed split the item -> role ("train", "val", "test", "unused")
    run/fold-K/last.pt        training state of fold K after its last finished epoch (resume point)
    run/fold-K/model/         the weights of fold K with the best validation score (a checkpoint)
    run/fold-K/result.json    the fold's test scores (written when the fold is done; a rerun skips it)
    run/oof.npz               out-of-fold probabilities of every item
    run/results.json          scores over all folds with bootstrap 95 % intervals

Freezing policies (``policy``):

- ``full``: every weight trains.
- ``linear``: a linear probe: the backbone is frozen (and in eval mode), only the head trains.
- ``last-block``: HeartGPT's recipe: everything frozen but the last backbone block, the final
  norm and the head.
- ``llrd``: every weight trains, with layer-wise learning-rate decay: group ``i`` of ``n`` from the
  input gets ``lr * decay ** (n - 1 - i)``.

Early stopping, model selection and decision thresholds use a validation split carved from the
training folds by patient; the test fold is only read once, at the end of its fold.

Splits (``split``): a task whose data names a published split (``TaskData.info["split"]``: item ->
``"train"``/``"val"``/``"test"``, as PTB-XL's strat_fold 1-8/9/10 or MIT-BIH DS1/DS2) runs that split
as one fold (fold 0) under ``"auto"`` or ``"fixed"``; ``"cv"`` ignores it and cross-validates.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cardiolens.atomic import output_folder, write_json, write_npz
from cardiolens.datasets import grouped_kfold
from cardiolens.errors import CardiolensError, CheckpointError
from cardiolens.models import create_model, list_models, list_pretrained, load_model, save_checkpoint
from cardiolens.models.taskmodel import TaskModel, build_task_model, fit_input_channels, uses_tokens
from cardiolens.tasks.augment import augment_windows, check_augment
from cardiolens.tasks.metrics import bootstrap_scores
from cardiolens.tasks.parallel import check_launch_environment, check_parallel_options, launch_fabric
from cardiolens.tasks.run_identity import check_same_run, defaults_of, recorded
from cardiolens.tasks.suite import Task, TaskData, default_cache_dir, get_task, load_task_data

log = logging.getLogger(__name__)

POLICIES = ("full", "linear", "last-block", "llrd")
SPLITS = ("auto", "cv", "fixed")
LABEL_FRACTIONS = (0.01, 0.1, 0.25, 0.5, 1.0)


@dataclass
class FinetuneConfig:
    """Settings of a fine-tuning run. The defaults train the CNN baseline on one fold in minutes.

    Attributes:
        task: a task name (``cardiolens.tasks.list_tasks()``).
        data: the task's dataset folder.
        backbone: a registry preset (fresh weights: ``resnet1d``), a shipped model (``ecgpt-small``),
            a checkpoint folder or a HeartGPT zip (pretrained weights).
        from_scratch: build the backbone's architecture with fresh weights even when it names trained ones.
        policy: ``full``, ``linear``, ``last-block`` or ``llrd`` (see the module notes).
        llrd_decay: learning-rate factor per layer group for ``llrd``.
        label_fraction: share of training patients whose labels are used (drawn with ``seed``).
        folds: cross-validation folds; ``fold_ids`` runs only those (e.g. ``[0]``).
        split: ``"auto"`` (the data's published split where it names one, else cross-validation),
            ``"cv"`` or ``"fixed"`` (the published split; an error when the data names none).
        fold_ids: folds to run (default: all).
        val_fraction: share of the training patients kept for validation.
        epochs, patience: at most ``epochs``; stop after ``patience`` epochs without a better
            validation score.
        min_steps: small training sets (low label fractions) get more epochs, so that a run takes
            at least this many optimisation steps.
        batch_size, lr, weight_decay, grad_clip: optimisation.
        crops_per_item: random training windows drawn from each item per epoch.
        augment: ``"none"`` or ``"noise"`` (white noise and baseline wander on training windows;
            ``cardiolens.tasks.augment``).
        class_weights: ``"balanced"`` (inverse class frequency) or ``"none"``.
        window_seconds: window length (default: the task's, cropped to the backbone's context).
        max_items: use at most this many items (stratified sample; for quick runs).
        seed: folds, label fractions and validation splits; also crops and initialisation unless
            ``train_seed`` is given.
        train_seed: crops, batch order, initialisation and dropout only (default: ``seed``). Runs that
            differ only here share folds and validation splits, so they can be averaged as a seed ensemble.
        out: run folder.
        accelerator, devices, strategy, precision, num_nodes: Lightning Fabric settings.
        stop_at_epoch: stop after this epoch of a fold as if interrupted (its ``last.pt`` kept); the
            same command without it resumes there.
        threads: CPU threads for torch (0 keeps torch's default).
        progress: progress bars.
        cache_dir: task-data cache folder (default ``./.cache/tasks``).
        bootstrap: bootstrap resamples of the out-of-fold intervals.
        load_options: options of the task's loader (e.g. ``{"records": [...]}`` to read a subset).
    """

    task: str = "cinc2017-rhythm"
    data: str = ""
    backbone: str = "resnet1d"
    from_scratch: bool = False
    policy: str = "full"
    llrd_decay: float = 0.75
    label_fraction: float = 1.0
    folds: int = 5
    fold_ids: list[int] | None = None
    split: str = "auto"
    val_fraction: float = 0.1
    epochs: int = 15
    min_steps: int = 200
    patience: int = 4
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    crops_per_item: int = 1
    augment: str = "none"
    class_weights: str = "balanced"
    window_seconds: float | None = None
    max_items: int | None = None
    seed: int = 0
    train_seed: int | None = None
    out: str = "runs/finetune"
    accelerator: str = "cpu"
    devices: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_nodes: int = 1
    stop_at_epoch: int | None = None
    threads: int = 0
    progress: bool = True
    cache_dir: str | None = None
    bootstrap: int = 1000
    load_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise CardiolensError(f"unknown freezing policy {self.policy!r}; policies: {', '.join(POLICIES)}")
        if not 0 < self.label_fraction <= 1:
            raise CardiolensError(f"label_fraction must be in (0, 1], got {self.label_fraction}")
        if self.folds < 2:
            raise CardiolensError(f"folds must be at least 2, got {self.folds}")
        # checked here, before run.json binds --out to settings that cannot run
        for name, least in (("epochs", 1), ("batch_size", 1), ("crops_per_item", 1), ("patience", 0), ("min_steps", 0)):
            if getattr(self, name) < least:
                raise CardiolensError(f"{name} must be at least {least}, got {getattr(self, name)}")
        if not 0 < self.val_fraction < 1:
            raise CardiolensError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not self.lr > 0:
            raise CardiolensError(f"lr must be positive, got {self.lr}")
        if not 0 < self.llrd_decay <= 1:
            # 0 freezes every layer below the head, a negative value makes alternate layers climb the loss
            raise CardiolensError(f"llrd_decay must be in (0, 1], got {self.llrd_decay}")
        if self.max_items is not None and self.max_items < 1:
            raise CardiolensError(f"max_items must be at least 1, got {self.max_items}")
        check_augment(self.augment)
        if self.split not in SPLITS:
            raise CardiolensError(f"unknown split {self.split!r}; splits: {', '.join(SPLITS)}")
        if self.class_weights not in ("balanced", "none"):
            raise CardiolensError(f"class_weights must be 'balanced' or 'none', got {self.class_weights!r}")
        if self.fold_ids is not None:
            bad = [k for k in self.fold_ids if not 0 <= k < self.folds]
            if bad:
                raise CardiolensError(f"fold_ids {bad} outside 0..{self.folds - 1}")
        if self.train_seed is not None and (not isinstance(self.train_seed, int) or self.train_seed < 0):
            raise CardiolensError(f"train_seed must be a non-negative integer, got {self.train_seed!r}")
        if self.stop_at_epoch is not None and self.stop_at_epoch < 1:
            raise CardiolensError(f"stop_at_epoch must be at least 1, got {self.stop_at_epoch}")
        check_parallel_options(self.accelerator, self.devices, self.num_nodes, self.strategy, self.precision)

    @property
    def training_seed(self) -> int:
        """The seed of crops, batch order, initialisation and dropout."""
        return self.seed if self.train_seed is None else self.train_seed


# -- backbones ------------------------------------------------------------------------------------
def backbone_is_fresh(name: str, from_scratch: bool = False) -> bool:
    """Whether ``name`` means fresh weights: a registry preset that ships no trained weights, or ``from_scratch``.

    ``ecgpt-small`` is both a preset and a shipped model; its name means the shipped weights.
    """
    return from_scratch or (name in list_models() and name not in list_pretrained())


def resolve_backbone(name: str, from_scratch: bool = False) -> nn.Module:
    """A backbone for fine-tuning: trained weights by shipped name/path, fresh ones for a preset.

    Raises:
        CardiolensError: neither a registry preset nor a loadable model; lists the presets.
    """
    if name in list_models() and backbone_is_fresh(name, from_scratch):
        return create_model(name)
    try:
        model = load_model(name)
    except CheckpointError as exc:
        raise CardiolensError(
            f"backbone {name!r}: not a registry preset ({', '.join(list_models())}) and not a trained model: {exc}"
        ) from None
    if isinstance(model, TaskModel):
        model = model.backbone  # fine-tune a fine-tuned model's backbone again
    if from_scratch:
        model = type(model)(model.config)
    return model.train()


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers, names included.

    Caches and resumed runs key on this rather than on the backbone's name: a shipped model whose
    weights were retrained keeps its name, and features or folds of the old weights must not be reused.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def backbone_fs(backbone: nn.Module, task: Task) -> float:
    """The sampling rate the task data must have: the backbone's own (GPTs) or the task's."""
    fs = getattr(backbone.config, "fs", None)
    return float(fs) if fs else float(task.fs)


def window_samples(backbone: nn.Module, task: Task, fs: float, window_seconds: float | None) -> int:
    window = int(round((window_seconds or task.window_seconds) * fs))
    if uses_tokens(backbone):
        window = min(window, backbone.config.block_size)
    return window


def apply_policy(model: TaskModel, policy: str, lr: float, decay: float = 0.75) -> list[dict[str, Any]]:
    """Freeze parameters for ``policy`` and return the optimiser's parameter groups."""
    groups = model.layer_groups()  # backbone groups from the input, then the head
    for p in model.parameters():
        p.requires_grad_(policy in ("full", "llrd"))
    if policy == "linear":
        trainable = [groups[-1]]
    elif policy == "last-block":
        trainable = groups[-3:]  # last block, final norm, head
    else:
        trainable = groups
    for module in trainable:
        for p in module.parameters():
            p.requires_grad_(True)
    param_groups = []
    n = len(groups)
    for i, module in enumerate(groups):
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            scale = decay ** (n - 1 - i) if policy == "llrd" else 1.0
            param_groups.append({"params": params, "lr": lr * scale, "base_lr": lr * scale})
    return param_groups


def frozen_eval(model: TaskModel, policy: str) -> None:
    """Frozen parts stay in eval mode while training (no dropout, fixed batch-norm statistics)."""
    model.train()
    if policy == "linear":
        model.backbone.eval()
    elif policy == "last-block":
        for module in model.backbone.layer_groups()[:-2]:
            module.eval()


# -- windows --------------------------------------------------------------------------------------
def _crop(x: np.ndarray, start: int, window: int) -> np.ndarray:
    out = x[..., start : start + window]
    if out.shape[-1] < window:  # short item: repeat its edge values (keeps min/max and mean sensible)
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, window - out.shape[-1])], mode="edge")
    return out


def training_batches(
    data: TaskData,
    window: int,
    batch_size: int,
    seed: int,
    epoch: int,
    crops_per_item: int = 1,
    augment: str = "none",
) -> list[tuple[np.ndarray, np.ndarray, Any, np.ndarray | None]]:
    """One epoch of random crops as (positions, windows, targets, extra) batches; a function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    noise_rng = np.random.default_rng([seed, epoch, 1])  # its own stream: augmenting leaves the crops as they were
    order = rng.permutation(np.repeat(np.arange(len(data)), crops_per_item))
    batches = []
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        xs, ys = [], []
        for i in idx:
            x = data.signals[i]
            start = int(rng.integers(0, max(1, x.shape[-1] - window + 1)))
            xs.append(_crop(x, start, window))
            if isinstance(data.targets, list):
                ys.append(_crop(data.targets[i], start, window))
        y = np.stack(ys) if ys else data.targets[idx]
        x_batch = augment_windows(np.stack(xs).astype(np.float32), data.fs, augment, noise_rng)
        batches.append((idx, x_batch, y, None if data.extra is None else data.extra[idx]))
    return batches


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Starts of windows covering ``length`` samples: every ``stride``, plus one flush with the end."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


@torch.no_grad()
def predict_items(
    model: TaskModel,
    signals: list[np.ndarray],
    extra: np.ndarray | None = None,
    *,
    batch_size: int = 64,
    stride: int | None = None,
    progress: bool = False,
) -> Any:
    """Probabilities per item: windows of ``model.config.window`` samples, aggregated.

    Record-level outputs are the mean of the window probabilities, (N, K). Per-sample outputs are
    stitched (overlaps averaged) into one (K, samples) array per item. Items shorter than a window
    run at their own length.
    """
    cfg = model.config
    window = cfg.window
    per_sample = cfg.kind == "per-sample"
    stride = stride or (window // 2 if per_sample else window)
    device = next(model.parameters()).device
    model.eval()
    jobs = []  # (item, start, length)
    for i, x in enumerate(signals):
        n = x.shape[-1]
        if n < window:
            jobs.append((i, 0, n))
        else:
            jobs.extend((i, s, window) for s in window_starts(n, window, stride))
    sums = [np.zeros((cfg.num_outputs, x.shape[-1]) if per_sample else cfg.num_outputs) for x in signals]
    counts = [np.zeros(x.shape[-1]) if per_sample else np.zeros(1) for x in signals]
    full = [j for j in jobs if j[2] == window]
    short = [j for j in jobs if j[2] != window]
    chunks = [full[s : s + batch_size] for s in range(0, len(full), batch_size)] + [[j] for j in short]
    for chunk in tqdm(chunks, desc="predicting", disable=not progress, unit="batch"):
        x = np.stack([signals[i][:, s : s + n] for i, s, n in chunk]).astype(np.float32)
        e = (
            None
            if extra is None
            else torch.as_tensor(extra[[i for i, _, _ in chunk]], dtype=torch.float32, device=device)
        )
        probs = model.probabilities(model(torch.as_tensor(x, device=device), e)).float().cpu().numpy()
        for (i, s, n), p in zip(chunk, probs, strict=True):
            if per_sample:
                sums[i][:, s : s + n] += p.T  # (K, n)
                counts[i][s : s + n] += 1
            else:
                sums[i] += p
                counts[i] += 1
    if per_sample:
        return [s / np.maximum(c, 1) for s, c in zip(sums, counts, strict=True)]
    return np.stack([s / c for s, c in zip(sums, counts, strict=True)])


# -- losses and thresholds ------------------------------------------------------------------------
def _loss_fn(kind: str, data: TaskData, n_outputs: int, mode: str) -> Any:
    if kind == "multiclass":
        weight = None
        if mode == "balanced":
            counts = np.bincount(np.asarray(data.targets), minlength=n_outputs).astype(np.float64)
            # capped like the binary weights: a class of a handful of items must not dominate the loss
            balanced = np.minimum(len(data) / (n_outputs * np.maximum(counts, 1)), 20.0)
            weight = torch.tensor(balanced, dtype=torch.float32)
        return lambda logits, y: F.cross_entropy(logits, y.long(), weight=None if weight is None else weight.to(logits))
    if kind == "per-sample":
        positive = float(np.mean([t.mean() for t in data.targets])) if mode == "balanced" else 0.5
        pos_weight = torch.tensor(min(20.0, (1 - positive) / max(positive, 1e-4)))
        # logits (B, T, K); targets (B, K, T)
        return lambda logits, y: F.binary_cross_entropy_with_logits(
            logits, y.transpose(1, 2).to(logits), pos_weight=pos_weight.to(logits)
        )
    y_all = np.asarray(data.targets, dtype=np.float64).reshape(len(data), -1)
    pos = y_all.mean(axis=0)
    pw = torch.tensor(np.clip((1 - pos) / np.maximum(pos, 1e-4), 1.0, 20.0), dtype=torch.float32)
    if mode != "balanced":
        pw = torch.ones_like(pw)
    return lambda logits, y: F.binary_cross_entropy_with_logits(
        logits, y.reshape(logits.shape).to(logits), pos_weight=pw.to(logits)
    )


def choose_thresholds(kind: str, targets: Any, probs: Any) -> list[float] | None:
    """Per-output thresholds maximising F1 on validation data (binary and multi-label tasks)."""
    if kind not in ("binary", "multilabel"):
        return None
    y = np.asarray(targets).reshape(len(probs), -1).astype(bool)
    p = np.asarray(probs).reshape(len(probs), -1)
    grid = np.linspace(0.05, 0.95, 19)
    out = []
    for k in range(p.shape[1]):
        pred = p[:, k : k + 1] >= grid  # (N, G)
        tp = (pred & y[:, k : k + 1]).sum(axis=0)
        f1 = 2 * tp / np.maximum(pred.sum(axis=0) + y[:, k].sum(), 1)
        out.append(float(grid[int(np.argmax(f1))]))
    return out


# -- splits ---------------------------------------------------------------------------------------
def assign_folds(data: TaskData, n_folds: int, seed: int) -> np.ndarray:
    """Fold of each item: grouped by patient, stratified by ``data.strata`` where it helps."""
    frame = pd.DataFrame({"record_id": np.arange(len(data)).astype(str), "patient_id": data.groups.astype(str)})
    strata = data.strata if data.strata is not None else False
    return grouped_kfold(frame, n_folds, seed=seed, stratify=strata).to_numpy()


def fraction_of_patients(
    groups: np.ndarray, fraction: float, seed: int, strata: np.ndarray | None = None
) -> np.ndarray:
    """Positions of the items of a random ``fraction`` of the patients (at least one patient).

    Nested: with one seed, every smaller fraction's patients are among a larger one's (the patients are
    put in one random order and a fraction takes its first ones), so a low-label curve adds labels
    instead of drawing new records at each point. With ``strata`` (a label per item), the order keeps
    each patient class (its most common label) in proportion at every length, so a rare class is
    neither lost nor crowded in a small fraction."""
    if fraction >= 1:
        return np.arange(len(groups))
    patients, inverse = np.unique(groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    key = rng.random(len(patients))
    if strata is not None:
        # each patient's class, then its rank within that class in random order, as a share of the class:
        # sorting by that share interleaves the classes in proportion
        items = pd.DataFrame({"patient": inverse, "label": np.asarray(strata).astype(str)})
        patient_class = items.groupby("patient")["label"].agg(lambda v: v.mode().iloc[0]).to_numpy()
        share = np.empty(len(patients))
        for c in np.unique(patient_class):
            members = np.flatnonzero(patient_class == c)
            ranks = np.argsort(np.argsort(key[members]))
            share[members] = (ranks + rng.random(len(members))) / len(members)
        key = share
    chosen = np.argsort(key, kind="stable")[: max(1, math.ceil(fraction * len(patients)))]
    return np.flatnonzero(np.isin(inverse, chosen))


def _strata(data: TaskData, index: np.ndarray) -> np.ndarray | None:
    return None if data.strata is None else np.asarray(data.strata)[index]


def split_train_val(data: TaskData, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training and validation items, split by patient (about ``val_fraction`` for validation)."""
    patients = len(np.unique(data.groups))
    if patients < 2:
        raise CardiolensError(
            f"{patients} patient(s) left for training: a validation split needs at least 2 (use more data or labels)"
        )
    folds = assign_folds(data, min(max(2, round(1 / val_fraction)), patients), seed + 1)
    return np.flatnonzero(folds != 0), np.flatnonzero(folds == 0)


def fixed_roles(data: TaskData, split: str) -> np.ndarray | None:
    """Each item's role in the data's published split (``"train"``/``"val"``/``"test"``), or None to cross-validate."""
    named = data.info.get("split")
    if split == "cv" or (split == "auto" and not named):
        return None
    where = data.info.get("dataset", "the data")
    if not named:
        raise CardiolensError(f"{where}: split 'fixed' needs a published split, and this data names none")
    roles = np.array([named.get(str(i), "") for i in data.item_ids], dtype=object)
    for role in ("train", "test"):
        if not (roles == role).any():
            raise CardiolensError(f"{where}: the published split has no {role!r} items here")
    return roles


def fixed_train_val(data: TaskData, roles: np.ndarray, cfg: FinetuneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Item indices of training and validation under a published split: its own validation items, or a
    validation split carved by patient from its training items when it names none."""
    pool = np.flatnonzero(roles == "train")
    pool = pool[fraction_of_patients(data.groups[pool], cfg.label_fraction, cfg.seed, _strata(data, pool))]
    if (roles == "val").any():
        return pool, np.flatnonzero(roles == "val")
    train_pos, val_pos = split_train_val(data.subset(pool), cfg.val_fraction, cfg.seed)
    return pool[train_pos], pool[val_pos]


def _subsample(data: TaskData, max_items: int | None, seed: int) -> TaskData:
    if not max_items or len(data) <= max_items:
        return data
    # whole patients: one part of a patient-grouped split, at most one part per patient (a task whose
    # items are windows has many per patient, so a small max_items keeps one patient's, more than asked)
    parts = min(max(2, math.ceil(len(data) / max_items)), len(np.unique(data.groups)))
    if parts < 2:
        return data  # one patient: nothing to choose between
    folds = assign_folds(data, parts, seed + 7)
    return data.subset(np.flatnonzero(folds == 0))


# -- one fold -------------------------------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class TrainingStopped(Exception):
    """Raised by :func:`train_fold` at ``stop_at_epoch``: the fold's ``last.pt`` holds its progress."""

    def __init__(self, folder: Path, epoch: int):
        super().__init__(f"{folder}: stopped after epoch {epoch}")
        self.folder, self.epoch = folder, epoch


def _gather_rng_states(world: int) -> torch.Tensor | None:
    """Every process's torch random state, (world, state bytes) in rank order; None in one process."""
    if world == 1:
        return None
    import torch.distributed as dist

    states = [torch.empty_like(torch.get_rng_state()) for _ in range(world)]
    dist.all_gather(states, torch.get_rng_state())
    return torch.stack(states)


def _restore_rng(saved: dict[str, Any], fabric: Any, folder: Path) -> None:
    """Each process's torch random stream as it was when ``last.pt`` was written (on CPU; a GPU has its own)."""
    ranks = saved.get("torch_rng_ranks")
    if ranks is not None and len(ranks) == fabric.world_size:
        torch.set_rng_state(ranks[fabric.global_rank].clone())
    elif "torch_rng" in saved:
        if fabric.world_size > 1:
            log.warning("%s: saved with another number of processes; dropout resumes from rank 0's stream", folder)
        torch.set_rng_state(saved["torch_rng"])


def train_fold(
    model: TaskModel, task: Task, train: TaskData, val: TaskData, cfg: FinetuneConfig, folder: Path, fabric: Any
) -> dict[str, Any]:
    """Train ``model`` on ``train`` with early stopping on ``val``; the best weights end in ``model``.

    Resumes from ``folder/last.pt`` (the state after the last finished epoch) when it exists.
    """
    folder.mkdir(parents=True, exist_ok=True)
    param_groups = apply_policy(model, cfg.policy, cfg.lr, cfg.llrd_decay)
    optimizer = torch.optim.AdamW(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    model, optimizer = fabric.setup(model, optimizer)
    task_model: TaskModel = model.module if hasattr(model, "module") else model
    loss_fn = _loss_fn(task.kind, train, task_model.config.num_outputs, cfg.class_weights)
    window = task_model.config.window
    steps_per_epoch = math.ceil(len(train) * cfg.crops_per_item / cfg.batch_size)
    # small label fractions get more epochs, so that every run takes at least min_steps steps
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))
    total = steps_per_epoch * epochs
    patience = cfg.patience * max(1, epochs // cfg.epochs)
    warmup = max(1, steps_per_epoch // 2)
    state: dict[str, Any] = {"epoch": 0, "best": -math.inf, "best_epoch": -1, "history": [], "best_state": None}
    last = folder / "last.pt"
    if last.exists():
        saved = torch.load(last, map_location="cpu", weights_only=True)
        task_model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        _restore_rng(saved, fabric, folder)
        log.warning("resuming %s after epoch %d", folder, state["epoch"])
    step = state["epoch"] * steps_per_epoch
    for epoch in range(state["epoch"], epochs):
        if epoch - state["best_epoch"] > patience and state["best_epoch"] >= 0:
            break
        frozen_eval(task_model, cfg.policy)
        batches = training_batches(
            train, window, cfg.batch_size, cfg.training_seed, epoch, cfg.crops_per_item, cfg.augment
        )
        rank, world = fabric.global_rank, fabric.world_size
        bar = tqdm(batches, desc=f"{folder.name} epoch {epoch + 1}/{epochs}", disable=not cfg.progress or rank)
        t0, seen, running = time.perf_counter(), 0, 0.0
        for idx, x, y, e in bar:
            if len(idx) < world:  # a last batch too small to give every process an item is dropped
                step += 1
                continue
            # each rank trains on its slice of the global batch and DDP averages the gradients. Not the
            # weights of one process: batch norm normalises each slice apart, and an uneven last batch
            # weighs its items unequally
            x, y = x[rank::world], np.asarray(y)[rank::world]
            e = None if e is None else e[rank::world]
            factor = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            xt = torch.as_tensor(x, device=fabric.device)
            et = None if e is None else torch.as_tensor(e, dtype=torch.float32, device=fabric.device)
            loss = loss_fn(model(xt, et), torch.as_tensor(y, device=fabric.device))
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            if cfg.grad_clip:
                fabric.clip_gradients(model, optimizer, max_norm=cfg.grad_clip, error_if_nonfinite=False)
            optimizer.step()
            step += 1
            seen += len(idx)
            # the mean of the processes' slice losses, not rank 0's alone (with class weights or an uneven
            # last batch it is close to, not exactly, the whole batch's loss)
            value = float(fabric.all_reduce(loss.detach(), reduce_op="mean")) if world > 1 else loss.detach().item()
            running = 0.9 * running + 0.1 * value if seen > len(idx) else value
            bar.set_postfix(loss=f"{running:.3f}", items_s=f"{seen / (time.perf_counter() - t0):.0f}")
        val_probs = predict_items(task_model, val.signals, val.extra, batch_size=cfg.batch_size)
        thresholds = choose_thresholds(task.kind, val.targets, val_probs)
        scores = task.score(val.targets, val_probs, thresholds)
        value = float(scores[task.score_key])
        if world > 1:  # every process follows rank 0's validation (its batch-norm statistics are the ones saved),
            # so all choose the same best epoch and stop together
            value, thresholds = fabric.broadcast((value, thresholds), src=0)
        _warn_undefined(value, task, folder.name, epoch)
        state["history"].append({"epoch": epoch + 1, "train_loss": running, f"val_{task.score_key}": value})
        log.info("%s epoch %d: loss %.4f, val %s %.4f", folder.name, epoch + 1, running, task.score_key, value)
        if state["best_state"] is None or _rank(value) > state["best"]:
            state.update(best=_rank(value), best_epoch=epoch, thresholds=thresholds)
            state["best_state"] = {k: v.detach().clone() for k, v in task_model.state_dict().items()}
        state["epoch"] = epoch + 1
        # every process's random stream (dropout), so that a resumed run continues each one
        rng_states = _gather_rng_states(world)
        if fabric.global_rank == 0:
            tmp = last.with_name(f".{last.name}.tmp")
            torch.save(
                {
                    "model": task_model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "state": state,
                    "torch_rng": torch.get_rng_state(),
                    **({"torch_rng_ranks": rng_states.cpu()} if rng_states is not None else {}),
                },
                tmp,
            )
            os.replace(tmp, last)
        if cfg.stop_at_epoch is not None and state["epoch"] >= cfg.stop_at_epoch and state["epoch"] < epochs:
            fabric.barrier()  # last.pt is written before any process returns
            raise TrainingStopped(folder, state["epoch"])
    if state["best_state"] is not None:
        task_model.load_state_dict(state["best_state"])
    task_model.config.thresholds = state.get("thresholds")
    task_model.eval()
    return {"best_epoch": state["best_epoch"] + 1, "val_score": state["best"], "history": state["history"]}


# -- linear probe on cached features --------------------------------------------------------------
@torch.no_grad()
def window_features(
    model: TaskModel, signals: list[np.ndarray], batch_size: int = 64, progress: bool = False
) -> list[np.ndarray]:
    """Pooled backbone features (windows, D) of every item, over the same windows :func:`predict_items` reads."""
    model.eval()
    window = model.config.window
    jobs = [(i, s, window) for i, x in enumerate(signals) for s in window_starts(x.shape[-1], window, window)]
    jobs = [(i, s, min(n, signals[i].shape[-1])) for i, s, n in jobs]
    full = [j for j in jobs if j[2] == window]
    chunks = [full[s : s + batch_size] for s in range(0, len(full), batch_size)] + [[j] for j in jobs if j[2] != window]
    found: dict[int, list[np.ndarray]] = {i: [] for i in range(len(signals))}
    for chunk in tqdm(chunks, desc="backbone features", disable=not progress, unit="batch"):
        x = torch.as_tensor(np.stack([signals[i][:, s : s + n] for i, s, n in chunk]).astype(np.float32))
        feats = model.pool_features(model.forward_features(x)).float().numpy()
        for (i, _, _), f in zip(chunk, feats, strict=True):
            found[i].append(f)
    return [np.stack(found[i]) for i in range(len(signals))]


def _warn_undefined(value: float, task: Task, where: str, epoch: int) -> None:
    """Say once (first epoch) that the validation score cannot rank epochs: the first one is kept."""
    if epoch == 0 and not math.isfinite(value):
        log.warning(
            "%s: validation %s is undefined (the validation part has one class only): epochs cannot be "
            "compared and the first is kept; use more items, a larger --val_fraction or --label_fraction",
            where,
            task.score_key,
        )


def _rank(score: float) -> float:
    """A validation score to compare: an undefined one (NaN) ranks below every defined one."""
    return score if math.isfinite(score) else -math.inf


def _test_probs(model: TaskModel, test: TaskData, feats: list[np.ndarray] | None, batch_size: int) -> Any:
    """Test-item probabilities: from the cached window features of a linear probe, else a forward pass."""
    if feats is not None:
        return _probe_probs(model, feats, test.extra)
    return predict_items(model, test.signals, test.extra, batch_size=batch_size)


def _probe_probs(model: TaskModel, feats: list[np.ndarray], extra: np.ndarray | None) -> np.ndarray:
    """Record probabilities from cached window features: the mean of the window probabilities."""
    with torch.no_grad():
        out = []
        for i, f in enumerate(feats):
            e = None if extra is None else torch.as_tensor(np.repeat(extra[i : i + 1], len(f), 0), dtype=torch.float32)
            out.append(model.probabilities(model.forward_head(torch.as_tensor(f), e)).mean(dim=0).numpy())
        return np.stack(out)


def train_linear_probe(
    model: TaskModel,
    task: Task,
    train: TaskData,
    val: TaskData,
    feats_train: list[np.ndarray],
    feats_val: list[np.ndarray],
    cfg: FinetuneConfig,
) -> dict[str, Any]:
    """Train only the head on cached window features, with early stopping on ``val``.

    Equivalent to ``policy="linear"`` training on fixed (non-random) windows, at a fraction of the
    cost: the frozen backbone runs once per window instead of once per window and epoch.
    """
    head = model.head
    apply_policy(model, "linear", cfg.lr)
    optimizer = torch.optim.AdamW(head.parameters(), lr=cfg.lr * 3, weight_decay=cfg.weight_decay)
    counts = [len(f) for f in feats_train]
    x = torch.as_tensor(np.concatenate(feats_train))
    item = np.repeat(np.arange(len(train)), counts)
    targets = np.asarray(train.targets)
    y = torch.as_tensor(targets[item])
    e = None if train.extra is None else torch.as_tensor(train.extra[item], dtype=torch.float32)
    loss_fn = _loss_fn(task.kind, train, model.config.num_outputs, cfg.class_weights)
    best, best_epoch, best_state, history = -math.inf, -1, None, []
    epochs = max(cfg.epochs, 30)  # one epoch of a linear head costs milliseconds
    rng = np.random.default_rng(cfg.training_seed)
    for epoch in range(epochs):
        if epoch - best_epoch > max(cfg.patience, 5) and best_epoch >= 0:
            break
        model.train()
        model.backbone.eval()
        order = rng.permutation(len(x))
        for s in range(0, len(order), cfg.batch_size):
            idx = torch.as_tensor(order[s : s + cfg.batch_size])
            logits = model.forward_head(x[idx], None if e is None else e[idx])
            loss = loss_fn(logits, y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        probs = _probe_probs(model, feats_val, val.extra)
        thresholds = choose_thresholds(task.kind, val.targets, probs)
        value = float(task.score(val.targets, probs, thresholds)[task.score_key])
        _warn_undefined(value, task, "linear probe", epoch)
        history.append({"epoch": epoch + 1, "train_loss": float(loss.detach()), f"val_{task.score_key}": value})
        # an undefined score (NaN: one class in validation) ranks lowest, and the first epoch is kept if all are
        if best_state is None or _rank(value) > best:
            best, best_epoch = _rank(value), epoch
            best_state = ({k: v.clone() for k, v in head.state_dict().items()}, thresholds)
    head.load_state_dict(best_state[0])
    model.config.thresholds = best_state[1]
    model.eval()
    return {"best_epoch": best_epoch + 1, "val_score": best, "history": history}


# -- the run --------------------------------------------------------------------------------------
def _fabric(cfg: FinetuneConfig) -> Any:
    return launch_fabric(cfg.accelerator, cfg.devices, cfg.num_nodes, cfg.strategy, cfg.precision)


def run_protocol(task: Task, folds: int) -> str:
    """The task's protocol as this run followed it: a run with other than the protocol's number of
    folds says so (the task text names the benchmark's, ``5-fold``)."""
    if f"{folds}-fold" in task.protocol or "-fold" not in task.protocol:
        return task.protocol
    return f"{task.protocol}; this run: {folds} folds"


def model_card(
    cfg: FinetuneConfig, task: Task, model: TaskModel, fold: int, fold_result: dict, data: TaskData, fixed: bool = False
) -> str:
    c = model.config
    weights = "fresh weights" if backbone_is_fresh(cfg.backbone, cfg.from_scratch) else "pretrained"
    patients = len(np.unique(data.groups))
    return "\n".join(
        [
            f"# {c.name}",
            "",
            f"Fine-tuned by cardiolens for **{task.name}**: {task.description}.",
            "",
            f"- Backbone: `{cfg.backbone}` ({weights}), policy `{cfg.policy}`",
            f"- Input: {len(c.leads)} lead(s) {', '.join(c.leads)} at {c.fs:g} Hz, windows of {c.window} samples "
            f"({c.window / c.fs:g} s); longer records are windowed and the window probabilities averaged",
            f"- Outputs: {', '.join(c.classes)} ({c.kind}); thresholds {c.thresholds}",
            f"- Data: {data.info.get('dataset', cfg.data)}, {len(data)} items of {patients} patients",
            (
                "- Protocol: the data's published train / validation / test split; this model never saw the test items"
                if fixed
                else f"- Protocol: {run_protocol(task, cfg.folds)}; this is the model of fold {fold} of {cfg.folds} "
                f"(seed {cfg.seed}): it never saw that fold's items"
            ),
            f"- Label fraction: {cfg.label_fraction:g}; best epoch {fold_result['best_epoch']} "
            f"(validation {task.score_key} {fold_result['val_score']:.4f})",
            f"- Test fold {fold}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in fold_result["test"].items() if isinstance(v, float)),
            "",
            "Command: `" + command_line(cfg) + "`",
            "",
            "Not a medical device: for research use.",
        ]
    )


# config fields a model card's command leaves out: arguments, options the CLI does not expose, and
# options that do not change the result
NOT_IN_COMMAND = ("task", "data", "progress", "grad_clip", "num_nodes", "stop_at_epoch")


def command_line(cfg: FinetuneConfig) -> str:
    defaults = FinetuneConfig(task=cfg.task, data=cfg.data)
    parts = ["cardiolens", "finetune", cfg.task, cfg.data]
    for f in dataclasses.fields(cfg):
        if f.name in NOT_IN_COMMAND:
            continue
        value = getattr(cfg, f.name)
        if value != getattr(defaults, f.name):
            parts += [f"--{f.name}", json.dumps(value) if isinstance(value, (list, dict)) else str(value)]
    return shlex.join(parts)


# the scores of each task kind that depend on the decision threshold (the others rank probabilities)
THRESHOLD_KEYS = {
    "binary": ("sensitivity", "ppv", "f1", "threshold"),
    "multilabel": ("macro_f1",),
    "per-sample": ("f1", "se", "ppv", "tp", "fn", "fp", "threshold"),
}


def _moved_to_half(probs: Any, thresholds: Any) -> Any:
    """Probabilities shifted on the logit scale so that ``thresholds`` falls at 0.5: deciding at 0.5
    afterwards is deciding at the threshold (per item: a curve or a row, each with its own)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    t = np.clip(np.asarray(thresholds, dtype=np.float64), 1e-7, 1 - 1e-7)
    if p.ndim == 2:  # a per-sample curve (outputs, samples): one threshold per output
        t = t.reshape(-1, 1)
    return 1 / (1 + np.exp(-(np.log(p / (1 - p)) - np.log(t / (1 - t)))))


def summarise(
    task: Task,
    data: TaskData,
    probs: Any,
    thresholds: Any = None,
    n_resamples: int = 1000,
    item_thresholds: list | None = None,
) -> dict[str, Any]:
    """The task's scores over all items, each with a patient bootstrap 95 % interval (one set of resamples).

    ``thresholds``: one set for all items (None: 0.5). ``item_thresholds``: each item's own (the
    thresholds its fold chose on validation data, None for 0.5), for out-of-fold probabilities: the
    scores that depend on a threshold (:data:`THRESHOLD_KEYS`) then decide each item at its fold's,
    the others read the probabilities as they are, and no single ``threshold`` is reported."""
    targets = data.targets
    per_item = isinstance(targets, list) or isinstance(probs, list)
    moved = None
    if item_thresholds is not None and task.kind in THRESHOLD_KEYS:
        moved = [p if t is None else _moved_to_half(p, t) for p, t in zip(probs, item_thresholds, strict=True)]
        moved = moved if per_item else np.asarray(moved)

    def scores(ix: np.ndarray) -> dict[str, float]:
        def at(values: Any) -> Any:
            return [values[i] for i in ix] if per_item else np.asarray(values)[ix]

        out = task.score(at(targets), at(probs), thresholds)
        if moved is not None:
            decided = task.score(at(targets), at(moved), None)
            out.update({k: decided[k] for k in THRESHOLD_KEYS[task.kind] if k in decided})
            out.pop("threshold", None)
        return out

    full = scores(np.arange(len(data)))
    labels = None if per_item else np.asarray(targets)  # multi-label: resamples that lose a label are skipped
    intervals = bootstrap_scores(scores, len(data), groups=data.groups, labels=labels, n_resamples=n_resamples)
    out: dict[str, Any] = {}
    for key, value in full.items():
        if key in intervals and key != "threshold":
            i = intervals[key]
            out[key] = {"value": i.value, "low": i.low, "high": i.high}
        else:
            out[key] = {"value": value}
    return out


def _cached_features(
    cfg: FinetuneConfig,
    task: Task,
    backbone: nn.Module,
    digest: str,
    data: TaskData,
    fs: float,
    window: int,
) -> list[np.ndarray]:
    """Window features of the frozen backbone for every item, computed once per run (``features.npz``)."""
    # keyed by what the features depend on, so that runs differing only in folds, fractions or
    # head settings (a low-label curve) share one pass of the frozen backbone
    key = json.dumps(
        [
            cfg.backbone,
            digest,  # the weights' digest, computed once per run by finetune()
            cfg.from_scratch,
            cfg.seed,
            task.name,
            fs,
            window,
            data.item_ids.tolist(),
            data.info.get("dataset"),
        ]
    )
    folder = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = (
        folder / f"features-{task.name}-{Path(cfg.backbone).stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    )
    if path.exists():
        with np.load(path) as z:
            counts, flat = z["counts"], z["features"]
        if len(counts) == len(data):
            return np.split(flat, np.cumsum(counts)[:-1])
    model = build_task_model(
        backbone,
        task=task.name,
        kind=task.kind,
        classes=["x"] * max(1, len(task.classes or [1])),
        fs=fs,
        leads=data.leads,
        window=window,
        backbone_name=cfg.backbone,
    )
    feats = window_features(model, data.signals, cfg.batch_size, cfg.progress)
    write_npz(path, counts=np.array([len(f) for f in feats]), features=np.concatenate(feats))
    return feats


# settings that name files or folders: recorded as absolute paths, compared as the folders they name
PATH_SETTINGS = ("data", "backbone")


def _read_run_record(run_file: Path) -> dict[str, Any] | None:
    """The settings a run folder recorded, or ``None`` where it has none yet.

    Raises:
        CardiolensError: a ``run.json`` that is not a JSON object (a damaged or foreign file).
    """
    if not run_file.exists():
        return None
    try:
        record = json.loads(run_file.read_text())
    except (OSError, ValueError) as exc:
        raise CardiolensError(f"{run_file}: cannot be read as a run's settings ({exc}); choose a new --out") from None
    if not isinstance(record, dict):
        raise CardiolensError(f"{run_file}: not a run's settings (a JSON object); choose a new --out")
    return record


def finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    """Cross-validated fine-tuning of ``cfg.backbone`` on ``cfg.task``; see the module notes for the run folder.

    Returns:
        The results: per-fold scores, out-of-fold scores with bootstrap intervals, the settings.
    """
    task = get_task(cfg.task)
    check_launch_environment(cfg.accelerator, cfg.devices, cfg.num_nodes)  # before the data are read
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = output_folder(cfg.out, create=False)  # a file named as --out is refused before the data are read
    run_file = out / "run.json"
    settings = {
        k: v
        for k, v in dataclasses.asdict(cfg).items()
        if k not in ("progress", "threads", "fold_ids", "stop_at_epoch")
    }
    probe = resolve_backbone(cfg.backbone, cfg.from_scratch)
    pretrained_on = getattr(probe.config, "modality", None)
    # a pretrained GPT's tokens stand for one signal (its vocabulary is ECG or PPG shapes); a CNN's
    # preset modality is only a default, so it may train on either
    if uses_tokens(probe) and not backbone_is_fresh(cfg.backbone, cfg.from_scratch) and pretrained_on:
        if pretrained_on.upper() != task.modality.upper():
            raise CardiolensError(
                f"{cfg.backbone} was pretrained on {pretrained_on} and {task.name} reads {task.modality}; "
                f"choose a backbone pretrained on {task.modality} (or --from_scratch true)"
            )
    digest = weights_digest(probe)
    if not backbone_is_fresh(cfg.backbone, cfg.from_scratch):
        settings["backbone_sha256"] = digest  # same name, retrained weights: a different run
    before = _read_run_record(run_file)
    if (out / "last.pt").exists() or "config" in (before or {}):
        raise CardiolensError(f"{out}: holds a pretraining run (cardiolens pretrain); use a new --out")

    fs = backbone_fs(probe, task)
    data = load_task_data(task, cfg.data, fs, cache_dir=cfg.cache_dir, **{"progress": cfg.progress, **cfg.load_options})
    data = _subsample(data, cfg.max_items, cfg.seed)
    roles = fixed_roles(data, cfg.split)
    # a CNN backbone reads the task's number of leads: a trained one keeps its weights (its input layer
    # adapted, or the run refused), built once here so that a probe's features and its saved model agree
    keep_weights = not backbone_is_fresh(cfg.backbone, cfg.from_scratch)
    probe, adapted = fit_input_channels(probe, len(data.leads), keep_weights, name=cfg.backbone)
    adapted = adapted if keep_weights else ""  # a fresh backbone is built for the task's leads anyway
    if adapted:
        log.warning("%s", adapted)
    settings["backbone_input"] = adapted  # a run started before trained backbones were adapted is another run
    settings = recorded(settings, PATH_SETTINGS)
    if before is not None:
        known = {**defaults_of(FinetuneConfig), "backbone_input": ""}
        check_same_run(out, before, settings, PATH_SETTINGS, defaults=known)
    if roles is None:
        folds = assign_folds(data, cfg.folds, cfg.seed)
    else:
        if cfg.fold_ids not in (None, [0]):
            raise CardiolensError(f"{cfg.data}: a published split is one fold (0); there are no folds {cfg.fold_ids}")
        fixed_train, fixed_val = fixed_train_val(data, roles, cfg)
    # the settings are recorded only once the backbone, the data and the split are known to work: a
    # mistyped --backbone or data folder, or too few patients for the folds, must not bind --out to
    # settings that never ran
    output_folder(out)
    write_json(run_file, settings, default=_jsonable)
    if roles is None:
        fold_list = list(cfg.fold_ids) if cfg.fold_ids is not None else list(range(cfg.folds))
        # folds finished by earlier calls with other --fold_ids (same settings) are read back, so the
        # out-of-fold summary covers every fold done so far, not only this call's
        done_before = [k for k in range(cfg.folds) if (out / f"fold-{k}" / "result.json").exists()]
        fold_list = sorted(set(fold_list) | {k for k in done_before if (out / f"fold-{k}" / "model").exists()})
        write_json(
            out / "folds.json", dict(zip(data.item_ids.tolist(), folds.tolist(), strict=True)), default=_jsonable
        )
    else:
        folds, fold_list = np.where(roles == "test", 0, -1), [0]
        used = np.full(len(data), "unused", dtype=object)
        used[roles == "test"], used[fixed_train], used[fixed_val] = "test", "train", "val"
        write_json(out / "folds.json", dict(zip(data.item_ids.tolist(), used.tolist(), strict=True)), default=_jsonable)
    fabric = _fabric(cfg)
    classes = list(task.classes) if task.classes else list(data.info.get("classes", []))
    window = window_samples(probe, task, fs, cfg.window_seconds)
    fold_results, fold_thresholds = {}, {}
    probe_features = None
    if cfg.policy == "linear" and task.kind != "per-sample":
        # the probe trains on cached features, the same in any number of processes: rank 0 computes
        # them, the others read its cache and repeat the (cheap, deterministic) probe
        if fabric.world_size > 1 and fabric.global_rank == 0:
            log.warning(
                "the linear probe runs on cached features; the other %d process(es) repeat it", fabric.world_size - 1
            )
        if fabric.global_rank == 0:
            probe_features = _cached_features(cfg, task, probe, weights_digest(probe), data, fs, window)
        fabric.barrier()
        if fabric.global_rank != 0:
            probe_features = _cached_features(cfg, task, probe, weights_digest(probe), data, fs, window)
    oof: Any = [None] * len(data) if task.kind == "per-sample" else None
    for fold in fold_list:
        folder = out / f"fold-{fold}"
        result_file = folder / "result.json"
        test_index = np.flatnonzero(folds == fold)
        test = data.subset(test_index)
        test_feats = None if probe_features is None else [probe_features[i] for i in test_index]
        if result_file.exists() and (folder / "model").exists():
            fold_results[fold] = json.loads(result_file.read_text())
            model = load_model(folder / "model")
            probs = _test_probs(model, test, test_feats, cfg.batch_size)
        else:
            if roles is None:
                pool = np.flatnonzero(folds != fold)
                pool = pool[
                    fraction_of_patients(data.groups[pool], cfg.label_fraction, cfg.seed + fold, _strata(data, pool))
                ]
                train_pos, val_pos = split_train_val(data.subset(pool), cfg.val_fraction, cfg.seed + fold)
                train_index, val_index = pool[train_pos], pool[val_pos]
            else:
                train_index, val_index = fixed_train, fixed_val
            train, val = data.subset(train_index), data.subset(val_index)
            torch.manual_seed(cfg.training_seed + fold)
            # the probe's features were computed with ``probe``: its head must read that same backbone
            if probe_features is not None:
                backbone = copy.deepcopy(probe)
            else:
                fresh = resolve_backbone(cfg.backbone, cfg.from_scratch)
                backbone = fit_input_channels(fresh, len(data.leads), keep_weights, name=cfg.backbone)[0]
            model = build_task_model(
                backbone,
                task=task.name,
                kind=task.kind,
                classes=classes,
                fs=fs,
                leads=data.leads,
                window=window,
                backbone_name=cfg.backbone,
                n_extra=task.n_extra,
                name=f"{task.name}-{Path(cfg.backbone).stem}-{cfg.policy}",
            )
            if probe_features is not None:
                result = train_linear_probe(
                    model,
                    task,
                    train,
                    val,
                    [probe_features[i] for i in train_index],
                    [probe_features[i] for i in val_index],
                    cfg,
                )
            else:
                try:
                    result = train_fold(model, task, train, val, cfg, folder, fabric)
                except TrainingStopped as stopped:
                    return {"stopped": True, "fold": fold, "epoch": stopped.epoch, "out": str(out)}
            probs = _test_probs(model, test, test_feats, cfg.batch_size)
            scores = task.score(test.targets, probs, model.config.thresholds)
            result.update(
                fold=fold,
                n_train=len(train),
                n_val=len(val),
                n_test=len(test),
                test={k: float(v) for k, v in scores.items()},
            )
            if fabric.global_rank == 0:
                split = {
                    "fold": fold,
                    "test": test.item_ids.tolist(),
                    "val": val.item_ids.tolist(),
                    "train": train.item_ids.tolist(),
                }
                save_checkpoint(
                    model,
                    folder / "model",
                    model_card(cfg, task, model, fold, result, data, fixed=roles is not None),
                    overwrite=True,
                    extra_files={"split.json": json.dumps(split)},
                )
                write_json(result_file, result, default=_jsonable)
            fold_results[fold] = result
        fold_thresholds[fold] = model.config.thresholds  # chosen on this fold's validation data (or None)
        if task.kind == "per-sample":
            for i, p in zip(test_index, probs, strict=True):
                oof[i] = p
        else:
            if oof is None:
                oof = np.full((len(data), probs.shape[1]), np.nan)
            oof[test_index] = probs
    done = [
        i for i in range(len(data)) if (oof[i] is not None if isinstance(oof, list) else not np.isnan(oof[i]).any())
    ]
    done = np.asarray(done, dtype=np.int64)
    covered = data.subset(done)
    oof_done = [oof[i] for i in done] if isinstance(oof, list) else oof[done]
    results = {
        "task": task.name,
        "protocol": task.protocol if roles is not None else run_protocol(task, cfg.folds),
        "backbone": cfg.backbone,
        "backbone_weights": settings.get("backbone_sha256", "fresh"),  # sha256 of the trained weights it started from
        "backbone_adapted": adapted or None,  # how a backbone of other leads was made to read the task's
        "policy": cfg.policy,
        "label_fraction": cfg.label_fraction,
        "split": "cross-validation" if roles is None else "fixed",
        "folds": {str(k): v for k, v in fold_results.items()},
        "items": int(len(done)),
        "patients": int(len(np.unique(covered.groups))),
        "command": command_line(cfg),
    }
    # out-of-fold: the scores that need a threshold decide each item at the threshold its own fold
    # chose on validation data (as the fold's model and `cardiolens evaluate` do); the others pool
    # the probabilities
    item_thresholds = [fold_thresholds.get(int(folds[i])) for i in done]
    results["oof"] = summarise(task, covered, oof_done, None, cfg.bootstrap, item_thresholds=item_thresholds)
    if fabric.global_rank == 0:
        if isinstance(oof, list):
            write_npz(
                out / "oof.npz", item_ids=covered.item_ids, **{f"p{i}": p for i, p in zip(done, oof_done, strict=True)}
            )
        else:
            write_npz(out / "oof.npz", item_ids=covered.item_ids, probs=oof_done, targets=np.asarray(covered.targets))
        write_json(out / "results.json", results, default=_jsonable)
    return results


__all__ = [
    "LABEL_FRACTIONS",
    "POLICIES",
    "FinetuneConfig",
    "TaskModel",
    "apply_policy",
    "choose_thresholds",
    "finetune",
    "predict_items",
    "resolve_backbone",
    "summarise",
    "train_fold",
]
