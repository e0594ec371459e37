"""Faithfulness of the feature explanations of the shipped tree models on their test folds.

``rhythm-ecg-trees`` (default): every record of its CinC 2017 test fold. ``aami-ecg-trees``: every
annotated beat of its MIT-BIH test records, its features read at the annotated beats as in its
benchmark. Items the models never trained on (``split.json``); the class explained is the predicted
one, and :func:`cardiolens.explain.features.explain_features` gives per item:

- the deletion area: p(class) as features are set to their training median, largest effect
  first, against the mean of 3 random orders (lower is more faithful; the margin is random - ours);
- the model-randomisation check: Spearman correlation between the |effects| (and the signed
  effects) of the model and of a copy whose leaf values are shuffled (near 0 is what an
  explanation that depends on the learned model gives);
- the time per item (features + explanation, one thread; for beats the explanation alone);
- the mean group effects per predicted class.

    .venv/bin/python benchmarks/explain_trees.py
    .venv/bin/python benchmarks/explain_trees.py --model aami-ecg-trees --out benchmarks/results/explain_aami_trees.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import unpacked, write_result  # noqa: E402
from cardiolens.explain.features import explain_features  # noqa: E402
from cardiolens.models.pretrained import weights_dir  # noqa: E402
from cardiolens.tasks.metrics import bootstrap  # noqa: E402
from cardiolens.tasks.rhythm_features import record_features  # noqa: E402
from cardiolens.tasks.suite import get_task, load_task_data  # noqa: E402
from cardiolens.tasks.tree_model import BeatTreeModel, load_tree_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=None, help="the model's dataset folder (default: unpacked shared data)"
    )
    parser.add_argument("--model", default="rhythm-ecg-trees", help="rhythm-ecg-trees or aami-ecg-trees")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "explain_trees.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = weights_dir() / args.model
    model = load_tree_model(folder)
    test = json.loads((folder / "split.json").read_text())["test"]
    beats = isinstance(model, BeatTreeModel)
    if beats:
        from cardiolens.tasks.aami_features import aami_feature_matrix

        data_dir = args.data or unpacked("mitdb-ds1.zip") / "mit-bih-arrhythmia-database-1.0.0"
        task = get_task(model.config.task)
        data = load_task_data(task, data_dir, model.config.fs, records=test, template=True, progress=False)
        features = aami_feature_matrix(data)  # every annotated beat of the test records
        groups = np.array([i.split(":")[0] for i in data.item_ids.astype(str)])
    else:
        data_dir = args.data or unpacked("cinc2017-dev.zip") / "training2017"
        data = load_task_data(get_task(model.config.task), data_dir, model.config.fs, records=test, progress=False)
        features, groups = None, data.item_ids.astype(str)
    rows, seconds = [], []
    for i, signal in enumerate(data.signals):
        started = time.perf_counter()
        row = features[i] if beats else record_features(signal, model.config.fs)
        e = explain_features(model, row)
        seconds.append(time.perf_counter() - started)
        rows.append(e)
    auc = np.array([e.deletion["auc"] for e in rows])
    random_auc = np.array([e.deletion["random_auc"] for e in rows])
    rho = np.array([e.randomisation for e in rows])
    rho_signed = np.array([e.randomisation_signed for e in rows])
    targets = np.array([e.target for e in rows])

    def interval(values: np.ndarray) -> dict:
        ci = bootstrap(lambda v: float(np.mean(v)), values, n_resamples=1000, seed=0)
        return {"value": ci.value, "low": ci.low, "high": ci.high}

    def by_class(name: str) -> dict:
        keep = targets == name
        return {
            "records": int(keep.sum()),
            "margin": interval(random_auc[keep] - auc[keep]) if keep.sum() > 1 else None,
            "mean_group_effect": {
                g: float(np.mean([e.groups[g] for e, k in zip(rows, keep, strict=True) if k])) for g in rows[0].groups
            }
            if keep.any()
            else None,
            "top_feature_counts": _top_counts([e for e, k in zip(rows, keep, strict=True) if k]),
        }

    result = {
        "model": args.model,
        "data": f"{data_dir}: the {len(test)} records of {args.model}'s test fold (split.json)"
        + (f", their {len(rows)} annotated beats" if beats else ""),
        "records": len(rows),
        "items": "beats" if beats else "records",
        "explained_class": "the predicted one",
        "deletion_auc": interval(auc),
        "random_deletion_auc": interval(random_auc),
        "deletion_margin": interval(random_auc - auc),
        "share_better_than_random": float(np.mean(auc < random_auc)),
        "randomisation_spearman": interval(rho[np.isfinite(rho)]),
        "randomisation_spearman_signed": interval(rho_signed[np.isfinite(rho_signed)]),
        "randomisation_undefined_records": int((~np.isfinite(rho)).sum()),
        "seconds_per_record": {"median": float(np.median(seconds)), "max": float(np.max(seconds))},
        "by_predicted_class": {c: by_class(c) for c in model.config.classes},
        # beats of one record are not independent: the margin of each record, to see it is not one record's
        "deletion_margin_by_record": {
            r: float(np.mean((random_auc - auc)[groups == r])) for r in dict.fromkeys(groups.tolist())
        }
        if beats
        else None,
    }
    write_result(result, args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "by_predicted_class"}, indent=1))


def _top_counts(explanations: list, k: int = 3, show: int = 8) -> dict[str, int]:
    """How often each feature is among a record's ``k`` largest effects (the ``show`` most frequent)."""
    counts: dict[str, int] = {}
    for e in explanations:
        for name in list(e.features)[:k]:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:show])


if __name__ == "__main__":
    main()
