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
- the data-randomisation check (Adebayo et al. 2018): the same correlations against trees refitted,
  with the same settings, on the model's own training items with their labels shuffled;
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
from cardiolens.explain.faithfulness import rank_correlation  # noqa: E402
from cardiolens.explain.features import explain_features, feature_effects  # noqa: E402
from cardiolens.models.pretrained import weights_dir  # noqa: E402
from cardiolens.tasks.metrics import bootstrap  # noqa: E402
from cardiolens.tasks.rhythm_features import record_features  # noqa: E402
from cardiolens.tasks.suite import get_task, load_task_data  # noqa: E402
from cardiolens.tasks.tree_model import BeatTreeModel, TreeEnsemble, load_tree_model  # noqa: E402
from cardiolens.tasks.trees import balanced_weights, boosted_trees  # noqa: E402


def permuted_label_trees(model, data_dir: Path, test: list[str], seed: int = 0) -> TreeEnsemble:
    """The model's trees refitted on its own training items (every record outside its test fold) with
    the labels shuffled among them: the same features and settings, nothing learned about the classes."""
    cfg = model.config
    task = get_task(cfg.task)
    held_out = set(test)
    if isinstance(model, BeatTreeModel):
        from cardiolens.datasets import MITBIH
        from cardiolens.datasets.mitbih import PACED
        from cardiolens.tasks.aami_features import aami_feature_matrix

        records = [r for r in MITBIH(data_dir).record_ids if r not in held_out and int(r) not in PACED]
        train = load_task_data(task, data_dir, cfg.fs, records=records, template=True, progress=False)
        x = aami_feature_matrix(train)
    else:
        from cardiolens.datasets import CinC2017
        from cardiolens.tasks.rhythm_features import rhythm_feature_matrix

        records = [r for r in CinC2017(data_dir).records["record_id"].astype(str) if r not in held_out]
        train = load_task_data(task, data_dir, cfg.fs, records=records, progress=False)
        x = rhythm_feature_matrix(train.signals, cfg.fs, progress=False)
    y = np.random.default_rng(seed).permutation(np.asarray(train.targets))
    # the shipped AAMI trees were fitted with class-balanced weights, the rhythm trees without
    weights = {"sample_weight": balanced_weights(y, len(cfg.classes))} if isinstance(model, BeatTreeModel) else {}
    return TreeEnsemble.from_sklearn(boosted_trees().fit(x, y, **weights))


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
    permuted = permuted_label_trees(model, data_dir, test)
    reference = model.config.reference_values()
    names = model.config.features
    rows, seconds, data_rho, data_rho_signed = [], [], [], []
    for i, signal in enumerate(data.signals):
        started = time.perf_counter()
        row = features[i] if beats else record_features(signal, model.config.fs)
        e = explain_features(model, row)
        seconds.append(time.perf_counter() - started)
        rows.append(e)
        effects = np.array([e.features[n]["effect"] for n in names])
        other = feature_effects(
            permuted, np.asarray(row, dtype=np.float64), reference, model.config.classes.index(e.target)
        )
        data_rho.append(rank_correlation(effects, other, True))
        data_rho_signed.append(rank_correlation(effects, other, False))
    data_rho, data_rho_signed = np.array(data_rho), np.array(data_rho_signed)
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
        "data_randomisation": {
            "what": "trees refitted on the model's training items with shuffled labels (seed 0), same settings",
            "rounds": int(permuted.roots.shape[0]),
            "spearman": interval(data_rho[np.isfinite(data_rho)]),
            "spearman_signed": interval(data_rho_signed[np.isfinite(data_rho_signed)]),
            "undefined_items": int((~np.isfinite(data_rho)).sum()),
        },
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
