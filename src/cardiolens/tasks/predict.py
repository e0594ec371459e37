"""Predictions of fine-tuned models on records, and evaluation on a dataset folder.

:func:`predict_record` is what ``cardiolens predict``, the web app and the demo call. It checks the
record against the model's input contract (leads, sampling rate, length), states every step it took
(lead chosen, resampling, windows) in :attr:`Prediction.preprocessing`, and never returns a
prediction for input the model cannot read.
"""

from __future__ import annotations

import inspect
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cardiolens.atomic import output_folder
from cardiolens.errors import CardiolensError, ModelInputError, RecordError
from cardiolens.models import TaskModel, load_model
from cardiolens.signal.leads import ECG_LEAD_NAMES, PPG_LEAD_NAMES, modality
from cardiolens.signal.record import Record
from cardiolens.signal.resample import resample
from cardiolens.tasks.model_mean import ModelMean, find_model_mean, load_model_mean
from cardiolens.tasks.tree_model import (
    BeatTreeModel,
    FeatureTreeModel,
    RhythmTreeModel,
    find_tree_model,
    load_tree_model,
)

log = logging.getLogger(__name__)

# a single-lead model reads the record's lead of the same name, else its equivalent (MIT-BIH's modified
# lead II is placed as lead II: a model trained on MLII reads II of a 12-lead record), else the first
# of these present
_SINGLE_LEAD_PREFERENCE = ("I", "II", "MLII", "ECG", "V5", "PLETH", "PPG")
_EQUIVALENT_LEADS = {"MLII": ("II",), "II": ("MLII",)}


@dataclass
class Prediction:
    """One record's prediction, with everything needed to judge it.

    Attributes:
        source: the record (file or id).
        model: the model's name.
        task: the task the model was trained for.
        kind: ``multiclass``, ``binary``, ``multilabel``, ``per-sample`` (beat detection) or
            ``per-beat`` (beat classification).
        classes: output names.
        probabilities: record-level probability of each class (per-sample tasks: the mean;
            per-beat: the mean over the classified beats).
        labels: the predicted classes (arg-max, or those over their thresholds; per-beat: the
            classes given to at least one beat).
        windows: windows of ``window`` samples the record was cut into.
        preprocessing: every step applied (lead chosen, resampling, windowing).
        beats: per-sample and per-beat tasks: beats as sample indices at the record's own rate.
        confidence: per-sample tasks: the model's probability at each beat; per-beat: the
            probability of the class each beat was given.
        extra: per-beat: ``beat_labels`` (a class per beat), ``beat_probabilities`` (a row per
            beat, in the order of ``classes``) and ``beats_per_class``; a mean of models:
            ``members``, each member's probabilities.
        fs: the record's sampling rate (the rate of ``beats``).
    """

    source: str
    model: str
    task: str
    kind: str
    classes: list[str]
    probabilities: dict[str, float]
    labels: list[str]
    windows: int
    preprocessing: list[str]
    beats: np.ndarray | None = None
    confidence: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    fs: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("beats", "confidence")}
        if self.beats is not None:
            out["beats"] = self.beats.tolist()
            out["confidence"] = np.round(self.confidence, 4).tolist() if self.confidence is not None else None
        return out


def record_source(record: Record) -> str:
    """How a prediction names its record: the file it was read from, else its id or name."""
    return str(record.metadata.get("path") or record.source or record.metadata.get("record_id") or record.name)


Predictor = TaskModel | FeatureTreeModel | ModelMean


def load_predictor(model: str | Path | nn.Module | FeatureTreeModel | ModelMean) -> Predictor:
    """What ``cardiolens predict`` runs: a fine-tuned network, a tree model
    (:mod:`cardiolens.tasks.tree_model`: the shipped ``rhythm-ecg-trees`` and ``aami-ecg-trees``), or
    a mean of such models (:mod:`cardiolens.tasks.model_mean`: the shipped ``rhythm-ecg-mean``)."""
    if isinstance(model, (FeatureTreeModel, ModelMean)):
        return model
    if isinstance(model, (str, Path)):
        if (folder := find_tree_model(model)) is not None:
            return load_tree_model(folder)
        if (folder := find_model_mean(model)) is not None:
            return load_model_mean(folder)
    return as_task_model(model)


def as_task_model(model: str | Path | nn.Module) -> TaskModel:
    """A fine-tuned model from a shipped name, a checkpoint, or an instance; other models are refused."""
    loaded = load_model(model) if isinstance(model, (str, Path)) else model
    if not isinstance(loaded, TaskModel):
        config = getattr(loaded, "config", None)
        name = getattr(config, "name", type(loaded).__name__)
        if getattr(config, "head", "lm") not in ("lm", None):  # HeartGPT's published AF and beat heads
            raise ModelInputError(
                f"{name} has a {config.head} head but no task attached (no class names, label rule or "
                "preprocessing are stored with it, as with HeartGPT's published fine-tuned heads): "
                "cardiolens explain runs it; predict needs a model from cardiolens finetune or a shipped task "
                "model such as rhythm-ecg"
            )
        raise ModelInputError(
            f"{name} is not a fine-tuned task model (a pretrained backbone has no task); "
            "fine-tune it first (cardiolens finetune) or pick a shipped task model such as rhythm-ecg"
        )
    return loaded.eval()


def _names_its_modality(lead: str) -> bool:
    """Whether a lead's name says what it is (an ECG lead, a PPG, or a known other signal)."""
    name = lead.strip().upper()
    return modality(lead) != "ECG" or name in ECG_LEAD_NAMES or name in PPG_LEAD_NAMES or "ECG" in name


def leads_read(
    model: TaskModel | FeatureTreeModel, record: Record, lead: str | None = None
) -> tuple[list[int], list[str]]:
    """The record's channels the model reads, in the model's lead order, and notes saying which.

    Raises:
        RecordError: a lead the model needs is missing, or of the wrong kind (PPG for an ECG model).
    """
    cfg = model.config
    source = record_source(record)
    notes = []
    names = {n.upper(): i for i, n in enumerate(record.leads)}
    if len(cfg.leads) == 1:
        wanted = modality(cfg.leads[0])  # an ECG model must not read a PPG lead, nor the reverse
        same = [n for n in (cfg.leads[0].upper(), *_EQUIVALENT_LEADS.get(cfg.leads[0].upper(), ())) if n in names]
        if lead is not None:
            index = record.lead_index(lead)
        elif same:
            index = names[same[0]]
        else:
            same_kind = [
                i for i, (n, u) in enumerate(zip(record.leads, record.units, strict=True)) if modality(n, u) == wanted
            ]
            preferred = [names[p] for p in _SINGLE_LEAD_PREFERENCE if p in names and names[p] in same_kind]
            index = (preferred or same_kind or [0])[0]
        chosen = record.leads[index]
        kind = modality(chosen, record.units[index])
        if kind != wanted:
            raise RecordError(
                f"{cfg.name} reads {wanted} and lead {chosen!r} is "
                + (kind if kind != "other" else "neither ECG nor PPG")
                + ("" if lead is not None else f"; the record has no {wanted} lead ({', '.join(record.leads)})"),
                source,
            )
        if chosen.upper() != cfg.leads[0].upper():
            notes.append(f"lead {chosen!r} used as the model's lead {cfg.leads[0]!r}")
        else:
            notes.append(f"lead {chosen!r}")
        if not _names_its_modality(chosen):
            # modality() calls every unknown name ECG: say so, since a PPG saved as "ch0" reads as ECG too
            notes.append(f"lead {chosen!r} does not name its signal: taken to be {wanted}; name it if it is not")
        read = [index]
    else:
        missing = [n for n in cfg.leads if n.upper() not in names]
        if missing:
            raise RecordError(
                f"{cfg.name} needs the leads {', '.join(cfg.leads)}; the record lacks {', '.join(missing)} "
                f"(it has {', '.join(record.leads)})",
                source,
            )
        read = [names[n.upper()] for n in cfg.leads]
        notes.append(f"leads {', '.join(cfg.leads)}")
    return read, notes


def model_input(
    model: TaskModel | FeatureTreeModel, record: Record, lead: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """The signal as the model reads it, (leads, samples) at the model's rate, and the steps taken.

    Raises:
        RecordError: a lead the model needs is missing, or the record is shorter than the model's minimum.
    """
    cfg = model.config
    source = record_source(record)
    read, notes = leads_read(model, record, lead)
    signal = record.signal[read]
    if not np.all(np.isfinite(signal)):
        raise RecordError("the signal holds NaN or infinite values; load it with nan_policy='interpolate'", source)
    repaired = (record.metadata.get("repaired") or {}).get("interpolated_samples_per_channel") or {}
    filled = {record.leads[i]: int(repaired.get(i, repaired.get(str(i), 0))) for i in read}
    if any(filled.values()):  # load_record(nan_policy="interpolate") filled them
        notes.append(
            "missing samples filled by linear interpolation: "
            + ", ".join(f"{count} in lead {name!r}" for name, count in filled.items() if count)
        )
    if abs(record.fs - cfg.fs) > 1e-6:
        signal = resample(signal, record.fs, cfg.fs)
        notes.append(f"resampled from {record.fs:g} Hz to {cfg.fs:g} Hz")
    n = signal.shape[-1]
    if n < cfg.min_samples:
        reads = f" (it reads windows of {cfg.window / cfg.fs:g} s)" if cfg.window else ""
        seconds = n / cfg.fs
        length = f"{seconds:.1f}" if seconds >= 0.1 else f"{seconds:.2g}"  # 8.0 s, 0.04 s, 0.004 s (not 0.0 s)
        raise RecordError(
            f"{length} s of signal is shorter than the {cfg.min_samples / cfg.fs:g} s {cfg.name} needs{reads}", source
        )
    if np.ptp(signal, axis=-1).min() == 0:
        raise RecordError("a lead the model reads is flat (constant): nothing to classify", source)
    return signal.astype(np.float32), notes


def predict_record(
    model: str | Path | nn.Module | FeatureTreeModel, record: Record | str | Path, lead: str | None = None
) -> Prediction:
    """Classify one record, find its beats or classify its beats, with a fine-tuned model or a tree model.

    Args:
        model: a shipped task model (``rhythm-ecg``, ``rhythm-ecg-trees``, ``beats-ecg``,
            ``aami-ecg-trees``), a checkpoint, a :class:`TaskModel` or a
            :class:`~cardiolens.tasks.tree_model.FeatureTreeModel`.
        record: the recording, or its file (read with :func:`cardiolens.load_record`).
        lead: for single-lead models, the lead to read (default: the model's lead name or its
            equivalent, II for MLII; else I, II, ...).

    Example:
        >>> from cardiolens.analysis import simulated_record
        >>> p = predict_record("rhythm-ecg", simulated_record())  # doctest: +SKIP
        >>> p.labels, p.probabilities["A"]
    """
    from cardiolens.tasks.finetune import predict_items, window_starts

    if isinstance(record, (str, Path)):
        from cardiolens.io import load_record

        record = load_record(record)
    elif not isinstance(record, Record):
        raise RecordError(f"predict_record takes a Record or a record's file, got {type(record).__name__}")

    task_model = load_predictor(model)
    if isinstance(task_model, ModelMean):
        return _predict_with_mean(task_model, record, lead)
    if isinstance(task_model, RhythmTreeModel):
        return _predict_with_trees(task_model, record, lead)
    if isinstance(task_model, BeatTreeModel):
        return _classify_beats(task_model, record, lead)
    cfg = task_model.config
    signal, notes = model_input(task_model, record, lead)
    n = signal.shape[-1]
    stride = cfg.window // 2 if cfg.kind == "per-sample" else cfg.window
    windows = len(window_starts(n, cfg.window, stride)) if n >= cfg.window else 1
    if n >= cfg.window:
        notes.append(
            f"{windows} window(s) of {cfg.window / cfg.fs:g} s"
            + (", probabilities averaged over windows" if cfg.kind != "per-sample" and windows > 1 else "")
        )
    else:  # predict_items runs an item shorter than a window at its own length
        notes.append(
            f"1 window of {n / cfg.fs:.1f} s: the record is shorter than the model's {cfg.window / cfg.fs:g} s "
            "window and is read at its own length (not padded)"
        )
    notes.append("each window min-max tokenised per lead" if task_model.tokens else "each window z-scored per lead")
    source = record_source(record)
    if cfg.kind == "per-sample":
        # the beat task's own detector: modality check, threshold, and beats moved onto the peaks
        from cardiolens.tasks.tasks_beats import detect_beats

        beats, confidence = detect_beats(task_model, record, lead=lead)
        return Prediction(
            source=source,
            model=cfg.name,
            task=cfg.task,
            kind=cfg.kind,
            classes=cfg.classes,
            probabilities={cfg.classes[0]: float(confidence.mean()) if len(confidence) else 0.0},
            labels=[],
            windows=windows,
            preprocessing=notes,
            fs=record.fs,
            beats=beats,
            confidence=confidence,
        )
    with torch.inference_mode():
        probs = predict_items(task_model, [signal])
    p = probs[0]
    if cfg.kind == "multiclass":
        labels = [cfg.classes[int(np.argmax(p))]]
        probabilities = {c: float(v) for c, v in zip(cfg.classes, p, strict=True)}
    else:
        thresholds = cfg.thresholds or [0.5] * len(p)
        labels = [c for c, v, t in zip(cfg.classes, p, thresholds, strict=True) if v >= t]
        probabilities = {c: float(v) for c, v in zip(cfg.classes, p, strict=True)}
        if thresholds != [0.5] * len(p):
            notes.append("labels from thresholds chosen on validation data: " + ", ".join(f"{t:g}" for t in thresholds))
    return Prediction(
        source=source,
        model=cfg.name,
        task=cfg.task,
        kind=cfg.kind,
        classes=cfg.classes,
        probabilities=probabilities,
        labels=labels,
        windows=windows,
        preprocessing=notes,
        fs=record.fs,
    )


def _class_prediction(
    cfg: Any, record: Record, p: np.ndarray, windows: int, notes: list[str], extra: dict | None = None
) -> Prediction:
    """A record-level multiclass prediction from its class probabilities ``p`` (the arg-max is the label)."""
    return Prediction(
        source=record_source(record),
        model=cfg.name,
        task=cfg.task,
        kind=cfg.kind,
        classes=cfg.classes,
        probabilities={c: float(v) for c, v in zip(cfg.classes, p, strict=True)},
        labels=[cfg.classes[int(np.argmax(p))]],
        windows=windows,
        preprocessing=notes,
        fs=record.fs,
        extra=extra or {},
    )


def _predict_with_mean(model: ModelMean, record: Record, lead: str | None) -> Prediction:
    cfg = model.config
    parts = [predict_record(member, record, lead) for member in model.members]
    p = np.mean([[part.probabilities[c] for c in cfg.classes] for part in parts], axis=0)
    notes = [f"{part.model}: {step}" for part in parts for step in part.preprocessing]
    notes.append(f"probabilities: the unweighted mean of {', '.join(part.model for part in parts)}")
    members = {part.model: part.probabilities for part in parts}
    return _class_prediction(cfg, record, p, max(part.windows for part in parts), notes, {"members": members})


def _predict_with_trees(model: RhythmTreeModel, record: Record, lead: str | None) -> Prediction:
    cfg = model.config
    signal, notes = model_input(model, record, lead)
    notes.append(f"{len(cfg.features)} rhythm features of the whole record ({cfg.feature_set}), boosted trees")
    return _class_prediction(cfg, record, model.predict_signals([signal[0]])[0], 1, notes)


def _classify_beats(model: BeatTreeModel, record: Record, lead: str | None) -> Prediction:
    from cardiolens.signal.peaks import DEFAULT_ECG_METHOD, ecg_peaks

    cfg = model.config
    source = record_source(record)
    signal, notes = model_input(model, record, lead)
    beats = np.asarray(ecg_peaks(signal[0], cfg.fs), dtype=np.int64)  # at cfg.fs
    if len(beats) < 3:
        raise RecordError(f"{len(beats)} beats found; classifying beats needs at least 3", source)
    probs, kept = model.predict_beats(signal, beats, cfg.fs)
    notes.append(
        f"{len(beats)} R peaks found by the {DEFAULT_ECG_METHOD!r} detector; each beat described by "
        f"{len(cfg.features)} features against the record's median beat and rhythm ({cfg.feature_set}), "
        "boosted trees; the first and last beat are not classified (one RR interval is missing)"
    )
    chosen = probs.argmax(axis=1)
    beat_labels = [cfg.classes[k] for k in chosen]
    counts = {c: int(np.sum(chosen == k)) for k, c in enumerate(cfg.classes)}
    return Prediction(
        source=source,
        model=cfg.name,
        task=cfg.task,
        kind="per-beat",
        classes=cfg.classes,
        probabilities={c: float(v) for c, v in zip(cfg.classes, probs.mean(axis=0), strict=True)},
        labels=[c for c in cfg.classes if counts[c]],
        windows=1,
        preprocessing=notes,
        fs=record.fs,
        beats=np.round(beats[kept] * record.fs / cfg.fs).astype(np.int64),  # at the record's rate
        confidence=probs[np.arange(len(chosen)), chosen],
        extra={
            "beat_labels": beat_labels,
            "beat_probabilities": np.round(probs, 4).tolist(),
            "beats_per_class": counts,
        },
    )


def write_predictions(
    predictions: list[Prediction], folder: str | Path, skipped: list[tuple[str, str]] | None = None
) -> list[Path]:
    """Write predictions as files a spreadsheet or pandas reads; returns the paths written.

    - ``predictions.json``: everything, one object per record (as ``--as_json`` prints);
    - ``predictions.csv``: a row per record: source, model, labels, each class's probability, the
      number of beats for beat models, and the preprocessing applied (steps joined by ``; ``);
    - ``<record>_beats.csv`` for beat models: a row per beat with its sample, time, confidence, and
      for beat classifiers its class and each class's probability;
    - ``skipped.csv`` when ``skipped`` (from :func:`predict_paths`) lists files: each with its problem.
    """
    import pandas as pd

    folder = output_folder(folder)
    (folder / "predictions.json").write_text(json.dumps([p.to_dict() for p in predictions], indent=2) + "\n")
    table = pd.DataFrame(
        [
            {
                "source": p.source,
                "model": p.model,
                "labels": ";".join(p.labels),
                **{f"p_{c}": v for c, v in p.probabilities.items()},
                "beats": None if p.beats is None else len(p.beats),
                "preprocessing": "; ".join(p.preprocessing),
            }
            for p in predictions
        ]
    )
    table.to_csv(folder / "predictions.csv", index=False)
    written = [folder / "predictions.json", folder / "predictions.csv"]
    if skipped:
        pd.DataFrame(skipped, columns=["source", "problem"]).to_csv(folder / "skipped.csv", index=False)
        written.append(folder / "skipped.csv")
    stems: list[str] = []
    for p in predictions:
        if p.beats is not None:
            stem = Path(p.source).stem or "record"
            # a suffix keeps two records of the same name (from different folders) apart
            name = stem if stem not in stems else f"{stem}-{stems.count(stem) + 1}"
            stems.append(stem)
            written.append(folder / f"{name}_beats.csv")
            _beat_table(p).to_csv(written[-1], index=False, float_format="%.4f")
    return written


def _beat_table(p: Prediction) -> Any:
    """A row per beat: sample, time, confidence; for a beat classifier also the class and each probability."""
    import pandas as pd

    table = pd.DataFrame({"sample": p.beats, "time_s": p.beats / p.fs if p.fs else np.nan, "confidence": p.confidence})
    if p.kind == "per-beat":
        table["class"] = p.extra["beat_labels"]
        probs = np.asarray(p.extra["beat_probabilities"], dtype=np.float64).reshape(len(p.beats), len(p.classes))
        for k, c in enumerate(p.classes):
            table[f"p_{c}"] = probs[:, k]
    return table


def record_files(paths: list[str | Path]) -> list[Path]:
    """The record files named by ``paths``: files as given, folders expanded to their records.

    A folder holding WFDB headers is a WFDB dataset: its records are its ``.hea`` files, and its
    CSV and ``.mat`` files are the dataset's tables and the records' signal files (PhysioNet's
    ``REFERENCE.csv``, BIDMC's ``*_Breaths.csv``). A folder without headers holds CSV, NumPy or
    PhysioNet ``.mat`` records. A folder with none of these that is a dataset's root (PTB-XL, whose
    records sit in ``records100/``; an unpacked archive) gives the records its catalogue lists.

    Raises:
        RecordError: a path that does not exist, or a folder with no record (the message names
            subfolders that hold some).
        DatasetError: a folder that holds several datasets.
    """
    return [path for path, _ in _record_files(paths)]


def _record_files(paths: list[str | Path]) -> list[tuple[Path, bool]]:
    """(file, whether it was named itself rather than found in a folder)."""
    found: list[tuple[Path, bool]] = []
    for entry in paths:
        path = Path(entry)
        if not path.exists():
            raise RecordError("no such file or folder", path)
        if path.is_file():
            found.append((path, True))
            continue
        found.extend((p, False) for p in _folder_records(path))
    return found


_RECORD_SUFFIXES = (".csv", ".npy", ".npz", ".mat")


def _records_in(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.hea")) or sorted(p for p in folder.iterdir() if p.suffix.lower() in _RECORD_SUFFIXES)


def _folder_records(folder: Path) -> list[Path]:
    """The records of one folder: its WFDB headers; else, for a dataset's root (PTB-XL, whose records
    sit in ``records100/`` beside its CSV tables; an unpacked archive's one dataset folder), the records
    its catalogue lists; else its CSV, NumPy and ``.mat`` files."""
    import inspect

    from cardiolens.datasets import CATALOGUES, dataset_root, detect_dataset, open_dataset

    headers = sorted(folder.glob("*.hea"))
    if headers:
        return headers
    name = detect_dataset(dataset_root(folder))  # several datasets: dataset_root names them
    if name is not None:
        # a partial download predicts what it has, as a folder's unreadable files are skipped (with a
        # warning), wherever the catalogue can leave out the records its files lack
        takes_missing = "missing" in inspect.signature(CATALOGUES[name]).parameters
        options = {"missing": "drop"} if takes_missing else {}
        return [Path(p) for p in open_dataset(folder, **options).records["path"]]
    records = _records_in(folder)
    if records:
        return records
    inner = [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".") and _records_in(d)]
    hint = f"; records are in its subfolders {', '.join(d.name for d in inner[:5])}: pass one of them" if inner else ""
    raise RecordError(f"the folder holds no record (.hea, .csv, .npy, .npz, .mat){hint}", folder)


def predict_paths(
    model: str | Path | nn.Module | FeatureTreeModel,
    paths: list[str | Path],
    fs: float | None = None,
    lead: str | None = None,
    nan_policy: str = "raise",
    skipped: list[tuple[str, str]] | None = None,
) -> list[Prediction]:
    """:func:`predict_record` over files and folders (each folder expanded to its records).

    A file found in a folder that cannot be read or predicted (a table beside the records, a record
    too short for the model) is skipped with a warning naming it and the problem; a file named
    itself, or a folder where nothing could be predicted, raises.

    Args:
        model: as :func:`predict_record`.
        paths: record files and folders of records.
        fs: sampling rate for formats that do not carry one (NumPy, CSV without a time column).
        lead: for single-lead models, the lead to read in every record.
        nan_policy: missing samples (NaN): ``"raise"`` or ``"interpolate"`` (as
            :func:`cardiolens.io.load_record`; a record's metadata says which samples were filled).
        skipped: a list that receives ``(file, problem)`` for every file skipped.
    """
    from cardiolens.io import load_record
    from cardiolens.io.repair import check_nan_policy

    check_nan_policy(nan_policy)  # once here: a folder's records would each be skipped for it
    task_model = load_predictor(model)
    predictions, problems = [], []
    for path, named in _record_files(paths):
        try:
            predictions.append(predict_record(task_model, load_record(path, fs=fs, nan_policy=nan_policy), lead=lead))
        except CardiolensError as exc:
            if named:
                raise
            log.warning("skipped %s", exc)  # the message names the file
            problems.append(exc)
            if skipped is not None:
                skipped.append((str(path), str(exc)))
    if not predictions:
        first = problems[0]
        raise RecordError(f"no record could be predicted ({len(problems)} skipped); the first: {first}", paths[0])
    return predictions


def evaluate(
    model: str | Path | nn.Module | FeatureTreeModel | ModelMean,
    dataset: str | Path,
    *,
    all_items: bool = False,
    n_resamples: int = 1000,
) -> dict[str, Any]:
    """Score a fine-tuned model on its task's dataset folder, with bootstrap 95 % intervals.

    By default only the items the model never trained on are scored: a checkpoint written by
    ``cardiolens finetune`` lists its test fold in ``split.json``. ``all_items=True`` scores every item
    (and says the score is then optimistic). A mean of models scores the mean of its members'
    probabilities, each member reading the dataset at its own rate.
    """
    from cardiolens.tasks.finetune import summarise
    from cardiolens.tasks.suite import get_task

    task_model = load_predictor(model)
    cfg = task_model.config
    task = get_task(cfg.task)
    split = _read_split(model)
    test_only = bool(split) and not all_items
    absent: list[str] = []
    if test_only:
        split, absent = _split_in(split, dataset, cfg.name)
    members = task_model.members if isinstance(task_model, ModelMean) else [task_model]
    data, probs = _dataset_probabilities(members[0], task, dataset, split if test_only else None)
    for member in members[1:]:
        member_data, member_probs = _dataset_probabilities(member, task, dataset, split if test_only else None)
        order = {item: i for i, item in enumerate(member_data.item_ids.astype(str))}
        ids = data.item_ids.astype(str)
        if len(order) != len(ids) or any(item not in order for item in ids):
            raise CardiolensError(f"the members of {cfg.name} read different items of {dataset}")
        reordered = [member_probs[order[item]] for item in ids]
        if isinstance(probs, list):  # per-sample: a curve per item, each of its own length
            probs = [a + b for a, b in zip(probs, reordered, strict=True)]
        else:
            probs = probs + np.asarray(reordered)
    probs = [p / len(members) for p in probs] if isinstance(probs, list) else probs / len(members)
    if test_only:
        scope = f"the model's test fold ({len(data)} items it never trained on)"
        if absent:  # a subset folder: say the score is not the whole test fold's
            shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
            scope += f"; {len(absent)} of its test records are not in this folder ({shown})"
    elif not split:
        scope = "all items (the model records no test fold: if it trained on this data, the score is optimistic)"
    else:
        scope = "all items, including those the model trained on (optimistic)"
    try:
        scores = summarise(task, data, probs, cfg.thresholds, n_resamples=n_resamples)
    except CardiolensError as exc:  # too few items of too few classes to score (a small folder)
        counts = ", ".join(f"{c} {n}" for c, n in _class_counts(task, data).items())
        raise CardiolensError(
            f"{dataset}: cannot score {len(data)} items of {scope} ({counts}): {exc}. Score a folder with more "
            "items of every class" + ("" if all_items or not split else ", or pass all_items (--all_items)")
        ) from None
    return {
        "model": cfg.name,
        "task": task.name,
        "dataset": str(dataset),
        "scope": scope,
        "items": len(data),
        "patients": int(len(np.unique(data.groups))),
        "scores": scores,
    }


def _class_counts(task: Any, data: Any) -> dict[str, int]:
    """Items per class (per-item targets), or per label (multi-label targets); empty for per-sample tasks."""
    targets = np.asarray(data.targets) if not isinstance(data.targets, list) else None
    if targets is None or targets.dtype == object:
        return {}
    if targets.ndim == 2:
        return {str(c): int(n) for c, n in zip(task.classes, targets.sum(axis=0), strict=False)}
    if task.kind == "binary":  # targets 0/1 for the one class named
        return {f"not {task.classes[0]}": int((targets == 0).sum()), str(task.classes[0]): int((targets == 1).sum())}
    return {str(c): int((targets == i).sum()) for i, c in enumerate(task.classes)}


def _dataset_probabilities(
    task_model: TaskModel | FeatureTreeModel, task: Any, dataset: str | Path, split: list[str] | None
) -> tuple[Any, np.ndarray | list[np.ndarray]]:
    """The task's items of ``dataset`` as one model reads them (only those of ``split`` when given), and
    the model's probabilities of each: an (items, classes) array, or for per-sample (beat detection)
    models a list of (outputs, samples) curves, one per item."""
    from cardiolens.tasks.finetune import predict_items
    from cardiolens.tasks.suite import load_task_data

    cfg = task_model.config
    options = {}
    if split and "records" in inspect.signature(task.load).parameters:
        options["records"] = split  # read only the test records
    if isinstance(task_model, BeatTreeModel):
        options["template"] = True  # its features compare each beat with its record's median beat
    data = load_task_data(task, dataset, cfg.fs, **options)
    if split:
        ids = data.item_ids.astype(str)
        # a split lists items, or records for tasks whose items are "record:beat" (mitbih-aami)
        keep = np.flatnonzero(np.isin(ids, split) | np.isin([i.split(":")[0] for i in ids], split))
        if not len(keep):
            raise CardiolensError(f"none of the {len(split)} test items of {cfg.name} are in {dataset}")
        data = data.subset(keep)
    if isinstance(task_model, RhythmTreeModel):
        probs = task_model.predict_signals(data.signals)
    elif isinstance(task_model, BeatTreeModel):
        from cardiolens.tasks.aami_features import aami_feature_matrix

        probs = task_model.ensemble.predict_proba(aami_feature_matrix(data))  # at the annotated beats
    else:
        with torch.inference_mode():
            probs = predict_items(task_model, data.signals, data.extra, batch_size=64)
    if getattr(cfg, "kind", None) == "per-sample":
        # a (outputs, samples) curve per item, items of different lengths: the task's score decodes the
        # beats of each and matches them with the reference beats (tasks_beats.make_beat_score)
        return data, [np.asarray(p, dtype=np.float64) for p in probs]
    return data, np.asarray(probs, dtype=np.float64)


def _split_in(split: list[str], dataset: str | Path, name: str) -> tuple[list[str], list[str]]:
    """The test items of ``split`` whose record is in ``dataset`` (a folder may hold a subset of the
    dataset), and the test records it lacks. Items are record ids or ``record:start`` (beat tasks)."""
    from cardiolens.datasets import open_dataset

    try:
        present = {str(r) for r in open_dataset(dataset).record_ids}
    except CardiolensError:
        return split, []  # the task's reader says what is wrong with the folder
    records = list(dict.fromkeys(item.split(":")[0] for item in split))
    absent = [r for r in records if r not in present]
    if len(absent) == len(records):
        shown = ", ".join(records[:5]) + (", ..." if len(records) > 5 else "")
        raise CardiolensError(f"none of the {len(records)} test records of {name} ({shown}) are in {dataset}")
    return [item for item in split if item.split(":")[0] in present], absent


def _read_split(model: Any) -> list[str] | None:
    if not isinstance(model, (str, Path)):
        return None
    from cardiolens.models.pretrained import weights_dir

    folder = weights_dir() / str(model) if (weights_dir() / str(model)).is_dir() else Path(model)
    path = folder / "split.json"
    if not path.is_file():
        return None
    return [str(x) for x in json.loads(path.read_text()).get("test", [])]


__all__ = [
    "Prediction",
    "as_task_model",
    "evaluate",
    "load_predictor",
    "model_input",
    "predict_paths",
    "predict_record",
    "record_files",
    "record_source",
    "write_predictions",
]
