#!/usr/bin/env bash
# Compact v10 (weights/README.md): stage 1-140 with the fine-tune's speaker and channel
# augmentation, then compact v3's fine-tune on top of it.
#   run.sh stage1                      # about 4 h on 2 threads; resumable
#   run.sh save                        # its resume point into git, for a session's new machine
#   run.sh 0 2 4 &  run.sh 1 3 all &   # the folds and the every-fold run
#   wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/compact10 --holdout \
#     --paired-with weights/training_logs/compact9/crossval.json
exec "$(dirname "$0")/../stage1_lever.sh" stage1_140aug \
  "--speed-prob 0.5 --vtlp-prob 0.5 --eq-prob 0.5 --bandlimit-prob 0.3 --reverb-prob 0.5" \
  compact10 "$@"
