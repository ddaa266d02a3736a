#!/usr/bin/env bash
# Compact soup (weights/README.md): the uniform soup of every compact recipe with five folds
# and an every-fold run, scored and swept fold by fold, then the every-fold soup exported.
# Needs the recipes' runs (weights/training_logs/*/run.sh): compact v3 (neural2) first, as
# the recipe the others are levers on; the order changes only which recipe the metadata
# describes first.
set -euo pipefail
cd "$(dirname "$0")/../../.."
PY=.venv/bin/python
recipes=(neural2 neural1 neural3 compact6 compact7 compact8)
folds=() alls=()
for r in "${recipes[@]}"; do folds+=("runs/cv/$r"); alls+=("runs/${r}_all"); done
mkdir -p runs/cv/soup
$PY -m kwmlp.train.crossval "${folds[@]}" --holdout --out runs/cv/soup/crossval.json
$PY -m kwmlp.train.operating_point "${folds[@]}" --negatives data/negatives2 \
  --out runs/cv/soup/operating_point.json
# threshold: operating_point's choice, if it made one (otherwise the default stays)
threshold=$($PY -c "import json; t = json.load(open('runs/cv/soup/operating_point.json'))['threshold']; print('' if t is None else t)")
$PY -m kwmlp.train.export --run "${alls[@]}" --weights last --out runs/soup_all.pt \
  ${threshold:+--threshold "$threshold"} \
  --generator "python -m kwmlp.train.synth --out data/synth35 --seed 0 --clips-per-word 1150 --workers 2"
