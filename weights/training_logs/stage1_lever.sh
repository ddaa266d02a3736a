#!/usr/bin/env bash
# A synthetic stage at the paper's schedule (140 epochs, 10 warmup, kwmlp.train.train's
# defaults, data/synth35) with extra flags, then compact v3's fine-tune on top of it,
# cross-validated by speaker folds (weights/training_logs/compact3_lever.sh):
#   stage1_lever.sh STAGE1 "STAGE1 FLAGS" NAME stage1       # into runs/STAGE1, 2 threads,
#                                                           # its final epoch -> runs/STAGE1.pt
#   stage1_lever.sh STAGE1 "STAGE1 FLAGS" NAME save         # keep the stage in git (below)
#   stage1_lever.sh STAGE1 "STAGE1 FLAGS" NAME 0 2 4 &  ... NAME 1 3 all &   # the folds
#   wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/NAME --holdout
# Every step resumes after its last finished epoch when rerun.
#
# A session's machine may be new (no runs/, no data/), and the stage takes longer than a
# session. `save` copies the stage's resume point (last.pt, about 5 MB, with its config
# and log), or once it has finished its exported weights alone, into
# weights/training_logs/NAME/stage1/ with a digest of data/synth35; the other steps take
# them from there when runs/ lacks them, after checking that the corpus rendered again
# on this machine is byte for byte the one the stage trained on.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
stage1=$1 flags=$2 name=$3
shift 3
init=runs/$stage1.pt kept=weights/training_logs/$name/stage1

corpus_digest() {  # SHA-256 over data/synth35's file names and contents
  (cd data/synth35 && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

restore() {  # runs/ from $kept, if runs/ lacks the stage and $kept holds it
  [ -f "$init" ] || [ -f "runs/$stage1/last.pt" ] && return 0
  [ -f "$kept/synth35.sha256" ] || return 0
  [ -d data/synth35 ] || { echo "missing data/synth35: render it first (README)"; exit 1; }
  [ "$(corpus_digest)" = "$(cat "$kept/synth35.sha256")" ] \
    || { echo "data/synth35 differs from the corpus $kept was trained on"; exit 1; }
  if [ -f "$kept/$stage1.pt" ]; then
    mkdir -p runs && cp "$kept/$stage1.pt" "$init"
  else
    mkdir -p "runs/$stage1" && cp "$kept"/{config.json,log.jsonl,last.pt} "runs/$stage1/"
  fi
  echo "restored $stage1 from $kept"
}

case "${1:-}" in
  save)
    mkdir -p "$kept" && corpus_digest > "$kept/synth35.sha256"
    if [ -f "$init" ]; then
      cp "$init" "$kept/" && rm -f "$kept"/{config.json,log.jsonl,last.pt}
    else
      # last.pt before its log: a log line too many is dropped on resume, one too few is not
      cp "runs/$stage1"/{last.pt,config.json,log.jsonl} "$kept/"
    fi
    echo "kept in $kept: $(ls "$kept" | tr '\n' ' ')"
    exit ;;
  stage1)
    mkdir -p runs
    restore
    [ -f "$init" ] && { echo "$init exists: the stage has finished"; exit; }
    # shellcheck disable=SC2086  # the flags are meant to split
    $PY -m kwmlp.train.train --data data/synth35 --out "runs/$stage1" --threads 2 $flags \
      > "runs/$stage1.log" 2>&1 || { echo "stage 1 ($stage1) failed"; exit 1; }
    $PY -m kwmlp.train.export --run "runs/$stage1" --weights last --out "$init" \
      --generator "python -m kwmlp.train.synth --out data/synth35 --seed 0 --clips-per-word 1150 --workers 2"
    exit ;;
esac
restore
[ -f "$init" ] || { echo "missing $init: run the stage1 step first"; exit 1; }
for i in "$@"; do
  weights/training_logs/compact3_lever.sh "$name" "--init $init" "$i"
done
