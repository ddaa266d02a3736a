#!/usr/bin/env bash
# The corpora of compact v3 and every recipe on top of it (weights/README.md), each
# rendered unless finished (its marker file written last), logs in runs/:
#   corpora.sh [synth35] [neural35] [negatives2]        # no names: all three
# Needs kwmlp/train/install_tts.sh and install_negatives.sh (root, apt) and the train extra.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
mkdir -p runs
corpus() {  # corpus DIR MARKER COMMAND...: render unless finished
  local dir=$1 marker=$2; shift 2
  [ -f "$dir/$marker" ] && return 0
  "$@" > "runs/$(basename "$dir").log" 2>&1 || { echo "failed: $* (runs/$(basename "$dir").log)"; exit 1; }
}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(synth35 neural35 negatives2)
for one in "${names[@]}"; do
  case $one in
    synth35) corpus data/synth35 voices.json $PY -m kwmlp.train.synth --out data/synth35 \
      --seed 0 --clips-per-word 1150 --workers 2 --overwrite ;;
    neural35) corpus data/neural35 voices.json $PY -m kwmlp.train.synth --out data/neural35 \
      --seed 0 --engines kokoro piper --clips-per-word 120 --workers 2 --noise-seconds 2 --overwrite ;;
    negatives2) corpus data/negatives2 sources.json $PY -m kwmlp.train.negatives \
      --out data/negatives2 --real-data ../shared/data/real_speech \
      --sources fr_prompts,tts_sentence,tts_word,music_midi,effects,noise,foreign_prompts,chimes,tts_phrase ;;
    *) echo "unknown corpus $one (synth35, neural35, negatives2)"; exit 1 ;;
  esac
done
