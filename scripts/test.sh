#!/usr/bin/env bash
# The test command: installs what it needs, builds in release (the kernels are too slow unoptimised for
# full-size checks) and runs every Swift test.
# On an AVX-512 host the native build runs the AVX-512 kernels only, so the kernel and model tests are built
# a second time for AVX2 + FMA (AFFECT_TARGET_CPU=haswell, the binary for any x86-64 server since 2013) and run
# again (only those targets: AFFECT_PACKAGE_SUBSET=kernels): both vector widths stay covered whichever machine
# runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# One build of everything, tests included: `swift test` alone would plan and link a second time.
swift build -c release --build-tests
swift test -c release --skip-build
if [ "${AFFECT_TARGET_CPU:-native}" = native ] && grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    echo "AVX-512 host: the kernel and model tests again, built for AVX2 (AFFECT_TARGET_CPU=haswell)"
    # Only the kernels, the models and their tests are in the package for this pass (AFFECT_PACKAGE_SUBSET).
    export AFFECT_TARGET_CPU=haswell AFFECT_PACKAGE_SUBSET=kernels
    swift build -c release --build-tests --scratch-path .build-haswell
    swift test -c release --skip-build --scratch-path .build-haswell
fi
