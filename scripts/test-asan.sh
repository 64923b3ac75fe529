#!/usr/bin/env bash
# The whole suite built with AddressSanitizer (release, so the full-size checks finish): every heap read and
# write of the kernels, models, decoders and the CLI is bounds-checked. Not in CI (about 3× the plain suite's
# time); run before resolving a memory-safety change:  scripts/test-asan.sh [swift test options, e.g. --filter X]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1}
swift build -c release --scratch-path .build-asan --sanitize=address --build-tests
swift test -c release --scratch-path .build-asan --sanitize=address --skip-build "$@"
