#!/usr/bin/env bash
# Debian TTS engines that kwmlp.train.synth renders the synthetic Speech
# Commands corpus with (espeak-ng, flite, festival + three English voices),
# plus sox for listening checks. Run as root (or via sudo) on Debian 12;
# `install_tts.sh --check` only says whether they are there (exit 1 if not).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(espeak-ng flite festival festlex-cmu festlex-poslex
          festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox)
if [ "${1:-}" = --check ]; then
  for package in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$package" 2>/dev/null)" = "ii " ] ||
      { echo "missing $package: sudo bash $0"; exit 1; }
  done
  exit 0
fi
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"
