#!/usr/bin/env bash
# Compact v8 (weights/README.md): compact v3 distilled from compact v6's model of the same
# fold (the every-fold run from v6's every-fold run), run by compact3_lever.sh, e.g.
#   run.sh 0 2 4 &  run.sh 1 3 all &  wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/compact8 --holdout
# The teachers are compact v6's final epochs, exported once (weights/training_logs/compact6/run.sh
# trains them):  python -m kwmlp.train.export --run runs/cv/compact6/foldI --weights last
#   --out runs/cv/compact6/foldI.pt  (and --run runs/compact6_all --out runs/compact6_all.pt)
set -uo pipefail
cd "$(dirname "$0")/../../.."
for i in "$@"; do
  teacher=runs/cv/compact6/fold$i.pt
  [ "$i" = all ] && teacher=runs/compact6_all.pt
  [ -f "$teacher" ] || { echo "missing teacher $teacher: export it as above"; exit 1; }
  weights/training_logs/compact3_lever.sh compact8 \
    "--teacher $teacher --distill-weight 0.5 --distill-temperature 2" "$i"
done
