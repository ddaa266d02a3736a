#!/usr/bin/env bash
# Stage 8 (weights/README.md): the shipped stage 7 fine-tuned with the two levers the
# cross-validation kept (compact v2's neural voices, compact v3's larger rejection set).
# Rerun to resume: train resumes after its last finished epoch.
set -uo pipefail
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
for need in data/synth35/voices.json data/neural35/voices.json data/negatives2/sources.json; do
  [ -f "$need" ] || { echo "missing $need: render it with weights/training_logs/corpora.sh"; exit 1; }
done
[ -f runs/stage7.pt ] || cp weights/kwmlp.pt runs/stage7.pt
THREADS=${THREADS:-2}
$PY -m kwmlp.train.train --data data/synth35 --out runs/stage8 --init runs/stage7.pt \
  --real-data ../shared/data/real_speech --real-repeat 30 --fsdd-repeat 2 --real-noise \
  --cv-folds 5 --cv-fold -1 --negatives data/negatives2 --negatives-repeat 2 --epochs 4 \
  --warmup-epochs 1 --lr 1e-4 --speed-prob 0.5 --vtlp-prob 0.5 --eq-prob 0.5 \
  --bandlimit-prob 0.3 --reverb-prob 0.5 --extra-data data/neural35 --extra-repeat 1 \
  --threads "$THREADS"
