#!/usr/bin/env bash
# Debian packages that kwmlp.train.negatives renders its no-keyword sources from (its
# --sources names in the comments; tts_* need install_tts.sh's engines instead).
# Run as root (or via sudo) on Debian 12. None of these is judged on: the packages of
# benchmarks/false_accepts.py and ../shared/data/EVALUATION_ONLY.md are not here.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(
  fluidsynth timgm6mb-soundfont                  # music_midi
  colobot-common-sounds                          # effects
  asterisk-core-sounds-fr-wav                    # fr_prompts
  asterisk-core-sounds-es-wav asterisk-core-sounds-it-wav asterisk-prompt-it-menardi-wav  # foreign_prompts
  yaru-theme-sound deepin-sound-theme oxygen-sounds  # chimes
  asterisk-core-sounds-en-wav asterisk-core-sounds-en  # en_prompts (the second: transcripts)
)
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"
