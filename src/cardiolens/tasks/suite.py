"""Task definitions: what each task reads, predicts and is scored by, shared by the trainer,
``cardiolens predict`` / ``evaluate`` and the benchmarks.

A :class:`Task` turns a dataset folder into :class:`TaskData`: one float array per *item* (a record,
or a beat's neighbourhood) at the task's sampling rate and leads, a target per item, and the patient
of each item for grouped splits. Loading a whole dataset is slow (thousands of files, resampling),
so :func:`load_task_data` keeps the result in an ``.npz`` cache keyed by the files and settings.

Register a new task with :func:`register_task`; see :mod:`cardiolens.tasks.tasks_rhythm` for the
CinC 2017 tasks as an example.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cardiolens.atomic import write_npz
from cardiolens.errors import CardiolensError, DatasetError

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass
class TaskData:
    """Items of one task, ready for training and evaluation.

    Attributes:
        signals: one float32 array (leads, samples) per item, at ``fs``, in signal units.
        targets: multiclass: (N,) class indices; binary: (N,) 0/1; multilabel: (N, K) 0/1;
            per-sample: one float32 array (K, samples) per item, aligned with its signal.
        item_ids: a name per item (record id, or ``record:sample`` for beats).
        groups: the patient of each item (splits and bootstrap resample patients).
        strata: labels to stratify folds by (None: unstratified).
        extra: (N, E) extra per-item features (e.g. RR intervals), or None.
        fs: sampling rate of the signals.
        leads: lead names, in channel order.
        info: free facts for model cards and results (records read, skipped, ...).
    """

    signals: list[np.ndarray]
    targets: Any
    item_ids: np.ndarray
    groups: np.ndarray
    strata: np.ndarray | None
    fs: float
    leads: list[str]
    extra: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.signals)

    def subset(self, index: np.ndarray) -> TaskData:
        """The items at ``index`` (positions)."""
        index = np.asarray(index, dtype=np.int64)
        targets = [self.targets[i] for i in index] if isinstance(self.targets, list) else self.targets[index]
        return TaskData(
            signals=[self.signals[i] for i in index],
            targets=targets,
            item_ids=self.item_ids[index],
            groups=self.groups[index],
            strata=None if self.strata is None else self.strata[index],
            fs=self.fs,
            leads=self.leads,
            extra=None if self.extra is None else self.extra[index],
            info=self.info,
        )


@dataclass(frozen=True)
class Task:
    """One task: its data, outputs, input contract and score.

    Attributes:
        name: registry name (``cinc2017-rhythm``).
        kind: ``"multiclass"``, ``"binary"``, ``"multilabel"`` or ``"per-sample"``.
        description: one line for ``cardiolens finetune --help`` and model cards.
        modality: ``"ECG"`` or ``"PPG"``.
        fs: default sampling rate (a backbone with its own rate, like a GPT, overrides it).
        window_seconds: length of the windows the model reads (cropped to the backbone's context).
        min_seconds: records shorter than this are refused at prediction.
        classes: output names; None when the data decides (multilabel label sets).
        load: ``load(root, fs, **options) -> TaskData``.
        score: ``score(targets, probabilities) -> dict`` of metrics; ``score_key`` names the one
            used for early stopping and model selection (higher is better).
        score_key: see ``score``.
        folds: default cross-validation folds of the benchmark protocol.
        n_extra: extra per-item features the head reads.
        protocol: the evaluation protocol in words, for results and cards.
    """

    name: str
    kind: str
    description: str
    modality: str
    fs: float
    window_seconds: float
    min_seconds: float
    classes: tuple[str, ...] | None
    load: Callable[..., TaskData]
    score: Callable[[Any, Any], dict[str, float]]
    score_key: str
    folds: int = 5
    n_extra: int = 0
    protocol: str = ""
    dataset: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in _TASKS and _TASKS[task.name] is not task:
        raise CardiolensError(f"task {task.name!r} is already registered")
    _TASKS[task.name] = task
    return task


def list_tasks() -> list[str]:
    """Names of the registered tasks."""
    _load_builtin()
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The registered task called ``name``; the error lists the known tasks."""
    _load_builtin()
    try:
        return _TASKS[name]
    except KeyError:
        raise CardiolensError(f"unknown task {name!r}; tasks: {', '.join(sorted(_TASKS))}") from None


def _load_builtin() -> None:
    # the task modules register themselves on import
    from cardiolens.tasks import tasks_rhythm  # noqa: F401

    for module in ("tasks_beats", "tasks_aami", "tasks_multilabel"):
        try:
            __import__(f"cardiolens.tasks.{module}")
        except ModuleNotFoundError as exc:  # a task family not built yet
            if exc.name != f"cardiolens.tasks.{module}":
                raise


# -- cached loading -------------------------------------------------------------------------------
def _fingerprint(task: Task, root: Path, fs: float, options: dict[str, Any]) -> str:
    """Hash of the task, settings, and the names, sizes and times of the dataset's files."""
    digest = hashlib.sha256(json.dumps([task.name, CACHE_VERSION, fs, options], sort_keys=True, default=str).encode())
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            digest.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _save_npz(path: Path, data: TaskData) -> None:
    lengths = np.array([s.shape[-1] for s in data.signals], dtype=np.int64)
    arrays: dict[str, Any] = {
        "signals": np.concatenate(data.signals, axis=-1) if data.signals else np.zeros((len(data.leads), 0)),
        "lengths": lengths,
        "item_ids": data.item_ids.astype(str),
        "groups": data.groups.astype(str),
        "meta": np.array(json.dumps({"fs": data.fs, "leads": data.leads, "info": data.info}, default=str)),
    }
    if isinstance(data.targets, list):
        arrays["targets_concat"] = np.concatenate(data.targets, axis=-1)
    else:
        arrays["targets"] = np.asarray(data.targets)
    if data.strata is not None:
        arrays["strata"] = data.strata.astype(str)
    if data.extra is not None:
        arrays["extra"] = data.extra
    write_npz(path, **arrays)


def _read_npz(path: Path) -> TaskData:
    with np.load(path, allow_pickle=False) as z:
        lengths = z["lengths"]
        cuts = np.cumsum(lengths)[:-1]
        signals = np.split(z["signals"], cuts, axis=-1)
        targets = np.split(z["targets_concat"], cuts, axis=-1) if "targets_concat" in z else z["targets"]
        meta = json.loads(str(z["meta"]))
        return TaskData(
            signals=list(signals),
            targets=list(targets) if isinstance(targets, list) else targets,
            item_ids=z["item_ids"],
            groups=z["groups"],
            strata=z["strata"] if "strata" in z else None,
            fs=float(meta["fs"]),
            leads=list(meta["leads"]),
            extra=z["extra"] if "extra" in z else None,
            info=meta["info"],
        )


def default_cache_dir() -> Path:
    return Path(os.environ.get("CARDIOLENS_CACHE", Path.cwd() / ".cache" / "tasks"))


def load_task_data(
    task: Task | str,
    root: str | Path,
    fs: float | None = None,
    *,
    cache_dir: str | Path | None = None,
    **options: Any,
) -> TaskData:
    """Items of ``task`` read from the dataset folder ``root`` at ``fs`` Hz, cached as ``.npz``.

    Args:
        task: a task or its name.
        root: the dataset folder in its publisher's layout.
        fs: sampling rate wanted (default: the task's).
        cache_dir: where cached items live (default ``$CARDIOLENS_CACHE`` or ``./.cache/tasks``);
            ``None`` with ``CARDIOLENS_CACHE=off`` disables the cache.
        **options: task-specific loading options (e.g. ``records=[...]``).
    """
    task = get_task(task) if isinstance(task, str) else task
    progress = options.pop("progress", None)
    accepted = inspect.signature(task.load).parameters
    if progress is not None and ("progress" in accepted or any(p.kind == p.VAR_KEYWORD for p in accepted.values())):
        load_options = {**options, "progress": progress}  # shown or not, the items are the same
    else:
        load_options = options
    if not any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        known = [n for n, p in accepted.items() if p.kind == p.KEYWORD_ONLY or (p.default is not p.empty)]
        unknown = sorted(set(load_options) - set(accepted))
        if unknown:
            raise DatasetError(
                f"task {task.name} takes no loading option {', '.join(unknown)}; "
                f"its options: {', '.join(known) or 'none'}"
            )
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: no such dataset folder (task {task.name} reads {task.dataset or 'a dataset'})")
    from cardiolens.datasets import dataset_root

    root = dataset_root(root)  # a folder holding the dataset's folder, as unpacked archives do
    fs = float(fs or task.fs)
    if os.environ.get("CARDIOLENS_CACHE") == "off" and cache_dir is None:
        return task.load(root, fs, **load_options)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task.name}-{fs:g}hz-{_fingerprint(task, root, fs, options)}.npz"
    if path.exists():
        try:
            return _read_npz(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: unreadable task cache (%s); rebuilding", path, exc)
    data = task.load(root, fs, **load_options)
    if not len(data):
        asked = options.get("records")
        wanted = f" among the records asked for ({', '.join(map(str, asked))[:200]})" if asked else ""
        raise DatasetError(f"{root}: task {task.name} found no usable items{wanted}")
    _save_npz(path, data)
    return data
