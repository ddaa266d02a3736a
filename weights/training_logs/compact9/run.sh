#!/usr/bin/env bash
# Compact v9 (weights/README.md; the shipped weights since 2026-12-07): the paper's
# 140-epoch synthetic stage of issue #21, then compact v3's fine-tune on top of it.
#   run.sh stage1                      # 140 epochs (10 warmup), 2 threads -> runs/stage1_140.pt
#   run.sh 0 2 4 &  run.sh 1 3 all &   # then compact v3's command from its final epoch
#   wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/compact9 --holdout
# Every step resumes after its last finished epoch when rerun.
exec "$(dirname "$0")/../stage1_lever.sh" stage1_140 "" compact9 "$@"
