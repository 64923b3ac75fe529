#!/usr/bin/env bash
# The measurements BENCHMARKS.md keeps per CPU, in one command, on the CPU this runs on:
#   1. EfficientNet-B0 (batch 1) and roberta-base (128 tokens) against ONNX Runtime and PyTorch, 1 and 2 threads
#      (Tools/bench_peers.py, engines taking turns 3 times, each under `chrt -f 10`);
#   2. roberta-base with `--precision int8` against ONNX Runtime float32 and its own dynamic int8 model, and the
#      int8 error against the transformers reference (`affect verify --precision int8`);
#   3. the crowd clip through `affect analyze` against the seed's Python pipeline (Tools/bench_pipeline.py).
#
#   bash Tools/bench_cpu.sh [CLIP] [--avx2-only]
#
# CLIP defaults to ../shared/data/walking-crowd-1080p.mp4; without a clip, part 3 is skipped. --avx2-only
# builds the haswell binary and masks AVX-512 from every engine (Tools/avx2only; needs the `cpuid_fault` flag):
# the nearest an AVX-512 host comes to an AVX2-only CPU. Weights with trained-looking random values are made once
# by Tools/make_reference.py in $REFS (default /tmp/affect-cpu-refs). Everything goes to one markdown file,
# $OUT (default /tmp/affect-cpu-<date>.md), headed by the CPU's model, family, flags and the commit; paste
# its sections into BENCHMARKS.md. Needs root (chrt) and Tools/.venv (made by Tools/setup.sh when missing); about
# 25 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
clip=../shared/data/walking-crowd-1080p.mp4
avx2=()
for a in "$@"; do
  case "$a" in
    --avx2-only) avx2=(--avx2-only) ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) clip="$a" ;;
  esac
done
py=Tools/.venv/bin/python
refs=${REFS:-/tmp/affect-cpu-refs}
out=${OUT:-/tmp/affect-cpu-$(date -u +%Y%m%d-%H%M).md}
[ -x "$py" ] || bash Tools/setup.sh

if [ ${#avx2[@]} -gt 0 ]; then
  grep -qw cpuid_fault /proc/cpuinfo || { echo "bench_cpu.sh: --avx2-only needs the cpuid_fault CPU flag, which this CPU lacks" >&2; exit 2; }
  AFFECT_TARGET_CPU=haswell swift build -c release --product affect --scratch-path .build-haswell
  export AFFECT_BIN="$PWD/.build-haswell/release/affect" AFFECT_TARGET_CPU=haswell
else
  swift build -c release --product affect
  export AFFECT_BIN="$PWD/.build/release/affect"
fi

mkdir -p "$refs"
for m in efficientnet_b0 roberta_base; do
  [ -f "$refs/$m.safetensors" ] && [ -f "$refs/$m.b1.ref.safetensors" ] || "$py" Tools/make_reference.py "$m" "$refs" --batch 1
done

{
  echo "# Affect on $(lscpu | sed -n 's/^Model name: *//p'), $(date -u '+%Y-%m-%d %H:%M') UTC"
  echo
  echo "- CPU: family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'), $(nproc) cores available;" \
       "L2 $(lscpu | sed -n 's/^L2 cache: *//p'), L3 $(lscpu | sed -n 's/^L3 cache: *//p');" \
       "vector flags: $(grep -m1 -ow -E 'avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|avx_vnni|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "- commit $(git rev-parse --short HEAD), binary $AFFECT_BIN${avx2:+, every engine limited to AVX2 (Tools/avx2only)}"
  echo
} > "$out"

echo "== 1. EfficientNet-B0 and roberta-base against ONNX Runtime and PyTorch" >&2
"$py" Tools/bench_peers.py "${avx2[@]}" --models "$refs/efficientnet_b0.safetensors" "$refs/roberta_base.safetensors" \
  --batches 1 --threads 1,2 --seconds 3 --alternate 3 --fifo --markdown "$out"

echo "== 2. roberta-base int8" >&2
{
  echo
  echo "## int8, roberta-base"
  echo
  "$py" Tools/bench_peers.py "${avx2[@]}" --precision int8 --models "$refs/roberta_base.safetensors" --threads 1,2 --rounds 3 --seconds 2 --fifo
  echo
  echo 'Error against the transformers reference (`affect verify --precision int8`):'
  echo
  echo '```'
  if [ ${#avx2[@]} -gt 0 ]; then
    # The same mask as the benchmark's children get, so the int8 kernel is the AVX2 one (7-bit weights).
    so=$(mktemp -d)/avx2only.so
    cc -O2 -shared -fPIC -o "$so" Tools/avx2only/avx2only.c
    LD_PRELOAD="$so" GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ SWIFT_BACKTRACE=enable=no \
      OPENBLAS_CORETYPE=Haswell "$AFFECT_BIN" verify "$refs/roberta_base.safetensors" "$refs/roberta_base.b1.ref.safetensors" --precision int8 || true
  else
    "$AFFECT_BIN" verify "$refs/roberta_base.safetensors" "$refs/roberta_base.b1.ref.safetensors" --precision int8 || true
  fi
  echo '```'
} >> "$out"

if [ -f "$clip" ]; then
  echo "== 3. the video pipeline on $clip" >&2
  echo >> "$out"
  "$py" Tools/bench_pipeline.py "$clip" "${avx2[@]}" --models "$refs/pipeline" --threads 2 --runs 3 --markdown "$out"
else
  echo "bench_cpu.sh: no clip at $clip: the pipeline comparison is left out" >&2
fi
echo "bench_cpu.sh: wrote $out" >&2
