#!/usr/bin/env bash
# Debian packages whose audio benchmarks/false_accepts.py builds its hour without a
# keyword from (its docstring names what each is for), plus the TTS engines of its
# synthetic sentences (kwmlp/train/install_tts.sh). Run as root (or via sudo);
# `install_audio.sh --check` only says whether they are there (exit 1 if not).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(fluidsynth musescore-general-soundfont asterisk-core-sounds-ru-wav
          asterisk-moh-opsound-wav sound-theme-freedesktop espeak-ng flite festival)
if [ "${1:-}" = --check ]; then
  dpkg -s "${packages[@]}" > /dev/null 2>&1 || { echo "missing: sudo bash $0"; exit 1; }
  exit 0
fi
bash "$(dirname "$0")/../kwmlp/train/install_tts.sh"
apt-get install -y --no-install-recommends "${packages[@]}"
