#!/usr/bin/env bash
# Installs the system libraries Affect builds against, if any is missing (idempotent; needs root or sudo).
set -euo pipefail
packages=(libopenblas-dev libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev libavdevice-dev
          libsndfile1-dev libjpeg-dev libhdf5-dev pkg-config ffmpeg espeak-ng chromium chromium-driver)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "error: the Swift toolchain (6.x) is not on PATH." >&2; exit 2; }
