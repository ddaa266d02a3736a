#!/usr/bin/env bash
# One lever on top of compact v3 (weights/README.md), cross-validated by speaker folds:
#   compact3_lever.sh NAME "EXTRA TRAIN FLAGS" FOLD...
# runs the given folds one after another on one thread ("all" = the every-fold run) into
# runs/cv/NAME/foldI (runs/NAME_all), e.g. two lanes, then the cross-validated figure:
#   compact3_lever.sh x "--mixup-alpha 0.4" 0 2 4 &  compact3_lever.sh x "--mixup-alpha 0.4" 1 3 all &
#   wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/x --holdout
# The corpora are compact v3's (weights/training_logs/corpora.sh renders them).
# Rerun to resume: train resumes each run after its last finished epoch.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
name=$1 extra=$2
shift 2
init="--init runs/stage1.pt"  # compact v3's start, unless the lever gives its own
[[ " $extra " == *" --init "* ]] && init=""
for need in ${init:+runs/stage1.pt} data/synth35/voices.json data/neural35/voices.json \
    data/negatives2/sources.json; do
  [ -f "$need" ] || { echo "missing $need: render it with weights/training_logs/corpora.sh"; exit 1; }
done
mkdir -p "runs/cv/$name"
COMMON="--data data/synth35 $init --real-data ../shared/data/real_speech \
  --real-repeat 30 --fsdd-repeat 2 --real-noise --cv-folds 5 --negatives data/negatives2 \
  --negatives-repeat 2 --corpus-fraction 0.25 --epochs 5 --warmup-epochs 1 --lr 3e-4 \
  --speed-prob 0.5 --vtlp-prob 0.5 --eq-prob 0.5 --bandlimit-prob 0.3 --reverb-prob 0.5 \
  --extra-data data/neural35 --extra-repeat 1 --threads 1"
for i in "$@"; do
  out=runs/cv/$name/fold$i fold=$i
  [ "$i" = all ] && { out=runs/${name}_all; fold=-1; }
  # shellcheck disable=SC2086  # the flags are meant to split
  $PY -m kwmlp.train.train $COMMON $extra --cv-fold "$fold" --out "$out" > "$out.log" 2>&1 \
    || echo "run $i failed"
done
