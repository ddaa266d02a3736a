#!/usr/bin/env bash
# Compact v4 (weights/README.md): compact v3 (kept by its rule) with a second neural corpus,
# 72 Kokoro speakers; corpora, five speaker folds in two one-thread lanes, the
# cross-validated figure, the operating point, the every-fold run. Rerun to resume:
# finished corpora are kept, train resumes each run after its last finished epoch.
set -uo pipefail
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
mkdir -p runs/cv/neural3
[ -f runs/stage1.pt ] || git show 52349e1:weights/kwmlp.pt > runs/stage1.pt
corpus() {  # corpus DIR MARKER COMMAND...: render unless finished
  local dir=$1 marker=$2; shift 2
  [ -f "$dir/$marker" ] && return 0
  "$@" || { echo "failed: $*"; exit 1; }
}
corpus data/synth35 voices.json $PY -m kwmlp.train.synth --out data/synth35 --seed 0 \
  --clips-per-word 1150 --workers 2 --overwrite > runs/synth35.log 2>&1
corpus data/neural35 voices.json $PY -m kwmlp.train.synth --out data/neural35 --seed 0 \
  --engines kokoro piper --clips-per-word 120 --workers 2 --noise-seconds 2 --overwrite > runs/neural35.log 2>&1
corpus data/neural72 voices.json $PY -m kwmlp.train.synth --out data/neural72 --seed 1 \
  --engines kokoro --kokoro-mixes 67 --clips-per-word 192 --workers 2 --noise-seconds 2 \
  --overwrite > runs/neural72.log 2>&1
corpus data/negatives2 sources.json $PY -m kwmlp.train.negatives --out data/negatives2 \
  --real-data ../shared/data/real_speech --sources fr_prompts,tts_sentence,tts_word,music_midi,effects,noise,foreign_prompts,chimes,tts_phrase \
  > runs/negatives2.log 2>&1
COMMON="--data data/synth35 --init runs/stage1.pt --real-data ../shared/data/real_speech \
  --real-repeat 30 --fsdd-repeat 2 --real-noise --cv-folds 5 --negatives data/negatives2 \
  --negatives-repeat 2 --corpus-fraction 0.25 --epochs 5 --warmup-epochs 1 --lr 3e-4 \
  --speed-prob 0.5 --vtlp-prob 0.5 --eq-prob 0.5 --bandlimit-prob 0.3 --reverb-prob 0.5 \
  --extra-data data/neural35 data/neural72 --extra-repeat 1 --threads 1"
run() {  # run FOLD: one fold, or "all" for the every-fold run
  local out=runs/cv/neural3/fold$1 fold=$1
  [ "$1" = all ] && { out=runs/neural3_all; fold=-1; }
  $PY -m kwmlp.train.train $COMMON --cv-fold "$fold" --out "$out" > "$out.log" 2>&1 \
    || echo "run $1 failed"
}
lane() { for i in "$@"; do run "$i"; done; }
lane 0 2 4 & first=$!
lane 1 3 all &
wait $first
while [ ! -f runs/cv/neural3/fold3/log.jsonl ] || [ "$(wc -l < runs/cv/neural3/fold3/log.jsonl)" -lt 5 ]; do
  sleep 60
done
$PY -m kwmlp.train.crossval runs/cv/neural3 --holdout > runs/cv/neural3/crossval.log 2>&1
$PY -m kwmlp.train.operating_point runs/cv/neural3 --negatives data/negatives2 \
  > runs/cv/neural3/operating_point.log 2>&1
wait
