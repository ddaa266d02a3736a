#!/usr/bin/env bash
# Compact v10 from wherever it stands to every figure its rule (weights/README.md) reads,
# on a machine that may be new; each step is skipped when done or resumes where it stopped:
#   nohup weights/training_logs/compact10/chain.sh > runs/compact10_chain.log 2>&1 &
# data/synth35; the stage (restored from git, resumed) while neural35 and negatives2
# render; the finished stage's weights kept for git (`run.sh save`: commit them); the
# folds in two one-thread lanes; crossval paired with compact v9; then, for the ship
# check should the lever pay, the operating point, the every-fold run exported at that
# threshold, shipcheck.py, false accepts and spotting. Whether it pays and whether it
# ships are read off these outputs by the rule, not decided here.
set -uo pipefail
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
here=weights/training_logs/compact10 cv=runs/cv/compact10 candidate=runs/compact10_all.pt
mkdir -p runs
weights/training_logs/corpora.sh synth35 || exit 1
weights/training_logs/corpora.sh neural35 negatives2 & corpora=$!
$here/run.sh stage1 || exit 1
$here/run.sh save
wait $corpora || exit 1
$here/run.sh 0 2 4 & $here/run.sh 1 3 all & wait
$PY -m kwmlp.train.crossval $cv --holdout --paired-with weights/training_logs/compact9/crossval.json
$PY -m kwmlp.train.operating_point $cv --negatives data/negatives2 --recall-floor 0.80
threshold=$($PY -c "import json; print(json.load(open('$cv/operating_point.json'))['threshold'])")
$PY -m kwmlp.train.export --run runs/compact10_all --weights last --threshold "$threshold" \
  --out $candidate \
  --generator "python -m kwmlp.train.synth --out data/synth35 --seed 0 --clips-per-word 1150 --workers 2"
$PY weights/training_logs/shipcheck.py $candidate
PYTHONPATH=. $PY benchmarks/false_accepts.py --model $candidate --cache runs/false_accepts
PYTHONPATH=. $PY benchmarks/spotting.py --model $candidate
