"""Held-out loss curves of the three GPU pretraining runs (their ``log.jsonl``) as JSON and a PNG.

    python tools/gpu-pretrain/held_out_curves.py runs/ecgpt-small-gpu-long runs/ecgpt-small-gpu \
        runs/ecgpt-small-gpu-d0.1 --out tools/gpu-pretrain/held_out_curves
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def eval_rows(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return [
        {"step": r["step"], "tokens_seen": r["tokens_seen"], "train_loss": r["loss"], "eval_loss": r["eval_loss"]}
        for r in rows
        if "eval_loss" in r
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="path without suffix: writes .json and .png")
    args = parser.parse_args()
    curves = {run.name: eval_rows(run) for run in args.runs}
    args.out.with_suffix(".json").write_text(json.dumps(curves, indent=1) + "\n")
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rows in curves.items():
        ax.plot([r["tokens_seen"] / 1e6 for r in rows], [r["eval_loss"] for r in rows], marker=".", label=name)
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("held-out cross-entropy (nats/token)")
    ax.set_ylim(top=2.1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("ecgpt-small pretraining on one H100: held-out loss")
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main()
