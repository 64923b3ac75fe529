#!/usr/bin/env bash
# The main job (until `affect analyze` lands): installs what it needs, builds `affect`, and proves each
# facial model port against its reference framework with `affect verify` on the committed references
# (timm / EmotiEffLib in PyTorch, and Keras for the real mini-Xception weights).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release 2>&1 | tail -1
affect=.build/release/affect
fx=Tests/Fixtures/models
run() { echo; echo "\$ affect $*"; $affect "$@"; }
run info Weights/mini_xception.safetensors
for b in b1 b8; do run verify Weights/mini_xception.safetensors $fx/mini_xception.$b.ref.safetensors; done
for m in efficientnet_tiny mobilefacenet_tiny mobilevit_tiny; do
    for b in b1 b3; do run verify $fx/$m.safetensors $fx/$m.$b.ref.safetensors; done
done
run bench Weights/mini_xception.safetensors --seconds 1
