"""12-lead multi-label diagnosis: PTB-XL label sets and CinC 2021 SNOMED-CT codes, a CNN from scratch and ecgpt-small.

Protocols:

- ``ptbxl-<label set>``: the recommended split, strat_fold 1-8 train / 9 validation / 10 test, one
  run (the task's fixed split; needs ``FinetuneConfig.split``). On ``../shared/data/ptbxl-subset.zip``
  (ecg_id 1-500 at 100 Hz) that is 353 / 81 / 66 records before the label set drops any; the same
  command on a full download is the published protocol.
- ``cinc2021-dx``: 5-fold cross-validation by record (no patient ids are published); the 50 sample
  records of ``../shared/data/cinc2021-samples.zip``.

**Numbers on these subsets are not comparable to published full-data results** (PTB-XL: about
17,400 training and 2,200 test records; CinC 2021: about 88,000 records): a few hundred or 50 records
train little and test on tens of records, which the wide bootstrap intervals show.

Experiments (each a :func:`cardiolens.tasks.finetune.finetune` run in ``--runs/<task>/<name>/``, resumed
or read back when it exists):

- ``cnn-scratch``: ``resnet1d-12lead`` with fresh weights, 10 s windows of the 12 leads.
- ``ecgpt-small-linear``: the shipped single-lead ``ecgpt-small`` frozen, each lead tokenised and run
  as its own sequence (5 s windows, two per record), the 12 leads' mean-pooled features
  concatenated, a linear head trained on cached features.

    .venv/bin/python benchmarks/multilabel_12lead.py                                  # both tasks, both models
    .venv/bin/python benchmarks/multilabel_12lead.py --tasks ptbxl-superdiagnostic --only cnn-scratch
    .venv/bin/python benchmarks/multilabel_12lead.py --tasks ptbxl-all --ptbxl /data/ptb-xl-1.0.3   # full data

Results: benchmarks/results/multilabel_12lead.json, rewritten after each experiment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import unpacked, write_result  # noqa: E402
from cardiolens.errors import CardiolensError  # noqa: E402
from cardiolens.tasks import finetune as finetune_module  # noqa: E402
from cardiolens.tasks.finetune import FinetuneConfig, finetune  # noqa: E402
from cardiolens.tasks.suite import get_task, list_tasks, load_task_data  # noqa: E402
from cardiolens.tasks.tasks_multilabel import multilabel_report  # noqa: E402

EXPERIMENTS: dict[str, dict] = {
    "cnn-scratch": {"backbone": "resnet1d-12lead", "policy": "full", "epochs": 30, "patience": 6, "batch_size": 32},
    # 5 s windows: the whole 10 s record in two windows, at about half the cost of two 9 s windows
    "ecgpt-small-linear": {"backbone": "ecgpt-small", "policy": "linear", "window_seconds": 5.0},
}
DEFAULT_TASKS = ["ptbxl-superdiagnostic", "cinc2021-dx"]
SEED = 0
NOT_COMPARABLE = (
    "subset numbers: not comparable to published full-data results (PTB-XL full: about 17,400 train / 2,200 "
    "test records; CinC 2021: about 88,000 records)"
)


def data_folder(task: str, args: argparse.Namespace) -> Path:
    if task.startswith("ptbxl-"):
        return args.ptbxl or unpacked("ptbxl-subset.zip") / "ptb-xl-subset-1.0.3"
    return args.cinc2021 or unpacked("cinc2021-samples.zip") / "cinc2021-samples"


def summary_row(task: str, name: str, results: dict, run_dir: Path, classes: list[str], descriptions: dict) -> dict:
    with np.load(run_dir / "oof.npz") as z:
        targets, probs = z["targets"], z["probs"]
    # per-class AUROC and F1 at 0.5 here; `cardiolens finetune`'s out-of-fold macro F1 (scores) decides each
    # record at its own fold's validation thresholds
    report = multilabel_report(targets, probs, classes, None)
    for c in report["per_class"]:
        report["per_class"][c]["name"] = descriptions.get(c, "")
    return {
        "task": task,
        "experiment": name,
        "backbone": Path(results["backbone"]).name,
        "policy": results["policy"],
        "split": (
            f"{len(results['folds'])}-fold cross-validation"
            if results.get("split", "cross-validation") == "cross-validation"
            else results["split"]
        ),
        "test_records": results["items"],
        "test_patients": results["patients"],
        "scores": results["oof"],
        "macro_f1_at_0.5": report["macro_f1"],
        "macro_f1_at_validation_thresholds": results["oof"]["macro_f1"]["value"],
        "per_class": report["per_class"],
        "per_fold": {
            k: {"n_train": f["n_train"], "n_val": f["n_val"], "n_test": f["n_test"], "best_epoch": f["best_epoch"]}
            | {m: f["test"][m] for m in ("macro_auroc", "macro_auprc", "fmax", "macro_f1")}
            for k, f in results["folds"].items()
        },
        "command": results["command"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="*", default=DEFAULT_TASKS, help="ptbxl-<label set> and/or cinc2021-dx")
    parser.add_argument("--only", nargs="*", default=None, help=f"experiments (default: {' '.join(EXPERIMENTS)})")
    parser.add_argument("--ptbxl", type=Path, default=None, help="PTB-XL folder (default: the shared subset)")
    parser.add_argument("--cinc2021", type=Path, default=None, help="CinC 2021 folder (default: the shared samples)")
    parser.add_argument("--runs", type=Path, default=Path("runs/bench-multilabel"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the intervals")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "multilabel_12lead.json")
    args = parser.parse_args()
    known = [t for t in list_tasks() if t.startswith("ptbxl-") or t == "cinc2021-dx"]
    bad = [t for t in args.tasks if t not in known]
    if bad:
        parser.error(f"unknown tasks {bad}; 12-lead multi-label tasks: {', '.join(known)}")
    names = args.only or list(EXPERIMENTS)
    bad = [n for n in names if n not in EXPERIMENTS]
    if bad:
        parser.error(f"unknown experiments {bad}; known: {', '.join(EXPERIMENTS)}")
    torch.set_num_threads(args.threads)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    rows = {(r["task"], r["experiment"]): r for r in previous.get("experiments", [])}
    datasets = previous.get("datasets", {})
    for task_name in args.tasks:
        task = get_task(task_name)
        folder = data_folder(task_name, args)
        data = load_task_data(task, folder, 100.0, progress=False)
        datasets[task_name] = {
            "folder": str(folder),
            "protocol": task.protocol,
            "items": len(data),
            "patients": len(set(data.groups.tolist())),
            "classes": data.info["classes"],
            "positives": data.info["positives"],
            "dropped_classes": data.info["dropped_classes"],
        }
        if "split" in data.info:
            parts = list(data.info["split"].values())
            datasets[task_name]["split_sizes"] = {p: parts.count(p) for p in ("train", "val", "test")}
        for name in names:
            started = time.perf_counter()
            cfg = FinetuneConfig(
                task=task_name,
                data=str(folder),
                out=str(args.runs / task_name / name),
                folds=task.folds,
                seed=SEED,
                progress=False,
                bootstrap=args.bootstrap,
                **EXPERIMENTS[name],
            )
            results = finetune(cfg)
            row = summary_row(
                task_name, name, results, Path(cfg.out), data.info["classes"], data.info.get("descriptions", {})
            )
            row["seconds_this_call"] = time.perf_counter() - started
            rows[(task_name, name)] = row
            a = row["scores"]["macro_auroc"]
            interval = f"[{a['low']:.3f}, {a['high']:.3f}]" if "low" in a else "(no interval)"
            print(
                f"{task_name} {name}: macro AUROC {a['value']:.3f} {interval} ({row['seconds_this_call']:.0f} s)",
                flush=True,
            )
            core = Path(finetune_module.__file__)
            write_result(
                {
                    "note": NOT_COMPARABLE,
                    "datasets": datasets,
                    "finetune_core": {"file": str(core), "sha256": hashlib.sha256(core.read_bytes()).hexdigest()[:16]},
                    "experiments": sorted(rows.values(), key=lambda r: (r["task"], r["experiment"])),
                },
                args.out,
            )


if __name__ == "__main__":
    try:
        main()
    except CardiolensError as exc:
        sys.exit(f"error: {exc}")
