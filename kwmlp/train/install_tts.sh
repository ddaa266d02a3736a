#!/usr/bin/env bash
# Debian TTS engines that kwmlp.train.synth renders the synthetic Speech
# Commands corpus with (espeak-ng, flite, festival + three English voices),
# plus sox for listening checks. Run as root (or via sudo) on Debian 12.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
    espeak-ng flite festival festlex-cmu festlex-poslex \
    festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox
