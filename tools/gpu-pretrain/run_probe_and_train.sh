#!/bin/bash
# Device run: pretrain ecgpt-small on one GPU with the CLI; probe throughput first to size max_steps.
set -u
T0=$(date +%s)
[ -n "${SKIPPIP:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1
mkdir -p /tmp/d && for z in .gpu/data/*.zip; do python3 -m zipfile -e $z /tmp/d/$(basename $z .zip); done
nvidia-smi -L; python3 -c "import torch,lightning;print('torch',torch.__version__,'lightning',lightning.__version__)"
D='["/tmp/d/cinc2017-100hz/training2017","/tmp/d/ptbxl-subset/ptb-xl-subset-1.0.3#I","/tmp/d/cinc2021-samples/cinc2021-samples#I","/tmp/d/cinc2021-samples/cpsc2018-samples#I"]'
BATCH=${BATCH:-128}
run() { python3 -c 'import sys; from cardiolens.cli import main; sys.exit(main())' pretrain gpt --data "$D" --weights '[0.7,0.2,0.07,0.03]' --batch_size $BATCH --lr ${LR:-0.002} --accelerator ${ACC:-gpu} --precision ${PREC:-bf16-mixed} --cache_dir /tmp/cache "$@"; }
if [ ! -d /tmp/run ] && [ -n "${RESUME_TAR:-}" ]; then mkdir -p /tmp/run && tar xf $RESUME_TAR -C /tmp/run; fi
if [ -z "${STEPS:-}" ]; then
  run --out /tmp/probe --max_steps ${PROBE:-120} --eval_every $(( ${PROBE:-120} / 2 )) > $OUT/probe.txt 2>&1 || { tail -30 $OUT/probe.txt; exit 1; }
  tail -1 /tmp/probe/log.jsonl
  SPS=$(python3 -c "import json;l=[json.loads(x) for x in open('/tmp/probe/log.jsonl')];print(l[-1]['tokens_per_s']/($BATCH*900))")
  LEFT=$(( ${BUDGET:-540} - ($(date +%s) - T0) ))
  STEPS=$(python3 -c "print(max(500, int($SPS*($LEFT-70))//250*250))")
  echo "probe: $SPS steps/s, $LEFT s left -> max_steps $STEPS"
fi
LEFT=$(( ${BUDGET:-540} - ($(date +%s) - T0) - 25 ))
timeout $LEFT bash -c "$(declare -f run); D='$D'; BATCH=$BATCH; LR=${LR:-0.002}; ACC=${ACC:-gpu}; PREC=${PREC:-bf16-mixed}; run --out /tmp/run --max_steps $STEPS --eval_every ${EVERY:-250}" > $OUT/train.txt 2>&1
echo "train exit $?"; grep -v "pretrain ecgpt-small:" $OUT/train.txt | tail -5
grep eval_loss /tmp/run/log.jsonl | python3 -c "import sys,json;[print(d['step'],round(d['eval_loss'],4),int(d['tokens_per_s'])) for d in map(json.loads,sys.stdin)]"
cd /tmp/run && tar cf $OUT/run.tar --exclude=last.pt . && ls -la /tmp/run && cp /tmp/run/*.pt $OUT/ 2>/dev/null; ls -la $OUT
