#!/usr/bin/env bash
# CI entry for the HEAR check: build (or reuse) the evaluation venv, make the
# synthetic smoke tasks in a temp dir, run the whole HEAR pipeline on them
# with the shipped weights, validate a published-layout checkpoint too, and
# fail unless every step passes and the scores clear chance.
#
#   bash benchmarks/hear/ci.sh            (HEAR_VENV=DIR to put the venv elsewhere)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$HERE/../.." && pwd)"
VENV="${HEAR_VENV:-$REPO_DIR/.hear-venv}"
START_S=$(date +%s)
elapsed() { echo "$(( $(date +%s) - START_S )) s"; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/kwmlp-hear-ci.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "== setup venv ($VENV)"
bash "$HERE/setup_venv.sh" "$VENV"
echo "   done at $(elapsed)"

PY="$VENV/bin/python"
echo "== tests that need the HEAR venv's pytorch-lightning"
(cd "$REPO_DIR" && "$PY" -m pytest -q -p no:cacheprovider tests/test_hear_smoke.py -k launcher)
echo "== published-layout checkpoint through hear-validator"
"$PY" "$HERE/make_random_checkpoint.py" --layout published --out "$WORK/published.pth"
TF_CPP_MIN_LOG_LEVEL=2 nice -n 10 "$VENV/bin/hear-validator" kwmlp -m "$WORK/published.pth" \
    > "$WORK/validator-published.log" 2>&1 \
    || { tail -n 40 "$WORK/validator-published.log"; exit 1; }
echo "   ok at $(elapsed)"

echo "== smoke tasks + HEAR pipeline (default weights)"
"$PY" "$HERE/make_smoke_tasks.py" --out "$WORK/tasks"
python3 "$HERE/run.py" --tasks-dir "$WORK/tasks" --venv "$VENV" --out "$WORK/out"

# Chance: top1_acc 0.25 (4 balanced classes); an empty event output scores
# onset F 0 and segment error rate 1. The floors leave room for the
# randomly initialised stand-in weights, which score ~0.8 / ~0.9 / ~0.05.
python3 - "$WORK/out/scores.json" <<'PY'
import json, sys
floors = {"top1_acc": (">", 0.5), "event_onset_200ms_fms": (">", 0.5),
          "segment_1s_er": ("<", 0.5)}
bad = []
for row in json.load(open(sys.argv[1])):
    op, bound = floors[row["metric"]]
    if not (row["score"] > bound if op == ">" else row["score"] < bound):
        bad.append(f"{row['task']} {row['metric']} = {row['score']:.4f} (want {op} {bound})")
if bad:
    sys.exit("HEAR smoke scores too low:\n  " + "\n  ".join(bad))
print("scores above chance")
PY
echo "== HEAR smoke check passed in $(elapsed)"
