#!/usr/bin/env bash
# Compact v3 (weights/README.md): compact v2 with the rejection set grown by the three
# opt-in negative sources; corpora, five speaker folds in two one-thread lanes, the
# cross-validated figure, the operating point, the every-fold run. Rerun to resume:
# finished corpora are kept, train resumes each run after its last finished epoch.
set -uo pipefail
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
mkdir -p runs/cv/neural2
[ -f runs/stage1.pt ] || git show 52349e1:weights/kwmlp.pt > runs/stage1.pt
weights/training_logs/corpora.sh || exit 1
COMMON="--data data/synth35 --init runs/stage1.pt --real-data ../shared/data/real_speech \
  --real-repeat 30 --fsdd-repeat 2 --real-noise --cv-folds 5 --negatives data/negatives2 \
  --negatives-repeat 2 --corpus-fraction 0.25 --epochs 5 --warmup-epochs 1 --lr 3e-4 \
  --speed-prob 0.5 --vtlp-prob 0.5 --eq-prob 0.5 --bandlimit-prob 0.3 --reverb-prob 0.5 \
  --extra-data data/neural35 --extra-repeat 1 --threads 1"
run() {  # run FOLD: one fold, or "all" for the every-fold run
  local out=runs/cv/neural2/fold$1 fold=$1
  [ "$1" = all ] && { out=runs/neural2_all; fold=-1; }
  $PY -m kwmlp.train.train $COMMON --cv-fold "$fold" --out "$out" > "$out.log" 2>&1 \
    || echo "run $1 failed"
}
lane() { for i in "$@"; do run "$i"; done; }
lane 0 2 4 & first=$!
lane 1 3 all &
wait $first
while [ ! -f runs/cv/neural2/fold3/log.jsonl ] || [ "$(wc -l < runs/cv/neural2/fold3/log.jsonl)" -lt 5 ]; do
  sleep 60
done
$PY -m kwmlp.train.crossval runs/cv/neural2 --holdout > runs/cv/neural2/crossval.log 2>&1
$PY -m kwmlp.train.operating_point runs/cv/neural2 --negatives data/negatives2 \
  > runs/cv/neural2/operating_point.log 2>&1
wait
