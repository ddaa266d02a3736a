#!/usr/bin/env bash
# Compact v2 (weights/README.md): corpora, five speaker folds in two one-thread lanes,
# the cross-validated figure, then the every-fold run. Rerun to resume: finished corpora
# are kept, train resumes each run after its last finished epoch.
set -uo pipefail
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
mkdir -p runs/cv/neural1
[ -f runs/stage1.pt ] || git show 52349e1:weights/kwmlp.pt > runs/stage1.pt
corpus() {  # corpus DIR MARKER COMMAND...: render unless finished (synth gets --overwrite,
  local dir=$1 marker=$2; shift 2  # so a half-rendered corpus is redone)
  [ -f "$dir/$marker" ] && return 0
  "$@" || { echo "failed: $*"; exit 1; }
}
corpus data/synth35 voices.json $PY -m kwmlp.train.synth --out data/synth35 --seed 0 \
  --clips-per-word 1150 --workers 2 --overwrite > runs/synth35.log 2>&1
corpus data/negatives sources.json $PY -m kwmlp.train.negatives --out data/negatives \
  --real-data ../shared/data/real_speech > runs/negatives.log 2>&1
corpus data/neural35 voices.json $PY -m kwmlp.train.synth --out data/neural35 --seed 0 \
  --engines kokoro piper --clips-per-word 120 --workers 2 --noise-seconds 2 --overwrite > runs/neural35.log 2>&1
COMMON="--data data/synth35 --init runs/stage1.pt --real-data ../shared/data/real_speech \
  --real-repeat 30 --fsdd-repeat 2 --real-noise --cv-folds 5 --negatives data/negatives \
  --negatives-repeat 2 --corpus-fraction 0.25 --epochs 5 --warmup-epochs 1 --lr 3e-4 \
  --speed-prob 0.5 --vtlp-prob 0.5 --eq-prob 0.5 --bandlimit-prob 0.3 --reverb-prob 0.5 \
  --extra-data data/neural35 --extra-repeat 1 --threads 1"
lane() { for i in "$@"; do
  $PY -m kwmlp.train.train $COMMON --cv-fold "$i" --out runs/cv/neural1/fold"$i" \
    > runs/cv/neural1/fold"$i".log 2>&1 || echo "fold $i failed"
done; }
lane 0 2 4 & lane 1 3 & wait
$PY -m kwmlp.train.crossval runs/cv/neural1 > runs/cv/neural1/crossval.log 2>&1
$PY -m kwmlp.train.train ${COMMON/--threads 1/--threads 2} --cv-fold -1 --out runs/neural1_all \
  > runs/neural1_all.log 2>&1
