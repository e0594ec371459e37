"""Where does attention rollout of a causal GPT put its mass? The share of the read-out token's rollout
in the first and the last tenth of the window: plain, relative to chance
(``attention_attribution(..., relative_to_chance=True)``), and for uniform causal attention (chance itself).

It reads the same records as ``explain_faithfulness.py --seed S --per-class N`` (CinC 2017, A/N/O drawn
with ``sample_records``, the model's window from the middle of each record), so its shares describe the
maps that benchmark scored. Medians and ranges over records.

Usage::

    .venv/bin/python benchmarks/rollout_lean.py --seed 11 --per-class 40   # ECG-PT-AF, ~1 min
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, unpacked, write_result  # noqa: E402
from explain_faithfulness import model_path, sample_records, window_for  # noqa: E402


def tenth_shares(values: np.ndarray) -> tuple[float, float]:
    """Share of a non-negative map in its first and its last tenth."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = max(1, len(v) // 10)
    return float(v[:n].sum() / v.sum()), float(v[-n:].sum() / v.sum())


def summary(values: list[float]) -> dict[str, float]:
    return {"median": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="heartgpt/ECGPT_AF_1k_iters.zip")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "rollout_lean.json")
    args = parser.parse_args()

    import torch

    from cardiolens.datasets import CinC2017
    from cardiolens.explain import as_explainable, attention_attribution, attention_maps, chance_rollout
    from cardiolens.models import load_model

    torch.set_num_threads(1)
    adapter = as_explainable(load_model(model_path(args.model)))
    db = CinC2017(unpacked("cinc2017-dev.zip") / "training2017")
    labels = dict(zip(db.records["record_id"], db.records["label"], strict=True))
    ids = sample_records(labels, args.per_class, args.seed)
    shares: dict[str, dict[str, list[float]]] = {k: {"first": [], "last": []} for k in ("plain", "relative", "chance")}
    for rid in ids:
        window = window_for(adapter, db.load(rid))
        maps = {
            "plain": attention_attribution(adapter, window).values,
            "relative": attention_attribution(adapter, window, relative_to_chance=True).values,
            "chance": chance_rollout(attention_maps(adapter, window), token=-1),
        }
        for kind, values in maps.items():
            first, last = tenth_shares(values)
            shares[kind]["first"].append(first)
            shares[kind]["last"].append(last)
    result = {
        "model": args.model,
        "records": len(ids),
        "selection": f"sample_records(per_class={args.per_class}, seed={args.seed}) of explain_faithfulness.py",
        "share_of_the_map": {kind: {part: summary(v) for part, v in parts.items()} for kind, parts in shares.items()},
    }
    write_result(result, args.out)
    for kind, parts in result["share_of_the_map"].items():
        print(
            f"{kind:>8}: first tenth {parts['first']['median']:.3f} ({parts['first']['min']:.3f}-"
            f"{parts['first']['max']:.3f}), last tenth {parts['last']['median']:.3f} "
            f"({parts['last']['min']:.3f}-{parts['last']['max']:.3f})"
        )


if __name__ == "__main__":
    main()
