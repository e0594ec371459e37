"""Which layer, which CAM? Deletion margin and randomisation check of Grad-CAM, LayerCAM and HiResCAM
read at every stage of the shipped ``rhythm-ecg`` CNN.

This is the experiment that chose HiResCAM at the first residual stage (``ResNet1d.hirescam_layer``).
It runs on records **other than** those of ``explain_faithfulness.py`` (seed 7 instead of 0, the same
pool: ``rhythm-ecg``'s test fold), so the choice is not tuned on the records that report it.

Per record: one 900-sample window (9 s at 100 Hz) from the middle; the predicted class is explained.
At each layer (the stem and stages 0-3) with activation A (channels x positions) and gradient G of the
class logit:

- Grad-CAM: ReLU(sum_c mean_t(G_c) A_c(t))   (Selvaraju et al. 2017)
- LayerCAM: ReLU(sum_c ReLU(G_c(t)) A_c(t))  (Jiang et al. 2021)
- HiResCAM: ReLU(sum_c G_c(t) A_c(t))        (Draelos & Carin 2020)

each upsampled linearly to the window. Deletion AUC (20 steps, samples set to the median, most
attributed first) against the mean of 3 random orders of samples and of 0.1 s blocks; randomisation:
Spearman correlation of the map with the same map of the model with every weight re-initialised (seed 0).
Means with 95 % bootstrap intervals over records.

Usage::

    .venv/bin/python benchmarks/cam_layers.py                  # 30 records per class A/N/O, ~2 min
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, unpacked, write_result  # noqa: E402
from explain_faithfulness import ci, model_path, model_test_records, sample_records, window_for  # noqa: E402

VARIANTS = ("gradcam", "layercam", "hirescam")


def cam_maps(adapter, layers: dict, window, target: int | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Every variant at every layer for one window: {"variant@layer": (samples,)}, and the class explained."""
    import torch
    from torch.nn import functional as F

    acts: dict = {}
    hooks = [m.register_forward_hook(lambda _m, _i, o, k=k: acts.__setitem__(k, o)) for k, m in layers.items()]
    try:
        with adapter.evaluating():
            out = adapter.scorer(window)(window.tensor())
            target = int(out[0].argmax()) if target is None else target
            grads = torch.autograd.grad(out[0, target], [acts[k] for k in layers])
    finally:
        for h in hooks:
            h.remove()
    maps = {}
    for (name, a), g in zip(acts.items(), grads, strict=True):
        a, g = a.detach(), g.detach()  # (1, C, T')
        cams = {
            "gradcam": (g.mean(-1, keepdim=True) * a).sum(1),
            "layercam": (torch.relu(g) * a).sum(1),
            "hirescam": (g * a).sum(1),
        }
        for variant, cam in cams.items():
            up = F.interpolate(torch.relu(cam)[:, None], size=window.n_samples, mode="linear", align_corners=False)
            maps[f"{variant}@{name}"] = up[0, 0].numpy()
    return maps, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="rhythm-ecg")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7, help="record draw (the faithfulness benchmark uses 0)")
    parser.add_argument("--n-random", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cam_layers.json")
    args = parser.parse_args()

    import torch

    from cardiolens.datasets import CinC2017
    from cardiolens.explain import as_explainable
    from cardiolens.explain.faithfulness import perturbation_curve, randomized_copy, rank_correlation, ranking
    from cardiolens.models import load_model

    torch.set_num_threads(1)
    db = CinC2017(unpacked("cinc2017-dev.zip") / "training2017")
    labels = dict(zip(db.records["record_id"], db.records["label"], strict=True))
    ids = sample_records(labels, args.per_class, args.seed, model_test_records(args.model))
    model = load_model(model_path(args.model))
    random_model = randomized_copy(model, seed=0)

    def layers_of(m) -> dict:
        bb = m.backbone
        return {"stem": bb.stem, **{f"stage{i}": s for i, s in enumerate(bb.stages)}}

    adapter, random_adapter = as_explainable(model), as_explainable(random_model)
    margins: dict[str, list[float]] = {}
    block_margins: dict[str, list[float]] = {}
    spearman: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for n, rid in enumerate(ids):
        window = window_for(adapter, db.load(rid))
        maps, target = cam_maps(adapter, layers_of(model), window)
        random_maps, _ = cam_maps(random_adapter, layers_of(random_model), window, target)
        T = window.n_samples

        def deletion(order: np.ndarray) -> float:
            return perturbation_curve(adapter, window, order, target, "deletion").auc  # noqa: B023

        random_auc = np.mean([deletion(rng.permutation(T)) for _ in range(args.n_random)])
        blocks = []
        for _ in range(args.n_random):
            starts = rng.permutation(np.arange(0, T, 10))
            blocks.append(deletion(np.concatenate([np.arange(s, min(s + 10, T)) for s in starts])))
        block_auc = np.mean(blocks)
        for key, values in maps.items():
            auc = deletion(ranking(values[None], n))
            margins.setdefault(key, []).append(random_auc - auc)
            block_margins.setdefault(key, []).append(block_auc - auc)
            spearman.setdefault(key, []).append(rank_correlation(values, random_maps[key]))
        print(f"{n + 1}/{len(ids)} {rid}", flush=True)

    rows = {
        key: {
            "deletion_margin_over_random": ci(margins[key]),
            "deletion_margin_over_random_blocks": ci(block_margins[key]),
            "randomization_spearman_abs": ci(spearman[key]),  # NaN (all-zero map) records are left out
        }
        for key in margins
    }
    write_result(
        {
            "data": {
                "model": args.model,
                "records": ids,
                "selection": f"per class A/N/O, default_rng({args.seed}) from the model's test fold (split.json)",
                "window": "900 samples (9 s at 100 Hz) from the middle of each record",
            },
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "results": rows,
            "wall_s": time.perf_counter() - t0,
        },
        args.out,
    )
    print(f"{'variant@layer':18s} {'deletion margin':>24s} {'vs blocks':>8s} {'randomisation':>24s}")
    for key, row in rows.items():
        m, b, r = (row[k] for k in rows[key])
        print(
            f"{key:18s} {m['mean']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}] {b['mean']:+.3f} "
            f"{r['mean']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}] (n={r['n']})"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
