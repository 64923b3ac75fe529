#!/usr/bin/env bash
# The test command: installs what it needs, builds in release (the kernels are too slow unoptimised for
# full-size checks) and runs every Swift test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release
swift test -c release
