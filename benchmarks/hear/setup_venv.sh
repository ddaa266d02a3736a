#!/usr/bin/env bash
# Build the HEAR evaluation venv: hear-validator + heareval (2021 releases) and
# the kwmlp package itself, on CPU torch.
#
#   benchmarks/hear/setup_venv.sh [VENV_DIR]     (default: <repo>/.hear-venv)
#
# KWMLP_SOURCE=DIR installs kwmlp from another source tree (default: this repo).
#
# Idempotent: each step is skipped when what it installs already imports, so a
# second run only reinstalls kwmlp (cheap, and picks up source changes).
# Only package registries are contacted, through pip.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV_DIR="${1:-$REPO_DIR/.hear-venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
KWMLP_SOURCE="${KWMLP_SOURCE:-$REPO_DIR}"

log() { echo "[setup_venv] $*" >&2; }

if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    log "creating venv $VENV_DIR"
    "$PYTHON" -m venv "$VENV_DIR"
fi
PY="$VENV_DIR/bin/python"
PIP=("$PY" -m pip install --quiet)

# Does every named module import in the venv?
imports() { "$PY" -c "import $1" >/dev/null 2>&1; }

if ! "$PY" -c "import torch, sys; sys.exit(not torch.__version__.startswith('$TORCH_VERSION'))" >/dev/null 2>&1; then
    log "installing torch==$TORCH_VERSION"
    "${PIP[@]}" "torch==$TORCH_VERSION"
fi

# The HEAR tools' own pins (tensorflow<2.6, pytorch-lightning 1.4, ...) do not
# install on Python 3.11, so they go in without dependencies and the working
# set below is installed explicitly.
if ! imports "heareval, hearvalidator"; then
    log "installing heareval + hearvalidator (no deps)"
    "${PIP[@]}" --no-deps heareval==2021.1.3 hearvalidator==2021.0.2
fi

# setuptools<81: pytorch-lightning 1.9.5 imports pkg_resources.
# tensorflow-cpu: hearvalidator and heareval import it at top level only.
if ! imports "pkg_resources, tensorflow, pytorch_lightning, pandas, sklearn, scipy, dcase_util, sed_eval, intervaltree, more_itertools, slugify, torchinfo, tqdm, click, soundfile"; then
    log "installing heareval's runtime dependencies"
    "${PIP[@]}" "setuptools<81" tensorflow-cpu==2.21.0 pytorch-lightning==1.9.5 \
        pandas scikit-learn scipy dcase_util sed_eval intervaltree more-itertools \
        python-slugify torchinfo tqdm click soundfile
fi

# kwmlp's runtime dependencies (torch is already there).
if ! imports "nnAudio, resampy, soundfile, numpy, tqdm"; then
    log "installing kwmlp's runtime dependencies"
    "${PIP[@]}" nnAudio resampy soundfile numpy tqdm
fi

# pytest: ci.sh runs here the tests that need pytorch-lightning (not in kwmlp's extras).
if ! imports "pytest"; then
    log "installing pytest"
    "${PIP[@]}" pytest
fi

# kwmlp itself, non-editable, always reinstalled so the venv matches the tree.
log "installing kwmlp from $KWMLP_SOURCE"
"${PIP[@]}" --no-deps --force-reinstall "$KWMLP_SOURCE"

"$PY" -c "import kwmlp, heareval, hearvalidator, pytorch_lightning" \
    || { log "import check failed"; exit 1; }
log "ready: $VENV_DIR"
