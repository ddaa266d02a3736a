#!/usr/bin/env bash
# Compact v6 (weights/README.md): compact v3 with --mixup-alpha 0.4. Runs the folds given as
# arguments one after another on one thread ("all" = the every-fold run), e.g.
#   run.sh 0 1 2 &  run.sh 3 4 &  wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/compact6 --holdout
# The corpora are compact v3's (weights/training_logs/neural2/run.sh renders them).
# Rerun to resume: train resumes each run after its last finished epoch.
set -uo pipefail
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
for need in runs/stage1.pt data/synth35/voices.json data/neural35/voices.json data/negatives2/sources.json; do
  [ -f "$need" ] || { echo "missing $need: make it as weights/training_logs/neural2/run.sh does"; exit 1; }
done
mkdir -p runs/cv/compact6
COMMON="--data data/synth35 --init runs/stage1.pt --real-data ../shared/data/real_speech \
  --real-repeat 30 --fsdd-repeat 2 --real-noise --cv-folds 5 --negatives data/negatives2 \
  --negatives-repeat 2 --corpus-fraction 0.25 --epochs 5 --warmup-epochs 1 --lr 3e-4 \
  --speed-prob 0.5 --vtlp-prob 0.5 --eq-prob 0.5 --bandlimit-prob 0.3 --reverb-prob 0.5 \
  --extra-data data/neural35 --extra-repeat 1 --threads 1 --mixup-alpha 0.4"
for i in "$@"; do
  out=runs/cv/compact6/fold$i fold=$i
  [ "$i" = all ] && { out=runs/compact6_all; fold=-1; }
  $PY -m kwmlp.train.train $COMMON --cv-fold "$fold" --out "$out" > "$out.log" 2>&1 \
    || echo "run $i failed"
done
