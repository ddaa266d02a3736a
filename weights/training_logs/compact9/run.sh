#!/usr/bin/env bash
# Compact v9 (weights/README.md): the longer synthetic stage of issue #21, then compact v3's
# fine-tune on top of it.
#   run.sh stage1          # stage 1 at the paper's schedule: 140 epochs (10 warmup), 2 threads
#   run.sh 0 2 4 &  run.sh 1 3 all &   # then compact v3's command from its final epoch
#   wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/compact9 --holdout
# Every step resumes after its last finished epoch when rerun.
set -uo pipefail
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
init=runs/stage1_140.pt
if [ "${1:-}" = stage1 ]; then
  # TrainConfig's defaults are the paper's schedule; the corpus is stage 1's (synth35)
  $PY -m kwmlp.train.train --data data/synth35 --out runs/stage1_140 --threads 2 \
    > runs/stage1_140.log 2>&1 || { echo "stage 1 (140 epochs) failed"; exit 1; }
  $PY -m kwmlp.train.export --run runs/stage1_140 --weights last --out "$init" \
    --generator "python -m kwmlp.train.synth --out data/synth35 --seed 0 --clips-per-word 1150 --workers 2"
  exit
fi
[ -f "$init" ] || { echo "missing $init: run.sh stage1 first"; exit 1; }
for i in "$@"; do
  weights/training_logs/compact3_lever.sh compact9 "--init $init" "$i"
done
