#!/usr/bin/env bash
# The main job: installs what it needs, builds `affect` and proves the port against the reference
# framework: `affect verify` on the committed PyTorch references.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release 2>&1 | tail -1
affect=.build/release/affect
fx=Tests/Fixtures/models
echo "== affect info $fx/efficientnet_tiny.safetensors"
$affect info $fx/efficientnet_tiny.safetensors
for ref in $fx/efficientnet_tiny.b1.ref.safetensors $fx/efficientnet_tiny.b3.ref.safetensors; do
    echo "== affect verify $ref"
    $affect verify $fx/efficientnet_tiny.safetensors "$ref"
done
