#!/usr/bin/env bash
# Compact v7 (weights/README.md): compact v3 with --mixup-alpha 0.2, run by compact3_lever.sh,
# e.g.  run.sh 0 2 4 &  run.sh 1 3 all &  wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/compact7 --holdout
exec "$(dirname "$0")/../compact3_lever.sh" compact7 "--mixup-alpha 0.2" "$@"
