"""Beat detection with fine-tuned models against classical detectors: ECG (MIT-BIH) and PPG (BIDMC).

ECG: the task ``mitbih-beats`` (see ``cardiolens.tasks.tasks_beats``) is cross-validated with
``cardiolens.tasks.finetune`` (5 folds grouped by record/patient), and each fold's model then finds
the beats of its test records, whole, exactly as the R-peak benchmark (``benchmarks/rpeaks_mitdb.py``)
scores the classical detectors: first signal of each record, beats matched within 150 ms, scored
"EC57" (first 5 min and ventricular flutter episodes not scored) and "whole record, VF excluded",
with its functions, so the two benchmarks' numbers are comparable. Each fold's decoding threshold
is chosen on that fold's validation records (never on its test records); the threshold 0.5 is
reported too. The classical detectors run in the same script on the same records.

PPG: ``bidmc-ppg-beats`` the same way: each fold's CNN finds the pulse peaks of its test records
(finger PPG, resampled to 50 Hz), against pulse peaks located from the simultaneous ECG
(``tasks_beats.ppg_reference``), scored where that reference holds (10-s blocks of trusted ECG,
shifted by the record's ECG-to-PPG delay), within 150 ms. Compared: HeartGPT's published PPG beat
model (``PPGPT_beat_5k_iters.zip``, 500-token windows every 100 samples, averaged, as its GUI does;
its threshold is chosen on each fold's non-test records) and the classical ``ppg_peaks`` methods.

95 % intervals: bootstrap over records (patients), 2000 resamples; differences between two methods
use the same resamples (paired).

Usage::

    .venv/bin/python benchmarks/beats_detection.py                      # trains what is missing, then scores
    .venv/bin/python benchmarks/beats_detection.py --parts ecg --methods cardiolens neurokit
    .venv/bin/python benchmarks/beats_detection.py --ecg-models ecg-cnn ecg-gpt --ecg-gpt-folds 0
    .venv/bin/python benchmarks/beats_detection.py --parts ecg --ecg-models ecg-cnn-aug --fusion ecg-cnn-aug \
        --methods cardiolens          # adds the row ecg-cnn-aug+cardiolens; other rows are kept from the JSON

Fusion (``--fusion RUN``): the classical ``cardiolens`` beats checked and completed by the run's beat
probability (``tasks_beats.fuse_beats``), its two thresholds chosen per fold on that fold's validation
records, before any test record is read.

Training runs live in ``runs/beats/<name>`` (``finetune`` resumes them and skips finished folds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rpeaks_mitdb as rp  # noqa: E402  (the R-peak benchmark's scoring, reused as is)
from _common import REPO, unpacked, write_result  # noqa: E402

TORCH_THREADS = 1

# the fine-tuning runs of this benchmark (cardiolens.tasks.finetune.FinetuneConfig fields)
ECG_CNN = {
    "task": "mitbih-beats",
    "backbone": "resnet1d-dense",
    "epochs": 12,
    "patience": 4,
    "batch_size": 32,
    "crops_per_item": 2,
}
RUNS: dict[str, dict[str, Any]] = {
    "ecg-cnn": ECG_CNN,
    # the same run with noise and baseline-wander augmentation of the training windows
    "ecg-cnn-aug": {**ECG_CNN, "augment": "noise"},
    # ... and every lead of the training records as items of their own (one crop each: as many steps)
    "ecg-cnn-aug-leads": {**ECG_CNN, "crops_per_item": 1, "augment": "noise", "load_options": {"leads": "all"}},
    "ecg-gpt": {
        "task": "mitbih-beats",
        "backbone": "ecgpt-small",
        "epochs": 4,
        "patience": 2,
        "batch_size": 16,
        "lr": 3e-4,
        "crops_per_item": 1,
    },
    "ppg-cnn": {
        "task": "bidmc-ppg-beats",
        "backbone": "runs/beats/resnet1d-dense-50hz",  # resnet1d-dense whose config says 50 Hz (see cnn_50hz)
        "from_scratch": True,
        "epochs": 15,
        "patience": 4,
        "batch_size": 32,
        "crops_per_item": 4,
    },
}
ECG_RUNS = [name for name, run in RUNS.items() if run["task"] == "mitbih-beats"]
PPG_METHODS = ("elgendi2013", "neurokit")


def cnn_50hz(path: Path) -> Path:
    """A fresh ``resnet1d-dense`` checkpoint whose config says 50 Hz, so ``finetune`` loads PPG at 50 Hz.

    ``finetune`` reads the data at the backbone config's rate, and the CNN preset says 100 Hz.
    """
    from cardiolens.models import create_model, save_checkpoint

    if not (path / "config.json").is_file():
        save_checkpoint(create_model("resnet1d-dense", fs=50.0, modality="PPG"), path, "fresh resnet1d-dense, 50 Hz")
    return path


def run_finetune(name: str, data: Path, folds: list[int] | None, runs: Path) -> dict[str, Any]:
    from cardiolens.tasks.finetune import FinetuneConfig, finetune

    settings = dict(RUNS[name])
    if name == "ppg-cnn":
        settings["backbone"] = str(cnn_50hz(REPO / settings["backbone"]).relative_to(REPO))
    cfg = FinetuneConfig(
        **settings,
        data=_relative(data),
        out=_relative(runs / name),
        fold_ids=folds,
        threads=TORCH_THREADS,
        progress=False,
    )
    return finetune(cfg)


def _relative(path: Path) -> str:
    """``path`` relative to the repository when inside it (run settings stay the same on every checkout)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def fold_models(name: str, runs: Path) -> dict[int, Any]:
    """Trained fold models of a run, with the validation items of each fold."""
    from cardiolens.models import load_model

    out = {}
    for folder in sorted((runs / name).glob("fold-*")):
        if (folder / "model" / "config.json").is_file() and (folder / "result.json").is_file():
            out[int(folder.name.split("-")[1])] = load_model(folder / "model")
    return out


def validation_items(data: Any, folds: np.ndarray, fold: int, cfg: dict[str, Any]) -> Any:
    """The validation items ``finetune`` carved for ``fold`` (same functions, same seeds)."""
    from cardiolens.tasks.finetune import FinetuneConfig, fraction_of_patients, split_train_val

    c = FinetuneConfig(**{k: v for k, v in cfg.items() if k in FinetuneConfig.__dataclass_fields__})
    pool = np.flatnonzero(folds != fold)
    pool = pool[fraction_of_patients(data.groups[pool], c.label_fraction, c.seed + fold)]
    _, val_pos = split_train_val(data.subset(pool), c.val_fraction, c.seed + fold)
    return data.subset(pool[val_pos])


def fold_of_items(run: Path, data: Any) -> np.ndarray:
    assignment = json.loads((run / "folds.json").read_text())
    return np.array([assignment[i] for i in data.item_ids.tolist()])


def threshold_for(model: Any, task: Any, val: Any) -> float:
    """The model's validation threshold (finetune's, when it chose one; else chosen here on ``val``)."""
    import torch

    from cardiolens.tasks.finetune import predict_items
    from cardiolens.tasks.tasks_beats import choose_threshold

    if model.config.thresholds:
        return float(model.config.thresholds[0])
    with torch.inference_mode():
        probs = predict_items(model, val.signals, batch_size=64)
    return choose_threshold(task, val.targets, probs)


def model_curve(model: Any, x: np.ndarray, fs_in: float) -> np.ndarray:
    """The model's beat probability over a whole 1-D signal at ``fs_in`` (returned at the model's rate)."""
    import torch

    from cardiolens.signal.resample import resample
    from cardiolens.tasks.finetune import predict_items

    xr = resample(np.asarray(x, dtype=np.float64), fs_in, model.config.fs).astype(np.float32)
    with torch.inference_mode():
        return predict_items(model, [xr[None]], batch_size=64)[0][0]


def scored_row(name: str, fold: int, reference: np.ndarray, found: np.ndarray, fs: float, excluded: list) -> dict:
    """``rp.score`` of one record, with the matched beats' location errors kept apart (``_offsets_ms``)."""
    return {"record": name, "fold": fold, **rp.score(reference, found, fs, excluded)}


def summarise_rows(rows: list[dict], reps: int, seed: int) -> dict[str, Any]:
    """Gross counts and rates with record-bootstrap intervals; removes the rows' ``_offsets_ms``."""
    tp, fn, fp = (sum(r[k] for r in rows) for k in ("tp", "fn", "fp"))
    offsets = np.concatenate([r.pop("_offsets_ms", np.zeros(0)) for r in rows])
    return {
        "tp": tp,
        "fn": fn,
        "fp": fp,
        **{k: round(v, 3) for k, v in rp.rates(tp, fn, fp).items()},
        "ci95": rp.bootstrap(rows, reps, seed),
        "median_abs_offset_ms": round(float(np.median(offsets)), 2) if offsets.size else None,
    }


def paired_difference(a: list[dict], b: list[dict], reps: int, seed: int) -> dict[str, Any]:
    """F1 of ``a`` minus F1 of ``b`` (percentage points) on the same record resamples, with a 95 % interval."""
    ca = np.array([[r["tp"], r["fn"], r["fp"]] for r in a], dtype=np.float64)
    cb = np.array([[r["tp"], r["fn"], r["fp"]] for r in b], dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(a), size=(reps, len(a)))

    def f1(c: np.ndarray) -> np.ndarray:
        tp, fn, fp = (c[picks, i].sum(axis=1) for i in range(3))
        return 100 * 2 * tp / (2 * tp + fn + fp)

    diff = f1(ca) - f1(cb)
    full = lambda c: 100 * 2 * c[:, 0].sum() / (2 * c[:, 0].sum() + c[:, 1].sum() + c[:, 2].sum())  # noqa: E731
    lo, hi = np.percentile(diff, [2.5, 97.5])
    return {"f1_difference": round(float(full(ca) - full(cb)), 3), "ci95": [round(float(lo), 3), round(float(hi), 3)]}


# -- fusion of a model with the classical detector -------------------------------------------------------
FUSED_WITH = "cardiolens"  # the classical ecg_peaks method a model's probability checks and completes
# the two thresholds of tasks_beats.fuse_beats, chosen per fold on its validation records; 0 keeps every
# classical beat and None adds no model beat, so the grid holds the classical detector alone
KEEP_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
ADD_GRID = (None, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5)
FUSION_RULE = (
    "tasks_beats.fuse_beats: a cardiolens beat is kept when the model's probability within +-100 ms reaches "
    "the keeping threshold; a model beat at the adding threshold (locate_beats) is added when no kept "
    "cardiolens beat lies within 150 ms. Both thresholds chosen per fold on its validation records (whole "
    "records at 360 Hz, VF excluded, best F1; ties go to the pair nearest the classical detector alone: "
    "lowest keeping, highest adding threshold)"
)


def choose_fusion(cases: list[dict[str, Any]], model_fs: float) -> dict[str, Any]:
    """The (keep, add) thresholds of ``fuse_beats`` with the best F1 over ``cases`` (validation records).

    Each case holds the record's reference ``beats``, ``excluded`` spans, ``classical`` beats, the model's
    ``curve``, the signal ``x`` and ``fs``. Candidates are tried from the classical detector alone outwards
    (keeping threshold rising, adding threshold falling); a later pair must be strictly better.
    """
    from cardiolens.tasks.tasks_beats import fuse_beats

    best: dict[str, Any] = {"f1": -1.0}
    for keep in KEEP_GRID:
        for add in ADD_GRID:
            counts = np.zeros(3, dtype=np.int64)
            for c in cases:
                fused = fuse_beats(c["classical"], c["curve"], model_fs, c["x"], c["fs"], keep, add)
                s = rp.score(c["beats"], fused, c["fs"], c["excluded"])
                counts += [s["tp"], s["fn"], s["fp"]]
            f1 = rp.rates(*counts.tolist())["f1"]
            if f1 > best["f1"]:
                best = {"keep": keep, "add": add, "f1": round(f1, 3), "tp_fn_fp": counts.tolist()}
    return best


# -- ECG --------------------------------------------------------------------------------------------
def ecg_part(args: argparse.Namespace, runs: Path) -> dict[str, Any]:
    import neurokit2  # noqa: F401  (imported once, before timing anything)

    from cardiolens.io import load_record
    from cardiolens.signal.peaks import ecg_peaks
    from cardiolens.tasks.suite import get_task, load_task_data
    from cardiolens.tasks.tasks_beats import fuse_beats, locate_beats

    folder = args.mitdb or unpacked("mitdb-ds1.zip") / "mit-bih-arrhythmia-database-1.0.0"
    task = get_task("mitbih-beats")
    models: dict[str, dict[int, Any]] = {}
    finetune_results = {}
    for name in args.ecg_models:
        folds = args.ecg_gpt_folds if name == "ecg-gpt" else None
        res = run_finetune(name, folder, folds, runs)
        finetune_results[name] = {
            "folds": res["folds"],
            "oof_items_threshold_0.5": res["oof"],
            "command": res["command"],
        }
        models[name] = fold_models(name, runs)
    data = load_task_data(task, folder, task.fs)
    first = args.ecg_models[0]
    fold_of = fold_of_items(runs / first, data)
    record_fold = {i.split(":")[0]: int(f) for i, f in zip(data.item_ids.tolist(), fold_of.tolist(), strict=True)}
    for name in args.ecg_models[1:]:  # every model is scored on the records its own fold held out
        theirs = json.loads((runs / name / "folds.json").read_text())
        moved = sorted({i.split(":")[0] for i, f in theirs.items() if record_fold[i.split(":")[0]] != f})
        if moved:
            raise SystemExit(f"{name}: folds differ from {first}'s for records {', '.join(moved)}")
    thresholds: dict[str, dict[int, float]] = {}
    for name, by_fold in models.items():
        thresholds[name] = {}
        for fold, model in by_fold.items():
            val = validation_items(data, fold_of, fold, RUNS[name])
            thresholds[name][fold] = threshold_for(model, task, val)

    methods = list(dict.fromkeys(args.methods))
    fusion: dict[str, dict[str, Any]] = {}  # fused method -> the model it fuses and its choices per fold
    for name in args.fusion:
        if name not in models:
            raise SystemExit(f"--fusion {name}: not among --ecg-models")
        if FUSED_WITH not in methods:
            raise SystemExit(f"--fusion needs the classical method {FUSED_WITH!r} in --methods")
        fusion[f"{name}+{FUSED_WITH}"] = {"model": name, "folds": {}}
    validation_cases: dict[str, dict[str, Any]] = {}  # record -> signal, reference, classical beats

    def validation_case(rid: str) -> dict[str, Any]:
        if rid not in validation_cases:
            record = load_record(folder / f"{rid}.hea")
            x, fs = record.signal[0].astype(np.float64), record.fs
            beats, episodes = rp.reference_of(record)
            classical = ecg_peaks(x, fs, method=FUSED_WITH)
            validation_cases[rid] = {"x": x, "fs": fs, "beats": beats, "excluded": episodes, "classical": classical}
        return validation_cases[rid]

    for fname, spec in fusion.items():  # chosen on validation records only, before any test record is read
        for fold, model in models[spec["model"]].items():
            val = validation_items(data, fold_of, fold, RUNS[spec["model"]])
            val_records = sorted({i.split(":")[0] for i in val.item_ids.tolist()})
            cases = [validation_case(rid) for rid in val_records]
            cases = [{**c, "curve": model_curve(model, c["x"], c["fs"])} for c in cases]
            spec["folds"][fold] = {"validation_records": val_records, **choose_fusion(cases, model.config.fs)}
            print(f"{fname} fold {fold}: {spec['folds'][fold]}", file=sys.stderr)
        thresholds[fname] = {f: {"keep": c["keep"], "add": c["add"]} for f, c in spec["folds"].items()}
    validation_cases.clear()
    model_rows = [f"{n}{suffix}" for n in models for suffix in ("", "@0.5")] + list(fusion)
    rows: dict[str, dict[str, list[dict]]] = {m: {v: [] for v in rp.VARIANTS} for m in methods + model_rows}
    seconds = dict.fromkeys(methods + list(models) + list(fusion), 0.0)
    names = sorted(record_fold)
    warnings.filterwarnings("ignore", module="neurokit2")
    for name in names:
        record = load_record(folder / f"{name}.hea")
        x, fs = record.signal[0].astype(np.float64), record.fs
        beats, episodes = rp.reference_of(record)
        exclusions = {"ec57": [(0, rp.LEARNING_S * fs), *episodes], "whole_vf_excluded": episodes, "unexcluded": []}
        found: dict[str, np.ndarray] = {}
        for method in methods:
            t0 = time.perf_counter()
            found[method] = ecg_peaks(x, fs, method=method)
            seconds[method] += time.perf_counter() - t0
        fold = record_fold[name]
        for mname, by_fold in models.items():
            if fold not in by_fold:
                continue
            model = by_fold[fold]
            t0 = time.perf_counter()
            curve = model_curve(model, x, fs)
            seconds[mname] += time.perf_counter() - t0
            for suffix, t in (("", thresholds[mname][fold]), ("@0.5", 0.5)):
                found[mname + suffix], _ = locate_beats(curve, model.config.fs, x, fs, t, "ECG")
            for fname, spec in fusion.items():
                if spec["model"] == mname:
                    chosen = spec["folds"][fold]
                    t0 = time.perf_counter()
                    found[fname] = fuse_beats(
                        found[FUSED_WITH], curve, model.config.fs, x, fs, chosen["keep"], chosen["add"]
                    )
                    seconds[fname] += time.perf_counter() - t0
        for method, det in found.items():
            for variant in rp.VARIANTS:
                rows[method][variant].append(scored_row(name, fold, beats, det, fs, exclusions[variant]))
        print(
            f"{name} (fold {fold}): "
            + ", ".join(f"{m} {rows[m]['ec57'][-1]['fn']}/{rows[m]['ec57'][-1]['fp']}" for m in found)
            + "  (EC57 FN/FP)",
            file=sys.stderr,
        )
    results = {}
    for method, by_variant in rows.items():
        if not by_variant["ec57"]:
            continue
        entry = {v: summarise_rows(by_variant[v], args.bootstrap, args.seed) for v in rp.VARIANTS}
        entry["records"] = [r["record"] for r in by_variant["ec57"]]
        entry["per_record"] = {v: by_variant[v] for v in ("ec57", "whole_vf_excluded")}
        base = method.split("@")[0]
        if base in seconds:
            entry["seconds"] = round(seconds[base], 3)
        results[method] = entry
    for fname, spec in fusion.items():  # a fused method's time: the model's, the classical detector's, its own
        results[fname]["seconds"] = round(seconds[fname] + seconds[spec["model"]] + seconds[FUSED_WITH], 3)
    comparisons = {}
    for name in [*models, *fusion]:
        covered = set(results[name]["records"])
        for variant in ("ec57", "whole_vf_excluded"):
            best = max(
                methods,
                key=lambda m: rp.rates(
                    *(sum(r[k] for r in rows[m][variant] if r["record"] in covered) for k in ("tp", "fn", "fp"))
                )["f1"],
            )
            a = rows[name][variant]
            b = [r for r in rows[best][variant] if r["record"] in covered]
            comparisons[f"{name} vs {best} ({variant})"] = paired_difference(a, b, args.bootstrap, args.seed)
            if name in fusion:
                alone = fusion[name]["model"]
                comparisons[f"{name} vs {alone} ({variant})"] = paired_difference(
                    a, rows[alone][variant], args.bootstrap, args.seed
                )
    return {
        "data": {
            "folder": str(folder),
            "records": names,
            "folds": {
                str(f): sorted(r for r, k in record_fold.items() if k == f) for f in sorted(set(record_fold.values()))
            },
            "signal": "first signal of each record (MLII; V5 in 102, 104, 114), raw; models read it at 100 Hz",
        },
        "protocol": {
            "reference": "as benchmarks/rpeaks_mitdb.py: beat annotations, 150 ms, one-to-one matching",
            "variants": "ec57: first 5 min and VF episodes not scored; whole_vf_excluded: VF episodes not scored",
            "models": "each fold's model on its test records (whole records, windows of 10 s every 5 s, overlaps "
            "averaged), beats decoded at the fold's validation threshold (name) or at 0.5 (name@0.5), "
            "refractory 300 ms (shortened for fast rhythms), mapped to 360 Hz and moved onto the R peak within "
            "50 ms (tasks_beats.locate_beats, what detect_beats returns)",
            "fusion": FUSION_RULE,
            "ci95": f"bootstrap over records ({args.bootstrap} resamples, seed {args.seed}); comparisons paired",
        },
        "thresholds": thresholds,
        "fusion": {
            f: {"rule": FUSION_RULE, "keep_grid": KEEP_GRID, "add_grid": ADD_GRID, **spec} for f, spec in fusion.items()
        },
        "finetune": finetune_results,
        "methods": results,
        "comparisons": comparisons,
    }


# -- PPG --------------------------------------------------------------------------------------------
def ppg_part(args: argparse.Namespace, runs: Path) -> dict[str, Any]:
    import neurokit2  # noqa: F401

    from cardiolens.datasets import BIDMC
    from cardiolens.models import load_model
    from cardiolens.signal.peaks import ppg_peaks
    from cardiolens.signal.resample import resample
    from cardiolens.tasks.suite import get_task, load_task_data
    from cardiolens.tasks.tasks_beats import (
        THRESHOLDS,
        complement,
        heartgpt_beat_probabilities,
        locate_beats,
        ppg_reference,
    )

    folder = args.bidmc or unpacked("bidmc.zip") / "bidmc-1.0.0"
    task = get_task("bidmc-ppg-beats")
    res = run_finetune("ppg-cnn", folder, None, runs)
    models = fold_models("ppg-cnn", runs)
    data = load_task_data(task, folder, task.fs)
    fold_of = fold_of_items(runs / "ppg-cnn", data)
    record_fold = {i.split(":")[0]: int(f) for i, f in zip(data.item_ids.tolist(), fold_of.tolist(), strict=True)}
    heartgpt_path = args.heartgpt or (REPO.parent / "shared" / "data" / "heartgpt" / "PPGPT_beat_5k_iters.zip")
    heartgpt = load_model(heartgpt_path)
    cache = runs / f"heartgpt-ppg-curves-{Path(heartgpt_path).stat().st_size}.npz"
    curves: dict[str, np.ndarray] = dict(np.load(cache)) if cache.is_file() else {}
    timed: list[str] = []
    thresholds: dict[str, dict[int, float]] = {"ppg-cnn": {}, "heartgpt-ppg-beat": {}}
    for fold, model in models.items():
        thresholds["ppg-cnn"][fold] = threshold_for(model, task, validation_items(data, fold_of, fold, RUNS["ppg-cnn"]))
    db = BIDMC(folder)
    methods = list(PPG_METHODS)
    seconds = dict.fromkeys(["ppg-cnn", "heartgpt-ppg-beat", *methods], 0.0)
    cases = {}  # record -> reference, exclusions, detections and the HeartGPT curve
    warnings.filterwarnings("ignore", module="neurokit2")
    for rid in sorted(record_fold):
        fold = record_fold[rid]
        ecg, ppg = db.ecg(rid), db.ppg(rid)
        fs, x = ppg.fs, ppg.signal[0].astype(np.float64)
        ref = ppg_reference(ecg.signal[0], x, fs)
        excluded = [(a, b - 1) for a, b in complement([(a, b - 1) for a, b in ref.spans], ppg.n_samples)]
        found: dict[str, np.ndarray] = {}
        for method in methods:
            t0 = time.perf_counter()
            found[method] = ppg_peaks(x, fs, method=method)
            seconds[method] += time.perf_counter() - t0
        model = models[fold]
        t0 = time.perf_counter()
        curve = model_curve(model, x, fs)
        seconds["ppg-cnn"] += time.perf_counter() - t0
        for suffix, t in (("", thresholds["ppg-cnn"][fold]), ("@0.5", 0.5)):
            found["ppg-cnn" + suffix], _ = locate_beats(curve, model.config.fs, x, fs, t, "PPG")
        t0 = time.perf_counter()
        if rid in curves:  # computed by an earlier run with the same weights (they take minutes)
            hg = curves[rid]
        else:
            hg = heartgpt_beat_probabilities(heartgpt, resample(x, fs, heartgpt.config.fs))
            seconds["heartgpt-ppg-beat"] += time.perf_counter() - t0
            timed.append(rid)
            curves[rid] = hg
        cases[rid] = {"fold": fold, "fs": fs, "x": x, "ref": ref, "excluded": excluded, "found": found}
        cases[rid]["heartgpt"] = hg
        print(f"{rid} (fold {fold}) done", file=sys.stderr)

    def heartgpt_found(rid: str, t: float) -> np.ndarray:
        c = cases[rid]
        return locate_beats(c["heartgpt"], heartgpt.config.fs, c["x"], c["fs"], t, "PPG")[0]

    def f1_over(rids: list[str], t: float) -> float:
        counts = np.zeros(3)
        for rid in rids:
            c = cases[rid]
            s = rp.score(c["ref"].pulses, heartgpt_found(rid, t), c["fs"], c["excluded"])
            counts += [s["tp"], s["fn"], s["fp"]]
        return rp.rates(*counts)["f1"]

    np.savez(cache, **curves)
    # HeartGPT's beats peak at low probabilities: its grid reaches down to 0.01
    grid = sorted((0.01, 0.02, 0.03, 0.04, *THRESHOLDS), key=lambda v: abs(v - 0.5))
    for fold in models:  # HeartGPT's threshold: chosen on the fold's non-test records
        rest = [r for r, f in record_fold.items() if f != fold]
        thresholds["heartgpt-ppg-beat"][fold] = max(grid, key=lambda t: f1_over(rest, t))
    names = ["ppg-cnn", "ppg-cnn@0.5", "heartgpt-ppg-beat", *methods]
    rows: dict[str, list[dict]] = {m: [] for m in names}
    for rid, c in cases.items():
        c["found"]["heartgpt-ppg-beat"] = heartgpt_found(rid, thresholds["heartgpt-ppg-beat"][c["fold"]])
        for method in names:
            rows[method].append(scored_row(rid, c["fold"], c["ref"].pulses, c["found"][method], c["fs"], c["excluded"]))
    results = {}
    for method, r in rows.items():
        results[method] = {**summarise_rows(r, args.bootstrap, args.seed), "per_record": r}
        if method in seconds:
            results[method]["seconds"] = round(seconds[method], 3)
    if len(timed) < len(cases):  # some curves came from the cache: their time is not known
        results["heartgpt-ppg-beat"].pop("seconds", None)
        results["heartgpt-ppg-beat"]["seconds_note"] = f"curves of {len(cases) - len(timed)} records from {cache.name}"
    best = max(methods, key=lambda m: results[m]["f1"])
    comparisons = {
        f"ppg-cnn vs {best}": paired_difference(rows["ppg-cnn"], rows[best], args.bootstrap, args.seed),
        f"heartgpt-ppg-beat vs {best}": paired_difference(
            rows["heartgpt-ppg-beat"], rows[best], args.bootstrap, args.seed
        ),
        "ppg-cnn vs heartgpt-ppg-beat": paired_difference(
            rows["ppg-cnn"], rows["heartgpt-ppg-beat"], args.bootstrap, args.seed
        ),
    }
    return {
        "data": {
            "folder": str(folder),
            "records": sorted(record_fold),
            "left_out": data.info.get("skipped", []),
            "folds": {
                str(f): sorted(r for r, k in record_fold.items() if k == f) for f in sorted(set(record_fold.values()))
            },
            "signal": "finger PPG (PLETH), 125 Hz; models read it resampled to 50 Hz",
            "reference_per_record": {
                rid: {
                    "lag_s": round(c["ref"].lag_s, 3),
                    "trusted_fraction": round(c["ref"].trusted_fraction, 3),
                    "detector_offset_s": round(c["ref"].detector_offset_s, 3),
                }
                for rid, c in cases.items()
            },
        },
        "protocol": {
            "reference": "pulse peaks located from ECG lead II (cardiolens.tasks.tasks_beats.ppg_reference), scored "
            "inside the trusted-ECG spans only; 150 ms, one-to-one matching",
            "models": "ppg-cnn: each fold's model on its test records (whole records), threshold chosen on the "
            "fold's validation records (ppg-cnn@0.5: 0.5); heartgpt-ppg-beat: published weights, 500-sample "
            "windows every 100, averaged, threshold chosen on the fold's non-test records (grid 0.01-0.95); both "
            "decoded with "
            "tasks_beats.locate_beats (decode_beats, then each beat moved onto the PPG's maximum within 50 ms)",
            "ci95": f"bootstrap over records ({args.bootstrap} resamples, seed {args.seed}); comparisons paired",
        },
        "thresholds": thresholds,
        "finetune": {
            "ppg-cnn": {"folds": res["folds"], "oof_items_threshold_0.5": res["oof"], "command": res["command"]}
        },
        "methods": results,
        "comparisons": comparisons,
    }


def _f1(entry: dict[str, Any]) -> str:
    low, high = entry["ci95"]["f1"]
    return f"{entry['f1']:.2f} [{low:.2f}-{high:.2f}]"


def markdown_tables(payload: dict[str, Any]) -> str:
    """The summary tables of docs/BENCHMARKS.md."""
    lines = []
    if "ecg" in payload:
        lines += [
            "| method | EC57 Se % | EC57 +P % | EC57 F1 % [95 % CI] | whole record, VF excl. F1 % | records |",
            "|---|---|---|---|---|---|",
        ]
        for m, e in payload["ecg"]["methods"].items():
            ec, wv = e["ec57"], e["whole_vf_excluded"]
            lines.append(f"| `{m}` | {ec['se']:.2f} | {ec['ppv']:.2f} | {_f1(ec)} | {_f1(wv)} | {len(e['records'])} |")
    if "ppg" in payload:
        lines += ["", "| method | Se % | +P % | F1 % [95 % CI] |", "|---|---|---|---|"]
        for m, e in payload["ppg"]["methods"].items():
            lines.append(f"| `{m}` | {e['se']:.2f} | {e['ppv']:.2f} | {_f1(e)} |")
    return "\n".join(lines)


SHIPPED_FOLD = 0  # declared before any result was seen: the shipped model is fold 0's, never the best fold's


def ship_beats_ecg(payload: dict[str, Any], runs: Path, out: Path, run: str = "ecg-cnn") -> Path:
    """Export fold ``SHIPPED_FOLD`` of the ECG run ``run`` as the shipped ``beats-ecg``, with its model card.

    The fold's validation threshold goes into the model's config; ``split.json`` (the items it trained
    on, validated on and never saw) travels with it, so ``cardiolens evaluate beats-ecg`` scores
    only the unseen records.
    """
    from cardiolens.models import load_model, save_checkpoint

    ecg = payload["ecg"]
    folder = runs / run / f"fold-{SHIPPED_FOLD}" / "model"
    model = load_model(folder)
    chosen = ecg["thresholds"][run]  # fold keys are ints here, strings when read back from the JSON
    threshold = chosen[SHIPPED_FOLD] if SHIPPED_FOLD in chosen else chosen[str(SHIPPED_FOLD)]
    model.config.thresholds = [float(threshold)]
    model.config.name = "beats-ecg"
    split = json.loads((folder / "split.json").read_text())
    held_out = ecg["data"]["folds"][str(SHIPPED_FOLD)]
    cv, classical = ecg["methods"][run], ecg["methods"]["cardiolens"]
    settings = RUNS[run]
    training = "noise and baseline-wander augmentation of the training windows, " if settings.get("augment") else ""

    def errors(entry: dict[str, Any]) -> dict[str, int]:
        return {r["record"]: r["fn"] + r["fp"] for r in entry["per_record"]["whole_vf_excluded"]}

    mine, theirs = errors(cv), errors(classical)
    worse = sorted((r for r in mine if mine[r] - theirs[r] >= 5), key=lambda r: theirs[r] - mine[r])
    better = sorted((r for r in mine if theirs[r] - mine[r] >= 5), key=lambda r: mine[r] - theirs[r])

    def listed(records: list[str]) -> str:
        return ", ".join(f"{r} ({mine[r]} against {theirs[r]})" for r in records) or "none"

    fold_rows = [r for r in cv["per_record"]["whole_vf_excluded"] if r["fold"] == SHIPPED_FOLD]
    tp, fn, fp = (sum(r[k] for r in fold_rows) for k in ("tp", "fn", "fp"))
    own = rp.rates(tp, fn, fp)

    train_records = sorted({i.split(":")[0] for i in split["train"]})
    val_records = sorted({i.split(":")[0] for i in split["val"]})

    def line(e: dict[str, Any]) -> str:
        low, high = e["ci95"]["f1"]
        return f"Se {e['se']:.2f} %, +P {e['ppv']:.2f} %, F1 {e['f1']:.2f} % [95 % CI {low:.2f}-{high:.2f}]"

    card = f"""# beats-ecg

ECG beat (R-peak) detector trained by cardiolens: a beat probability at every sample from a small dilated
residual CNN (`resnet1d-dense`, {model.num_params() / 1000:.0f} k parameters, trained from scratch), decoded into beats.
Use it with `cardiolens.tasks.tasks_beats.detect_beats(model, record)` or `cardiolens predict beats-ecg RECORD`.

- Task: `mitbih-beats` (`cardiolens.tasks.tasks_beats`): target 1 within +-50 ms of every annotated beat.
- Input: one ECG lead, resampled to 100 Hz, read in windows of 10 s every 5 s (overlaps averaged), each
  window z-scored; records of at least 5 s. Any ECG lead is accepted; it was trained on MLII (V5 in 102, 104).
- Output: beats = local maxima of the probability >= {threshold:g} (chosen on this fold's validation records),
  300 ms apart (shortened for fast rhythms), mapped back to the record's samples and moved onto the R peak
  of the lead at its own rate (within 50 ms).
- Data: MIT-BIH Arrhythmia Database, the 26 records in ../shared/data (DS1 + paced 102, 104, 107, 217), first
  signal, 60-s items, ventricular flutter episodes left out. 5-fold cross-validation grouped by record (patient);
  {training}up to {settings["epochs"]} epochs, {settings["crops_per_item"]} random 10-s crops per item and epoch.
- This checkpoint is the model of fold {SHIPPED_FOLD} (declared before results were seen): trained on
  {len(train_records)} records, early-stopped and thresholded on {len(val_records)} ({", ".join(val_records)}),
  and it never saw records {", ".join(held_out)} (`split.json` lists the items).
- On its unseen records (whole records, VF excluded, 150 ms, as `benchmarks/rpeaks_mitdb.py`):
  Se {own["se"]:.2f} %, +P {own["ppv"]:.2f} %, F1 {own["f1"]:.2f} % ({tp} TP, {fn} FN, {fp} FP).
- Cross-validated over all 26 records (each fold's model on its unseen records), EC57 scoring:
  {line(cv["ec57"])}; whole record, VF excluded: {line(cv["whole_vf_excluded"])}.
  The classical `ecg_peaks` (method `cardiolens`) on the same records, EC57: {line(classical["ec57"])}.
- Reproduce: `.venv/bin/python benchmarks/beats_detection.py --parts ecg --ecg-models {run} --ship --ship-run {run}`
  (fine-tuning command of the run: `{ecg["finetune"][run]["command"]}`); results in
  `benchmarks/results/beats_detection.json`. The run was chosen among the ECG runs there by its
  cross-validated F1, so that number is slightly optimistic for this configuration.

Limitations: trained on about 20 records of one database. Cross-validated, it does not beat the classical
`cardiolens` detector overall. Records where it makes at least 5 more errors (FN + FP, whole record) than
the classical detector: {listed(worse)}; at least 5 fewer: {listed(better)} (docs/BENCHMARKS.md).
Not a medical device: for research use.
"""
    return save_checkpoint(model, out, card, overwrite=True, extra_files={"split.json": json.dumps(split)})


def keep_earlier_entries(now: dict[str, Any], before: dict[str, Any], earlier: dict[str, Any]) -> None:
    """Add to the ECG part scored now the methods (and their thresholds, fine-tuning runs, fusion choices
    and comparisons) an earlier run scored and this one did not, each marked with the run it came from."""
    if before.get("data", {}).get("folds") != now["data"]["folds"]:
        raise SystemExit("the earlier ECG results used other folds: run every ECG method again")
    marks = dict(before.get("kept_from_earlier_run", {}))
    kept = [m for m in before.get("methods", {}) if m not in now["methods"]]
    order = [*before.get("methods", {}), *(m for m in now["methods"] if m not in before.get("methods", {}))]
    merged = {**now["methods"], **{m: before["methods"][m] for m in kept}}
    now["methods"] = {m: merged[m] for m in order}  # the earlier rows' order, new rows last
    for key in ("thresholds", "finetune", "fusion", "comparisons"):
        for name, value in before.get(key, {}).items():
            now.setdefault(key, {})
            if name not in now[key]:
                now[key][name] = value
    for method in kept:
        marks.setdefault(method, earlier)
    now["kept_from_earlier_run"] = {m: marks[m] for m in kept}
    if not kept:
        now.pop("kept_from_earlier_run")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["ecg", "ppg"], choices=["ecg", "ppg"])
    parser.add_argument(
        "--mitdb", type=Path, default=None, help="MIT-BIH folder (default: ../shared/data/mitdb-ds1.zip)"
    )
    parser.add_argument("--bidmc", type=Path, default=None, help="BIDMC folder (default: ../shared/data/bidmc.zip)")
    parser.add_argument(
        "--heartgpt", type=Path, default=None, help="PPGPT_beat_5k_iters.zip (default: ../shared/data/heartgpt)"
    )
    parser.add_argument("--ecg-models", nargs="+", default=["ecg-cnn"], choices=list(ECG_RUNS))
    parser.add_argument(
        "--fusion",
        nargs="*",
        default=[],
        choices=list(ECG_RUNS),
        help=f"ECG runs (among --ecg-models) also scored fused with {FUSED_WITH!r} (row RUN+{FUSED_WITH})",
    )
    parser.add_argument("--ecg-gpt-folds", type=int, nargs="+", default=[0], help="folds of the (slow) GPT run")
    parser.add_argument("--methods", nargs="+", default=list(rp.DEFAULT_METHODS), help="classical ecg_peaks methods")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "beats", help="folder of the fine-tuning runs")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "beats_detection.json")
    parser.add_argument(
        "--ship", action="store_true", help="export fold 0 of --ship-run as src/cardiolens/weights/beats-ecg"
    )
    parser.add_argument("--ship-run", default="ecg-cnn", choices=list(ECG_RUNS), help="the ECG run --ship exports")
    parser.add_argument(
        "--ship-only", action="store_true", help="ship from the results in --out without scoring again (with --ship)"
    )
    args = parser.parse_args(argv)

    import os

    import torch

    torch.set_num_threads(TORCH_THREADS)
    os.chdir(REPO)  # run folders, data paths and the task cache are relative to the repository
    weights = REPO / "src" / "cardiolens" / "weights" / "beats-ecg"
    if args.ship_only:
        print(f"shipped {ship_beats_ecg(json.loads(args.out.read_text()), args.runs, weights, args.ship_run)}")
        return {}
    payload: dict[str, Any] = {"benchmark": "beat detection: fine-tuned models vs classical detectors", "runs": RUNS}
    if "ecg" in args.parts:
        payload["ecg"] = ecg_part(args, args.runs)
    if "ppg" in args.parts:
        payload["ppg"] = ppg_part(args, args.runs)
    if args.out.is_file():  # read again now: what was not run now keeps its earlier result, marked as such
        before = json.loads(args.out.read_text())
        earlier = {k: before.get(k) for k in ("command", "commit", "date")}
        for part in ("ecg", "ppg"):
            if part not in payload and part in before:
                payload[part] = before[part]
                payload[part].setdefault("from_earlier_run", earlier)
        if "ecg" in args.parts and "ecg" in before:
            keep_earlier_entries(payload["ecg"], before["ecg"], earlier)
    write_result(payload, args.out)
    if args.ship:
        print(f"shipped {ship_beats_ecg(payload, args.runs, weights, args.ship_run)}")
    print(markdown_tables(payload))
    for part in ("ecg", "ppg"):
        for k, v in payload.get(part, {}).get("comparisons", {}).items():
            print(f"{k}: {v}")
    return payload


if __name__ == "__main__":
    main()
