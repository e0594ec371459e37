"""Copy one fold's model of a ``cardiolens finetune`` run into the package as a shipped model.

    .venv/bin/python scripts/ship_finetuned.py runs/bench-cinc2017/cnn-scratch 0 rhythm-ecg

The shipped model keeps the fold's weights and thresholds, is renamed, and gets a model card that
states the run's command, the fold it never saw with its test scores, and the run's out-of-fold
scores with 95 % intervals (when the run is complete), plus ``split.json`` (the fold's test items).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from cardiolens.models import load_model, save_checkpoint
from cardiolens.models.pretrained import weights_dir
from cardiolens.tasks.finetune import FinetuneConfig, command_line


def _fmt(v: dict) -> str:
    return f"{v['value']:.4f} [{v['low']:.4f}, {v['high']:.4f}]" if "low" in v else f"{v['value']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("fold", type=int)
    parser.add_argument("name")
    parser.add_argument("--note", default="", help="a sentence added to the card (e.g. what was left out)")
    args = parser.parse_args()
    folder = args.run / f"fold-{args.fold}"
    model = load_model(folder / "model")
    model.config.name = args.name
    fold_result = json.loads((folder / "result.json").read_text())
    folds = json.loads((args.run / "folds.json").read_text())
    test = sorted(item for item, k in folds.items() if k == args.fold)
    results_file = args.run / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else None
    c = model.config
    lines = [
        f"# {args.name}",
        "",
        f"Fine-tuned by cardiolens for `{c.task}` ({c.kind}: {', '.join(c.classes)}).",
        "",
        f"- Backbone: `{c.backbone_name}` ({c.backbone}); {model.num_params():,} parameters.",
        f"- Input: {len(c.leads)} lead(s) ({', '.join(c.leads)}) at {c.fs:g} Hz, windows of {c.window} samples "
        f"({c.window / c.fs:g} s); longer records are windowed and the window outputs averaged. Records at "
        "another rate are resampled; the prediction says so.",
        f"- Decision thresholds (chosen on validation data): {c.thresholds}",
        f"- These weights are fold {args.fold}'s model: trained on the other folds ({fold_result['n_train']} items, "
        f"{fold_result['n_val']} for validation/early stopping, best epoch {fold_result['best_epoch']}); "
        f"its {len(test)} test items are listed in `split.json`.",
        "- Test scores of this fold: " + ", ".join(f"{k} {v:.4f}" for k, v in fold_result["test"].items()),
    ]
    if results and len(results["folds"]) > 1:
        lines.append(
            f"- Out-of-fold scores of the whole run ({len(results['folds'])} folds, {results['items']} items, "
            "bootstrap 95 % intervals): " + "; ".join(f"{k} {_fmt(v)}" for k, v in results["oof"].items())
        )
        lines.append(f"- Protocol: {results['protocol']}")
    settings = json.loads((args.run / "run.json").read_text())
    known = {f.name for f in dataclasses.fields(FinetuneConfig)}
    command = command_line(FinetuneConfig(**{k: v for k, v in settings.items() if k in known}))
    lines += ["", f"Command: `{command}`"]
    if args.note:
        lines += ["", args.note]
    lines += ["", "Research use only; not a medical device."]
    dest = weights_dir() / args.name
    save_checkpoint(
        model, dest, "\n".join(lines) + "\n", overwrite=True, extra_files={"split.json": json.dumps({"test": test})}
    )
    print(f"shipped {dest}")


if __name__ == "__main__":
    main()
