#!/usr/bin/env bash
# Retrain the small default models shipped in src/cardiolens/weights/ (ecgpt-small, ppgpt-small) from
# the archives in ../shared/data, then copy the final checkpoints (weights, config, model card, the
# held-out record list) into the package. Each run resumes where it stopped when started again.
# Budget on a 2-core CPU: about 40 min (ECG) and 20 min (PPG) when run one after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DATA=$($PY -c 'import sys; sys.path.insert(0, "benchmarks"); from _common import unpacked
for a in ("cinc2017-dev.zip", "ptbxl-subset.zip", "cinc2021-samples.zip", "bidmc.zip"): d = unpacked(a)
print(d.parent)')

.venv/bin/cardiolens pretrain gpt --model ecgpt-small --out runs/ecgpt-small \
  --data "[\"$DATA/cinc2017-dev/training2017\", \"$DATA/ptbxl-subset/ptb-xl-subset-1.0.3#I\", \"$DATA/cinc2021-samples/cinc2021-samples#I\", \"$DATA/cinc2021-samples/cpsc2018-samples#I\"]" \
  --weights '[0.7, 0.2, 0.07, 0.03]' \
  --max_steps 1500 --batch_size 16 --lr 0.002 --warmup_steps 100 --eval_every 100 --threads 2

.venv/bin/cardiolens pretrain gpt --model ppgpt-small --out runs/ppgpt-small \
  --data "$DATA/bidmc/bidmc-1.0.0#PLETH" \
  --max_steps 800 --batch_size 16 --warmup_steps 50 --eval_every 50 --threads 1

# ship the final weights (not the best-on-held-out ones: the held-out records stay unused for
# model selection, so the quality benchmark on them is clean)
for name in ecgpt-small ppgpt-small; do
  rm -rf "src/cardiolens/weights/$name"
  mkdir -p src/cardiolens/weights
  cp -r "runs/$name/model" "src/cardiolens/weights/$name"
done
ls -la src/cardiolens/weights/*
