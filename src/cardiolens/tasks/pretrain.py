"""Next-token pretraining of GPT models on tokenised heart signals, on Lightning Fabric.

The loop is written once for any number of devices and nodes: ``devices=2, strategy="ddp"`` runs two
processes (gloo on CPU, NCCL on GPUs) and ``num_nodes`` spreads them over machines; nothing else
changes. Each optimisation step draws one *global* batch that is a pure function of ``(seed, step)``
and every rank takes its slice, so a run gives the same model whether it was interrupted or not and
(up to float rounding) whatever the number of processes.

A run lives in one folder::

    run/run.json         the settings (a resumed run must keep them)
    run/split.json       the records of every source that were held out (never trained on)
    run/log.jsonl        one line per logged step: loss, learning rate, tokens/s, held-out loss
    run/last.pt          training state (weights, optimiser, step), written atomically
    run/model/           the latest weights as a cardiolens checkpoint with its model card
    run/best/            the weights with the lowest held-out loss so far

Starting the same command again resumes from ``last.pt``: the step, the optimiser state, the
learning-rate schedule and the batches go on where they stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cardiolens.atomic import output_folder, write_json
from cardiolens.errors import CardiolensError
from cardiolens.models import create_model, save_checkpoint
from cardiolens.tasks.data import TokenBatches, check_sources, open_sources
from cardiolens.tasks.parallel import check_launch_environment, check_parallel_options, launch_fabric
from cardiolens.tasks.run_identity import check_same_run, defaults_of, recorded

log = logging.getLogger(__name__)

STATE_FILE = "last.pt"
HELDOUT_FILE = "heldout.json"


@dataclass
class PretrainConfig:
    """Settings of a GPT pretraining run. The defaults train ``ecgpt-small`` on this CPU in minutes.

    Attributes:
        data: dataset folders in their publishers' layouts, each optionally ``#LEAD``
            (default lead: I for ECG, PLETH for PPG).
        model: registry preset.
        model_overrides: config fields to change (e.g. ``{"n_layer": 4}``).
        weights: sampling weight of each source (default: proportional to its windows).
        out: run folder.
        max_steps: optimisation steps (fixes the learning-rate schedule; keep it when resuming).
        batch_size: global batch (windows per step, over all processes).
        lr, min_lr: peak and final learning rate (linear warm-up, cosine decay).
        warmup_steps: steps of linear warm-up.
        weight_decay: AdamW decay of matrices (not of biases, norms or embeddings).
        betas: AdamW betas.
        grad_clip: gradient norm clip (0: none).
        holdout: fraction of each source's records (by patient) held out for the evaluation loss.
        eval_every: steps between held-out evaluations and checkpoints.
        eval_windows: held-out windows evaluated.
        token_span: ``"window"`` (each context scaled by its own min/max, as at inference) or
            ``"record"`` (by the min/max of the 10 s window it was cut from, as HeartGPT trained).
        seed: seeds the model, the split and the batches.
        precision: Fabric precision: ``"32-true"`` or ``"bf16-mixed"``.
        accelerator, devices, num_nodes, strategy: passed to Lightning Fabric.
        cache_dir: where window caches are kept (default: ``out/../.window-cache``).
        stop_at: stop (as if killed) after this step, without the final export; for tests and
            for splitting a long run into sessions.
        threads: torch intra-op threads per process (0: torch's default).
        progress: show a progress bar.
    """

    data: list[str] = field(default_factory=list)
    model: str = "ecgpt-small"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    weights: list[float] | None = None
    out: str = "runs/pretrain"
    max_steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    holdout: float = 0.1
    eval_every: int = 200
    eval_windows: int = 256
    token_span: str = "window"
    seed: int = 0
    precision: str = "32-true"
    accelerator: str = "cpu"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    cache_dir: str | None = None
    stop_at: int | None = None
    threads: int = 0
    progress: bool = True

    # settings that may change when a run is resumed (they do not change what is computed)
    RESUMABLE = ("stop_at", "threads", "progress", "eval_windows", "devices", "num_nodes", "strategy", "accelerator")

    def __post_init__(self) -> None:
        for name, least in (
            ("max_steps", 1),
            ("batch_size", 1),
            ("eval_every", 1),
            ("eval_windows", 1),
            ("warmup_steps", 0),
        ):
            if getattr(self, name) < least:
                raise CardiolensError(f"{name} must be at least {least}, got {getattr(self, name)}")
        if not self.lr > 0 or self.min_lr < 0:
            raise CardiolensError(f"lr must be positive and min_lr not negative, got {self.lr} and {self.min_lr}")
        if self.min_lr > self.lr:
            raise CardiolensError(
                f"min_lr ({self.min_lr}) is where the learning rate decays to: at most lr ({self.lr})"
            )
        if self.weights is not None and (
            len(self.weights) != len(self.data)
            or not all(math.isfinite(w) and w >= 0 for w in self.weights)
            or not sum(self.weights) > 0
        ):
            raise CardiolensError(
                f"weights: one non-negative sampling weight per --data source ({len(self.data)}), not all 0; "
                f"got {self.weights}"
            )
        if not 0 < self.holdout < 1:
            raise CardiolensError(
                f"holdout (the share of records held out for the evaluation loss) must be in (0, 1), got {self.holdout}"
            )


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Learning rate of ``step``: linear warm-up to ``lr``, then cosine decay to ``min_lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def _optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    # decay only matrices of linear layers; embeddings, norms and biases are left alone (nanoGPT)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and "wte" not in name and "wpe" not in name else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object file's content; ``{}`` where there is none or it is not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# settings that name files or folders: recorded as absolute paths, compared as the folders they name
PATH_SETTINGS = ("data", "model")


def _check_resume(out: Path, cfg: PretrainConfig) -> None:
    """A resumed run must keep every setting that changes what is computed (paths compared as folders,
    wherever the run folder now is: :mod:`cardiolens.tasks.run_identity`)."""
    saved = _read_json(out / "run.json").get("config")
    if not isinstance(saved, dict):
        raise CardiolensError(
            f"{out}: has a training state (last.pt) but no readable run.json: not a pretraining run, or one whose "
            "run.json was lost; choose a new --out"
        )
    now = json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    defaults = json.loads(json.dumps(defaults_of(PretrainConfig), default=str))
    check_same_run(out, saved, now, PATH_SETTINGS, ignore=PretrainConfig.RESUMABLE, defaults=defaults)


def command_line(cfg: PretrainConfig) -> str:
    """The ``cardiolens pretrain gpt`` command that reproduces ``cfg`` (settings that differ from the defaults)."""
    default = PretrainConfig()
    parts = ["cardiolens pretrain gpt"]
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in ("progress",) or value == getattr(default, f.name):
            continue
        text = json.dumps(list(value) if isinstance(value, tuple) else value)
        parts.append(f"--{f.name} '{text}'" if isinstance(value, list | dict | tuple) else f"--{f.name} {value}")
    return " ".join(parts)


def model_card(cfg: PretrainConfig, model: torch.nn.Module, result: dict[str, Any], split: dict[str, Any]) -> str:
    """Markdown model card of a pretrained GPT: data, held-out records, steps, tokens, held-out loss."""
    mc = model.config
    lines = [
        f"# {mc.name}",
        "",
        f"A decoder-only transformer pretrained by cardiolens on next-token prediction of tokenised {mc.modality} "
        f"at {mc.fs:g} Hz ({mc.n_layer} layers, {mc.n_head} heads, width {mc.n_embd}, context {mc.block_size} "
        f"tokens = {mc.block_size / mc.fs:g} s, {model.num_params():,} parameters).",
        "",
        "## Tokenisation",
        "",
        f"Signal resampled to {mc.fs:g} Hz, no filter; "
        + (
            f"each context min-max scaled to 0..{mc.levels - 1} and rounded (`cardiolens.signal.tokenize`, "
            "token span `window`), as `continue_signal` and fine-tuning do at inference."
            if cfg.token_span == "window"
            else f"each record min-max scaled as a whole to 0..{mc.levels - 1} and rounded "
            "(`cardiolens.signal.tokenize`, token span `record`, HeartGPT's training scheme). At inference "
            "`continue_signal` and fine-tuning scale each window by itself, so a window's tokens there can "
            "differ from those this model was trained on."
        ),
        "",
        "## Data",
        "",
        f"| source | lead | training records | held-out records | training windows ({split['window_seconds']:g} s) |",
        "|---|---|---|---|---|",
    ]
    for s in split["sources"]:
        lines.append(
            f"| `{s['name']}` | {s['lead']} | {len(s['train_ids'])} | {len(s['heldout_ids'])} | {s['train_windows']} |"
        )
    lines += [
        "",
        f"Held-out records (split by patient, {cfg.holdout:.0%} of each source, seed {cfg.seed}) were never "
        f"trained on; `{HELDOUT_FILE}` beside this card lists them."
        + "".join(
            f" {s['name']}: {', '.join(s['heldout_ids'])}." for s in split["sources"] if len(s["heldout_ids"]) <= 12
        ),
        "",
        "## Training",
        "",
        f"- steps: {result['step']:,} of {cfg.max_steps:,}; global batch {cfg.batch_size} x {mc.block_size} tokens",
        f"- tokens seen: {result['tokens_seen']:,}",
        f"- AdamW lr {cfg.lr:g} -> {cfg.min_lr:g} (warm-up {cfg.warmup_steps}, cosine), weight decay "
        f"{cfg.weight_decay:g}, gradient clip {cfg.grad_clip:g}, precision {cfg.precision}",
        f"- held-out next-token cross-entropy: {result['eval_loss']:.4f} nats "
        f"(best {result['best_eval_loss']:.4f}) on {result['eval_tokens']:,} tokens",
        f"- wall time: {result['train_seconds'] / 60:.1f} min on {result['world_size']} process(es)",
        "",
        f"Command: `{command_line(cfg)}`",
        "",
        "Licence: MIT (weights); the training data keep their licences (PhysioNet ODC-By 1.0, PTB-XL CC BY 4.0).",
    ]
    return "\n".join(lines) + "\n"


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokens: torch.Tensor, batch_size: int = 32) -> tuple[float, int]:
    """Summed next-token cross-entropy and token count over ``tokens`` (N, T + 1)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(tokens), batch_size):
        chunk = tokens[i : i + batch_size]
        logits = model(chunk[:, :-1])
        total += float(F.cross_entropy(logits.flatten(0, 1).float(), chunk[:, 1:].flatten(), reduction="sum"))
        count += chunk[:, 1:].numel()
    model.train(was_training)
    return total, count


def _check_language_model(mc: Any, name: str) -> None:
    if getattr(mc, "head", None) != "lm" or getattr(mc, "modality", None) is None or getattr(mc, "fs", None) is None:
        raise CardiolensError(f"{name!r} is not a language model tied to a modality and rate; pick a GPT preset")


def pretrain_gpt(cfg: PretrainConfig) -> dict[str, Any]:
    """Pretrain (or resume pretraining) a GPT preset on next-token prediction.

    Returns:
        A summary: final step, tokens seen, held-out loss, paths of the exported checkpoints.

    Raises:
        CardiolensError: no data, a folder that is not a dataset, a run folder holding a run with
            other settings, a batch that does not divide over the processes.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if not cfg.data:
        raise CardiolensError("pretraining needs at least one dataset folder (--data FOLDER[#LEAD])")
    # everything that can be checked is checked before any process starts: an error raised after
    # the launch comes once per process, buried in the other processes' connection errors
    check_parallel_options(cfg.accelerator, cfg.devices, cfg.num_nodes, cfg.strategy, cfg.precision)
    check_launch_environment(cfg.accelerator, cfg.devices, cfg.num_nodes)
    processes = cfg.devices * cfg.num_nodes
    if cfg.batch_size % processes:
        raise CardiolensError(f"batch_size {cfg.batch_size} does not divide over {processes} processes")
    with torch.random.fork_rng():  # a look at the preset only: the seeded model is made after the launch
        preset = create_model(cfg.model, **cfg.model_overrides).config
    _check_language_model(preset, cfg.model)
    out = output_folder(cfg.out, create=False)  # a file named as --out is refused before the data are read
    check_sources(cfg.data, preset.modality)
    resuming = (out / STATE_FILE).exists()
    if resuming:
        _check_resume(out, cfg)
    elif (out / "folds.json").exists() or "task" in _read_json(out / "run.json"):
        raise CardiolensError(f"{out}: holds a fine-tuning run (cardiolens finetune); choose a new --out")
    fabric = launch_fabric(cfg.accelerator, cfg.devices, cfg.num_nodes, cfg.strategy, cfg.precision)
    rank, world = fabric.global_rank, fabric.world_size
    if cfg.batch_size % world:
        raise CardiolensError(f"batch_size {cfg.batch_size} does not divide over {world} processes")

    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, **cfg.model_overrides)
    mc = model.config

    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else out.parent / ".window-cache"
    # cached windows: whole multiples of 10 s holding one crop of block_size + 1 samples
    window_seconds = 10.0 * math.ceil((mc.block_size + 1) / mc.fs / 10.0)
    opened = dict(modality=mc.modality, fs=mc.fs, cache_dir=cache_dir, holdout=cfg.holdout, seed=cfg.seed)
    # rank 0 builds the caches first; the others then find them up to date
    if rank == 0:
        sources = open_sources(cfg.data, window_seconds=window_seconds, progress=cfg.progress, **opened)
    fabric.barrier()
    if rank != 0:
        sources = open_sources(cfg.data, window_seconds=window_seconds, progress=False, **opened)
    batches = TokenBatches(sources, mc.block_size, mc.levels, cfg.weights, cfg.seed, cfg.token_span)
    split = {
        "window_seconds": window_seconds,
        "sources": [
            {
                "name": s.name,
                "root": str(s.root),
                "lead": s.lead,
                "train_ids": s.train_ids,
                "heldout_ids": s.heldout_ids,
                "train_windows": int(len(s.train_index)),
                "heldout_windows": int(len(s.heldout_index)),
            }
            for s in sources
        ],
    }
    # what travels with every exported checkpoint: which records of which source it never saw
    heldout_summary = {
        "split": f"patient-grouped, holdout {cfg.holdout}, seed {cfg.seed}",
        "sources": [
            {k: s[k] for k in ("name", "root", "lead", "heldout_ids", "heldout_windows", "train_windows")}
            | {"train_records": len(s["train_ids"])}
            for s in split["sources"]
        ],
    }
    heldout = torch.from_numpy(batches.heldout(cfg.eval_windows))[rank::world]

    optimizer = _optimizer(model, cfg)
    step, tokens_seen, best, train_seconds = 0, 0, float("inf"), 0.0
    if resuming:
        # our own file, read without unpickling code
        state = torch.load(out / STATE_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, tokens_seen = int(state["step"]), int(state["tokens_seen"])
        best, train_seconds = float(state["best_eval_loss"]), float(state["train_seconds"])
        torch.set_rng_state(state["rng"])
        if rank == 0:
            log.warning("%s: resuming at step %d of %d", out, step, cfg.max_steps)
    elif rank == 0:
        output_folder(out)
        config = recorded(dataclasses.asdict(cfg), PATH_SETTINGS)  # paths absolute: resumable from any folder
        write_json(out / "run.json", {"config": config, "model_config": mc.to_dict()})
        write_json(out / "split.json", split)
        (out / "log.jsonl").write_text("")
    if rank == 0 and resuming:
        # drop log lines of steps after the checkpoint (they are computed again)
        lines = (out / "log.jsonl").read_text().splitlines()
        kept = [line for line in lines if line and json.loads(line)["step"] <= step]
        (out / "log.jsonl").write_text("".join(f"{line}\n" for line in kept))
    model, optimizer = fabric.setup(model, optimizer)
    model.train()

    def save_state() -> None:
        state = {
            "model": model,
            "optimizer": optimizer,
            "step": step,
            "tokens_seen": tokens_seen,
            "best_eval_loss": best,
            "train_seconds": train_seconds,
            "rng": torch.get_rng_state(),
        }
        tmp = out / f".{STATE_FILE}.tmp"
        fabric.save(tmp, state)
        if rank == 0:
            os.replace(tmp, out / STATE_FILE)
        fabric.barrier()

    def run_eval() -> tuple[float, int]:
        total, count = evaluate(model, heldout.to(fabric.device))
        reduced = fabric.all_reduce(torch.tensor([total, float(count)], dtype=torch.float64), reduce_op="sum")
        return float(reduced[0] / reduced[1]), int(reduced[1])

    def export(folder: str, result: dict[str, Any]) -> Path | None:
        if rank != 0:
            return None
        plain = model.module if hasattr(model, "module") else model
        return save_checkpoint(
            plain,
            out / folder,
            card=model_card(cfg, plain, result, split),
            overwrite=True,
            extra_files={HELDOUT_FILE: json.dumps(heldout_summary, indent=1) + "\n"},
        )

    per_rank = cfg.batch_size // world
    tokens_per_step = cfg.batch_size * mc.block_size
    last_step = cfg.max_steps if cfg.stop_at is None else min(cfg.max_steps, cfg.stop_at)
    bar = None
    if rank == 0 and cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.max_steps, initial=step, desc=f"pretrain {mc.name}", unit="step", dynamic_ncols=True)
    eval_loss, eval_tokens = float("nan"), 0
    window_start, window_tokens = time.perf_counter(), 0
    while step < last_step:
        t0 = time.perf_counter()
        lr = lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        tokens = torch.from_numpy(batches.batch(step, cfg.batch_size, rank, world)).to(fabric.device)
        assert tokens.shape[0] == per_rank
        logits = model(tokens[:, :-1])  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        fabric.backward(loss)
        grad_norm = fabric.clip_gradients(model, optimizer, max_norm=cfg.grad_clip) if cfg.grad_clip else None
        optimizer.step()
        step += 1
        tokens_seen += tokens_per_step
        train_seconds += time.perf_counter() - t0
        window_tokens += tokens_per_step
        is_eval = step % cfg.eval_every == 0 or step == cfg.max_steps
        # the loss of the whole batch, not of this process's part (the same log from 1 or N processes)
        batch_loss = float(fabric.all_reduce(loss.detach(), reduce_op="mean")) if world > 1 else float(loss.detach())
        record: dict[str, Any] = {"step": step, "loss": batch_loss, "lr": lr, "tokens_seen": tokens_seen}
        if grad_norm is not None:
            record["grad_norm"] = float(grad_norm)
        if is_eval:
            eval_loss, eval_tokens = run_eval()
            record["eval_loss"] = eval_loss
            elapsed = time.perf_counter() - window_start
            record["tokens_per_s"] = window_tokens / elapsed
            window_start, window_tokens = time.perf_counter(), 0
            if eval_loss < best:
                best = eval_loss
                export("best", _summary(step, tokens_seen, eval_loss, best, eval_tokens, train_seconds, world))
            export("model", _summary(step, tokens_seen, eval_loss, best, eval_tokens, train_seconds, world))
            save_state()
        if rank == 0:
            if is_eval or step % 10 == 0:
                with open(out / "log.jsonl", "a") as fh:
                    fh.write(json.dumps(record) + "\n")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    loss=f"{batch_loss:.3f}",
                    eval=f"{eval_loss:.3f}",
                    tok_s=f"{tokens_per_step / max(1e-9, time.perf_counter() - t0):,.0f}",
                )
    if bar is not None:
        bar.close()
    if step % cfg.eval_every and step < cfg.max_steps:
        save_state()  # stopped between evaluations (stop_at): keep the progress
    if math.isnan(eval_loss):
        eval_loss, eval_tokens = run_eval()
    result = _summary(step, tokens_seen, eval_loss, best, eval_tokens, train_seconds, world)
    result["finished"] = step >= cfg.max_steps
    result["out"] = str(out)
    if result["finished"]:
        result["checkpoint"] = str(export("model", result) or out / "model")
    return result


def _summary(
    step: int, tokens_seen: int, eval_loss: float, best: float, eval_tokens: int, seconds: float, world: int
) -> dict[str, Any]:
    return {
        "step": step,
        "tokens_seen": tokens_seen,
        "eval_loss": eval_loss,
        "best_eval_loss": min(best, eval_loss) if not math.isnan(eval_loss) else best,
        "eval_tokens": eval_tokens,
        "train_seconds": seconds,
        "world_size": world,
    }


def heldout_records(run_or_checkpoint: str | Path) -> dict[str, list[str]]:
    """The held-out record ids of each source a pretrained model never saw.

    Args:
        run_or_checkpoint: an exported checkpoint (its ``heldout.json``), a run folder or a
            checkpoint inside one (the run's ``split.json``).
    """
    path = Path(run_or_checkpoint)
    for candidate in (path / HELDOUT_FILE, path / "split.json", path.parent / "split.json"):
        if candidate.exists():
            split = json.loads(candidate.read_text())
            return {s["name"]: s["heldout_ids"] for s in split["sources"]}
    raise CardiolensError(f"{path}: no {HELDOUT_FILE} or split.json; not a pretrained checkpoint or run")


__all__ = ["PretrainConfig", "evaluate", "heldout_records", "lr_at", "model_card", "pretrain_gpt"]
