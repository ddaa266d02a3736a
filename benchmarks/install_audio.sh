#!/usr/bin/env bash
# Debian packages whose audio benchmarks/false_accepts.py builds its hour without a
# keyword from (its docstring names what each is for), plus the TTS engines of its
# synthetic sentences (kwmlp/train/install_tts.sh). Run as root (or via sudo);
# `install_audio.sh --check` only says whether they are there (exit 1 if not).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
tts="$(dirname "$0")/../kwmlp/train/install_tts.sh"
packages=(fluidsynth musescore-general-soundfont asterisk-core-sounds-ru-wav
          asterisk-moh-opsound-wav sound-theme-freedesktop)
if [ "${1:-}" = --check ]; then
  bash "$tts" --check
  for package in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null)" = "ii " ] ||
      { echo "missing $package: sudo bash $0"; exit 1; }
  done
  exit 0
fi
bash "$tts"
apt-get install -y --no-install-recommends "${packages[@]}"
