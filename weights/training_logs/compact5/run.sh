#!/usr/bin/env bash
# Compact v5 (weights/README.md): compact v3 with --real-balance, run by compact3_lever.sh,
# e.g.  run.sh 0 1 2 &  run.sh 3 4 &  wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/compact5 --holdout
exec "$(dirname "$0")/../compact3_lever.sh" compact5 "--real-balance" "$@"
