#!/usr/bin/env bash
# A synthetic stage at the paper's schedule (140 epochs, 10 warmup, kwmlp.train.train's
# defaults, data/synth35) with extra flags, then compact v3's fine-tune on top of it,
# cross-validated by speaker folds (weights/training_logs/compact3_lever.sh):
#   stage1_lever.sh STAGE1 "STAGE1 FLAGS" NAME stage1       # into runs/STAGE1, 2 threads,
#                                                           # its final epoch -> runs/STAGE1.pt
#   stage1_lever.sh STAGE1 "STAGE1 FLAGS" NAME 0 2 4 &  ... NAME 1 3 all &   # the folds
#   wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/NAME --holdout
# Every step resumes after its last finished epoch when rerun.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
stage1=$1 flags=$2 name=$3
shift 3
init=runs/$stage1.pt
if [ "${1:-}" = stage1 ]; then
  mkdir -p runs
  # shellcheck disable=SC2086  # the flags are meant to split
  $PY -m kwmlp.train.train --data data/synth35 --out "runs/$stage1" --threads 2 $flags \
    > "runs/$stage1.log" 2>&1 || { echo "stage 1 ($stage1) failed"; exit 1; }
  $PY -m kwmlp.train.export --run "runs/$stage1" --weights last --out "$init" \
    --generator "python -m kwmlp.train.synth --out data/synth35 --seed 0 --clips-per-word 1150 --workers 2"
  exit
fi
[ -f "$init" ] || { echo "missing $init: run the stage1 step first"; exit 1; }
for i in "$@"; do
  weights/training_logs/compact3_lever.sh "$name" "--init $init" "$i"
done
