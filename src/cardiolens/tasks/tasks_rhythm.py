"""Record-level rhythm tasks on the PhysioNet/CinC 2017 single-lead ECGs.

- ``cinc2017-rhythm``: N (normal) / A (AF) / O (other rhythm) / ~ (noisy), scored by the challenge
  score (mean F1 of N, A, O), per-class F1 and macro AUROC.
- ``cinc2017-af``: AF against everything else, scored by AUROC (and AUPRC, F1 at the threshold
  chosen on validation data).

Records are 300 Hz AliveCor recordings of 9-61 s; they are resampled to the backbone's rate
(100 Hz by default, the GPTs' rate). No band-pass filter is applied, so fine-tuned GPTs see the same
signal as in pretraining. CinC 2017 publishes no patient ids: each record is its own group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cardiolens.datasets import CinC2017
from cardiolens.errors import CardiolensError
from cardiolens.signal.resample import resample
from cardiolens.tasks.metrics import CINC2017_CLASSES, auprc, auroc, cinc2017_score, or_nan, per_class_auroc
from cardiolens.tasks.suite import Task, TaskData, register_task

PROTOCOL = "stratified 5-fold cross-validation on the provided CinC 2017 records (no patient ids are published)"


def _load_cinc2017(root: Path, fs: float, *, records: list[str] | None = None, progress: bool = True) -> TaskData:
    db = CinC2017(root)
    ids = list(db.record_ids) if records is None else [str(r) for r in records]
    signals, keep, skipped = [], [], []
    for rid in tqdm(ids, desc=f"reading CinC 2017 ({fs:g} Hz)", disable=not progress, unit="rec"):
        try:
            record = db.load(rid)
        except CardiolensError as exc:
            skipped.append(f"{rid}: {exc}")
            continue
        x = resample(record.signal[:1], record.fs, fs).astype(np.float32)  # (1, T)
        signals.append(x)
        keep.append(rid)
    labels = db.records.set_index("record_id").loc[keep, "label"].to_numpy(dtype=str)
    targets = np.array([CINC2017_CLASSES.index(v) for v in labels], dtype=np.int64)
    return TaskData(
        signals=signals,
        targets=targets,
        item_ids=np.array(keep),
        groups=np.array(keep),
        strata=labels,
        fs=fs,
        leads=["I"],
        info={"dataset": str(root), "records": len(keep), "skipped": skipped},
    )


def _load_af(root: Path, fs: float, **options: Any) -> TaskData:
    data = _load_cinc2017(root, fs, **options)
    data.targets = (data.targets == CINC2017_CLASSES.index("A")).astype(np.int64)
    return data


def rhythm_score(targets: Any, probs: Any, thresholds: Any = None) -> dict[str, float]:
    """Challenge score and per-class F1 of the arg-max class, macro AUROC and AF-vs-rest AUROC."""
    y = np.asarray(targets)
    p = np.asarray(probs)
    out = cinc2017_score(y, p.argmax(axis=1))
    onehot = np.eye(len(CINC2017_CLASSES))[y]
    out["macro_auroc"] = or_nan(auroc, onehot, p)  # NaN where no class has both kinds (a one-class part)
    for name, value in zip(CINC2017_CLASSES, per_class_auroc(onehot, p), strict=True):
        out[f"AUROC_{name}"] = float(value)
    return out


def binary_score(targets: Any, probs: Any, thresholds: Any = None) -> dict[str, float]:
    """AUROC, AUPRC, and sensitivity / PPV / F1 at the threshold (0.5 unless one was chosen); AUROC and
    AUPRC are NaN where undefined (a validation or test part with one class only)."""
    y = np.asarray(targets).astype(int).ravel()
    p = np.asarray(probs, dtype=np.float64).reshape(len(y), -1)[:, -1]
    t = 0.5 if thresholds is None else float(np.ravel(thresholds)[0])
    pred = p >= t
    tp = float(np.sum(pred & (y == 1)))
    se = tp / max(1, int(np.sum(y == 1)))
    ppv = tp / max(1, int(np.sum(pred)))
    return {
        "auroc": or_nan(auroc, y, p),
        "auprc": or_nan(auprc, y, p),
        "sensitivity": se,
        "ppv": ppv,
        "f1": 0.0 if se + ppv == 0 else 2 * se * ppv / (se + ppv),
        "threshold": t,
    }


CINC2017_RHYTHM = register_task(
    Task(
        name="cinc2017-rhythm",
        kind="multiclass",
        description="CinC 2017 single-lead rhythm: N / A (AF) / O (other) / ~ (noisy), per record",
        modality="ECG",
        fs=100.0,
        window_seconds=9.0,
        min_seconds=5.0,
        classes=CINC2017_CLASSES,
        load=_load_cinc2017,
        score=rhythm_score,
        score_key="score",
        folds=5,
        protocol=PROTOCOL,
        dataset="CinC 2017 training2017 folder",
    )
)

CINC2017_AF = register_task(
    Task(
        name="cinc2017-af",
        kind="binary",
        description="AF vs not-AF per single-lead ECG record (CinC 2017 labels)",
        modality="ECG",
        fs=100.0,
        window_seconds=9.0,
        min_seconds=5.0,
        classes=("AF",),
        load=_load_af,
        score=binary_score,
        score_key="auroc",
        folds=5,
        protocol=PROTOCOL,
        dataset="CinC 2017 training2017 folder",
    )
)


@torch.no_grad()
def heartgpt_af_probabilities(model: torch.nn.Module, signals: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """Record-level AF probability from a HeartGPT AF model (``ECGPT_AF_1k_iters.zip``), as published.

    Each record (100 Hz, lead first) is cut into non-overlapping windows of the model's context
    (500 samples), each window min-max tokenised on its own, scored by the model's sigmoid on the last
    token, and the window probabilities averaged.
    """
    from cardiolens.signal.tokenize import tokenize
    from cardiolens.tasks.finetune import window_starts

    block = model.config.block_size
    jobs = [(i, s) for i, x in enumerate(signals) for s in window_starts(x.shape[-1], block, block)]
    sums, counts = np.zeros(len(signals)), np.zeros(len(signals))
    model.eval()
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        windows = [signals[i][0, s : s + block] for i, s in chunk]
        if len({len(w) for w in windows}) > 1:  # records shorter than a window: one at a time
            probs = [float(model.predict_proba(torch.as_tensor(tokenize(w)[0][None]))[0, 0]) for w in windows]
        else:
            tokens, _ = tokenize(np.stack(windows))
            probs = model.predict_proba(torch.as_tensor(tokens))[:, 0].numpy()
        for (i, _), p in zip(chunk, probs, strict=True):
            sums[i] += p
            counts[i] += 1
    return sums / np.maximum(counts, 1)
