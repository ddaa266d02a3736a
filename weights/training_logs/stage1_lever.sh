#!/usr/bin/env bash
# A synthetic stage at the paper's schedule (140 epochs, 10 warmup, kwmlp.train.train's
# defaults, data/synth35) with extra flags, then compact v3's fine-tune on top of it,
# cross-validated by speaker folds (weights/training_logs/compact3_lever.sh):
#   stage1_lever.sh STAGE1 "STAGE1 FLAGS" NAME stage1       # into runs/STAGE1, 2 threads,
#                                                           # its final epoch -> runs/STAGE1.pt
#   stage1_lever.sh STAGE1 "STAGE1 FLAGS" NAME save         # keep the stage for git (below)
#   stage1_lever.sh STAGE1 "STAGE1 FLAGS" NAME 0 2 4 &  ... NAME 1 3 all &   # the folds
#   wait; .venv/bin/python -m kwmlp.train.crossval runs/cv/NAME --holdout
# Every step resumes after its last finished epoch when rerun.
#
# A session's machine may be new (no runs/, no data/), and the stage takes longer than a
# session. The stage records a digest of data/synth35 when it starts. `save` copies its
# resume point (last.pt, about 5 MB, with config, log and digest), or once it has
# finished its exported weights instead of last.pt, into weights/training_logs/NAME/stage1/,
# to be committed; `stage1` resumes from there when runs/ lacks the stage, and every step
# refuses a corpus rendered again that differs from the one the stage trained on. The
# stage's config names the corpus by its absolute path: resume in a checkout at the same
# place. The simulated rooms (rirs.npy) are not kept: the seed rebuilds them.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
stage1=$1 flags=$2 name=$3
shift 3
init=runs/$stage1.pt run=runs/$stage1 kept=weights/training_logs/$name/stage1
digest_name=synth35.sha256

corpus_digest() {  # SHA-256 over a finished data/synth35's file names and contents
  [ -f data/synth35/voices.json ] || { echo "data/synth35 is missing or unfinished: render it with weights/training_logs/corpora.sh synth35" >&2; return 1; }
  (cd data/synth35 && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) \
    | sha256sum | cut -d' ' -f1
}

check_corpus() {  # DIR: refuse a corpus other than the one DIR's digest names
  local now
  now=$(corpus_digest) || exit 1
  [ "$now" = "$(cat "$1/$digest_name")" ] \
    || { echo "data/synth35 differs from the corpus $stage1 trained on ($1/$digest_name)"; exit 1; }
}

epoch_of() {  # LAST_PT: the last finished epoch it holds
  $PY -c "import sys, torch; print(torch.load(sys.argv[1], map_location='cpu', weights_only=True)['epoch'])" "$1"
}

copy() {  # SRC DST: whole or not at all (another lane may be reading DST)
  cp "$1" "$2.part.$$" && mv "$2.part.$$" "$2" || { echo "cannot copy $1 to $2"; exit 1; }
}

restore_init() {  # runs/STAGE1.pt from $kept when runs/ lacks it
  [ -f "$init" ] || [ ! -f "$kept/$stage1.pt" ] && return 0
  check_corpus "$kept"
  mkdir -p runs && copy "$kept/$stage1.pt" "$init" && echo "restored $init from $kept"
}

restore_run() {  # runs/STAGE1/ from $kept's resume point unless runs/ holds as much
  [ -f "$kept/last.pt" ] || return 0
  if [ -f "$run/last.pt" ]; then
    local here there
    here=$(epoch_of "$run/last.pt") there=$(epoch_of "$kept/last.pt") || exit 1
    [ "$here" -ge "$there" ] && return 0
    echo "$run holds epoch $here, $kept epoch $there: remove $run to resume from $kept"; exit 1
  fi
  mkdir -p "$run"
  for file in last.pt config.json log.jsonl "$digest_name"; do copy "$kept/$file" "$run/$file"; done
  echo "restored $run from $kept (epoch $(epoch_of "$run/last.pt"))"
}

case "${1:-}" in
  save)
    [ -f "$run/$digest_name" ] || { echo "nothing to save: $run has no $digest_name"; exit 1; }
    mkdir -p "$kept" || exit 1
    if [ -f "$init" ]; then
      files=("$init" "$run/config.json" "$run/log.jsonl" "$run/$digest_name")
      rm -f "$kept/last.pt"
    else
      if [ -f "$kept/last.pt" ] && [ "$(epoch_of "$kept/last.pt")" -gt "$(epoch_of "$run/last.pt")" ]; then
        echo "$kept holds a later epoch than $run: not saved"; exit 1
      fi
      # last.pt before its log: a log line too many is dropped on resume, one too few is not
      files=("$run/last.pt" "$run/config.json" "$run/log.jsonl" "$run/$digest_name")
      rm -f "$kept/$stage1.pt"
    fi
    for file in "${files[@]}"; do copy "$file" "$kept/$(basename "$file")"; done
    echo "kept in $kept: $(ls "$kept" | tr '\n' ' ')"
    exit ;;
  stage1)
    restore_init
    [ -f "$init" ] && { echo "$init exists: the stage has finished"; exit; }
    restore_run
    mkdir -p "$run"
    if [ -f "$run/$digest_name" ]; then
      check_corpus "$run"
    else
      digest=$(corpus_digest) || exit 1
      echo "$digest" > "$run/$digest_name"
    fi
    # shellcheck disable=SC2086  # the flags are meant to split
    $PY -m kwmlp.train.train --data data/synth35 --out "$run" --threads 2 $flags \
      > "$run.log" 2>&1 || { echo "stage 1 ($stage1) failed"; exit 1; }
    $PY -m kwmlp.train.export --run "$run" --weights last --out "$init" \
      --generator "python -m kwmlp.train.synth --out data/synth35 --seed 0 --clips-per-word 1150 --workers 2"
    exit ;;
esac
restore_init
[ -f "$init" ] || { echo "missing $init: run the stage1 step first"; exit 1; }
for i in "$@"; do
  weights/training_logs/compact3_lever.sh "$name" "--init $init" "$i"
done
