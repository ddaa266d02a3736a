#!/usr/bin/env bash
# Compact v6 (weights/README.md): compact v3 with --mixup-alpha 0.4, run by compact3_lever.sh,
# e.g.  run.sh 0 2 4 &  run.sh 1 3 all &  wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/compact6 --holdout
exec "$(dirname "$0")/../compact3_lever.sh" compact6 "--mixup-alpha 0.4" "$@"
