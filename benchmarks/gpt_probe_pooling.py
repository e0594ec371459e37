"""Why a linear probe on a frozen GPT misses AF: which layer and which pooling carry rhythm.

The ``linear`` policy of ``cardiolens finetune`` reads the mean over positions of a GPT's final
features. On CinC 2017 that probe is at chance for AF (``finetune_cinc2017.py``). This script asks
whether the information is absent from the frozen model or only lost by the pooling: for every layer
of each model (the embeddings, then each block's output), the mean over positions and the mean with
the standard deviation, each scored by a logistic regression in 5-fold cross-validation (AF vs
rest, AUROC with a bootstrap 95 % interval over records).

Data: 150 AF and 350 other CinC 2017 records drawn with numpy ``default_rng(0)``, resampled to 100 Hz,
one window from the middle of each record (the model's context: 900 samples for ``ecgpt-small``, 500
for HeartGPT ECG-PT), min-max tokenised.

    .venv/bin/python benchmarks/gpt_probe_pooling.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).parent))
from _common import SHARED_DATA, unpacked, write_result  # noqa: E402
from cardiolens.models import load_model  # noqa: E402
from cardiolens.models.taskmodel import tokenize_torch  # noqa: E402
from cardiolens.tasks.metrics import CINC2017_CLASSES, auroc, bootstrap  # noqa: E402
from cardiolens.tasks.suite import get_task, load_task_data  # noqa: E402

MODELS = {"ecgpt-small": "ecgpt-small", "HeartGPT ECG-PT": str(SHARED_DATA / "heartgpt" / "ECGPT_560k_iters.zip")}


def layer_features(model: torch.nn.Module, signals: list[np.ndarray]) -> np.ndarray:
    """(records, layers + 1, 2 * width): per layer, the mean and the standard deviation over positions."""
    T = model.config.block_size
    out = []
    with torch.inference_mode():
        for s in signals:
            x = s[0]
            start = max(0, (len(x) - T) // 2)
            window = torch.as_tensor(x[start : start + T][None].astype(np.float32))
            tokens = tokenize_torch(window, model.config.vocab_size)
            states = torch.stack(model.forward_features(tokens, return_hidden_states=True).hidden_states)[:, 0]
            out.append(torch.cat([states.mean(dim=1), states.std(dim=1)], dim=-1).numpy())
    return np.stack(out)


def probe_auroc(x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    p = cross_val_predict(probe, x, y, cv=folds, method="predict_proba")[:, 1]
    interval = bootstrap(auroc, y, p, n_resamples=1000, seed=seed)
    return {"value": interval.value, "low": interval.low, "high": interval.high}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--af", type=int, default=150)
    parser.add_argument("--other", type=int, default=350)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "gpt_probe_pooling.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = unpacked("cinc2017-dev.zip") / "training2017"
    data = load_task_data(get_task("cinc2017-rhythm"), folder, 100.0, progress=False)
    targets = np.asarray(data.targets)
    af = CINC2017_CLASSES.index("A")
    rng = np.random.default_rng(args.seed)
    picked = np.concatenate(
        [
            rng.choice(np.flatnonzero(targets == af), args.af, replace=False),
            rng.choice(np.flatnonzero(targets != af), args.other, replace=False),
        ]
    )
    y = (targets[picked] == af).astype(int)
    results = {}
    for name, source in MODELS.items():
        model = load_model(source).eval()
        started = time.perf_counter()
        feats = layer_features(model, [data.signals[i] for i in picked])
        width = feats.shape[-1] // 2
        rows = []
        for layer in range(feats.shape[1]):
            rows.append(
                {
                    "layer": "embedding" if layer == 0 else f"block {layer - 1}",
                    "mean": probe_auroc(feats[:, layer, :width], y, args.seed),
                    "mean_and_std": probe_auroc(feats[:, layer], y, args.seed),
                }
            )
            print(
                name,
                rows[-1]["layer"],
                round(rows[-1]["mean"]["value"], 3),
                round(rows[-1]["mean_and_std"]["value"], 3),
            )
        results[name] = {"window": model.config.block_size, "seconds": time.perf_counter() - started, "layers": rows}
    write_result(
        {
            "data": str(folder),
            "records": data.item_ids[picked].tolist(),
            "af_records": int(y.sum()),
            "probe": "StandardScaler + LogisticRegression(C=0.1), StratifiedKFold(5, shuffle, seed), AUROC AF vs rest",
            "results": results,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
