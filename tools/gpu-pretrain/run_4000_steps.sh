#!/bin/bash
# Device run 2: two 4000-step schedules (dropout 0 and 0.1) of ecgpt-small, same data and split as run 1.
set -u
[ -d /tmp/site ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
[ -d /tmp/d ] || { mkdir -p /tmp/d && for z in .gpu/data/*.zip; do python3 -m zipfile -e $z /tmp/d/$(basename $z .zip); done; }
D='["/tmp/d/cinc2017-100hz/training2017","/tmp/d/ptbxl-subset/ptb-xl-subset-1.0.3#I","/tmp/d/cinc2021-samples/cinc2021-samples#I","/tmp/d/cinc2021-samples/cpsc2018-samples#I"]'
for V in 0.1 0.0; do
  timeout 260 python3 -c 'import sys; from cardiolens.cli import main; sys.exit(main())' pretrain gpt --data "$D" --weights '[0.7,0.2,0.07,0.03]' --batch_size 128 --lr 0.002 --accelerator gpu --precision bf16-mixed --cache_dir /tmp/cache --out /tmp/run-d$V --max_steps 4000 --eval_every 250 --model_overrides "{\"dropout\": $V}" > $OUT/train-d$V.txt 2>&1
  echo "dropout $V exit $?"
  grep eval_loss /tmp/run-d$V/log.jsonl | python3 -c "import sys,json;print(' '.join(f\"{d['step']}:{d['eval_loss']:.4f}\" for d in map(json.loads,sys.stdin)))"
  (cd /tmp/run-d$V && tar cf $OUT/run-d$V.tar --exclude=last.pt .)
done
ls -la $OUT
