#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (AddressSanitizer + libFuzzer) and runs one:
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer options...]
#   scripts/fuzz.sh TARGET --runs N            (stop after N executions)
#   scripts/fuzz.sh TARGET --regress           (run every saved crash and the seed corpus once)
# TARGET: FuzzWeights, FuzzRunInputs, FuzzTokenizer, FuzzTranscript, FuzzImage, FuzzConvert.
# The corpus grows in .build-fuzz/corpus/TARGET, seeded from Tests/Fixtures; crashes land in Fuzz/Crashes/TARGET
# (commit each with the regression test it becomes). Not part of CI: a campaign takes minutes to hours.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET SECONDS|--runs N|--regress}; shift
scripts/install-deps.sh
build=.build-fuzz
(cd Fuzz && swift build -c release --scratch-path "../$build" --product "$target" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld 2>&1 | grep -E "error|warning: unre|Compiling|Build" | tail -3)
bin="$build/release/$target"
corpus="$build/corpus/$target"; crashes="Fuzz/Crashes/$target"
mkdir -p "$corpus" "$crashes"
seed() { [ -e "$1" ] && cp -n "$1" "$corpus/$(basename "$1")${2:-}" || true; }
# Seeds: the committed files of each kind (a leading selector byte where the harness reads one).
case "$target" in
  FuzzWeights) for f in Tests/Fixtures/models/*_tiny.safetensors Tests/Fixtures/fusion/head_*[a-z].safetensors \
                        Tests/Fixtures/audio/*_tiny.safetensors Tests/Fixtures/text/tiny_roberta_go.safetensors \
                        Tests/Fixtures/text/encoder_layers.safetensors Weights/*.safetensors; do seed "$f"; done ;;
  FuzzRunInputs) # selector byte: 0 EfficientNet, 1 wav2vec2, 2 RoBERTa, 3 mini-Xception, 4 a Keras head
                 sel() { [ -e "$2" ] && { printf "\\$(printf %o "$1")"; cat "$2"; } > "$corpus/$1-$(basename "$2")" || true; }
                 for f in Tests/Fixtures/models/*.b1.ref.safetensors; do sel 0 "$f"; sel 3 "$f"; done
                 sel 1 Tests/Fixtures/audio/wav2vec2_tiny.b2.ref.safetensors
                 sel 1 Tests/Fixtures/audio/hubert_tiny.b2.ref.safetensors
                 sel 2 Tests/Fixtures/text/tiny_roberta_go.b1.ref.safetensors
                 for f in Tests/Fixtures/fusion/*.ref.safetensors; do sel 4 "$f"; done ;;
  FuzzTokenizer) ;;   # small hand-trimmed files in Fuzz/Seeds (a 100 KB tokenizer.json runs at 50 exec/s under ASan)
  FuzzTranscript) printf '\0%s' "$(printf '1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:01,600 --> 00:00:03,000\nHow are you?\n')" > "$corpus/srt"
                  printf '\1%s' "$(printf 'WEBVTT\n\n00:00.000 --> 00:01.500\nHello there.\n\n00:01.600 --> 00:03.000 align:start\nHow are you?\n')" > "$corpus/vtt"
                  { printf '\2'; cat Tests/Fixtures/media/speech.txt; } > "$corpus/txt" ;;
  FuzzImage) { printf '\1'; head -c 200000 Tests/Fixtures/media/portrait.png; } > "$corpus/portrait-cut"
             ffmpeg -v error -y -i Tests/Fixtures/media/portrait.png -vf scale=48:48 "$build/small.png"
             ffmpeg -v error -y -i Tests/Fixtures/media/portrait.png -vf scale=48:48 -pix_fmt yuvj420p "$build/small.jpg"
             { printf '\1'; cat "$build/small.png"; } > "$corpus/small-png"
             { printf '\0'; cat "$build/small.jpg"; } > "$corpus/small-jpg"
             for f in Tests/Fixtures/faces/*.jpg; do [ -e "$f" ] && { printf '\0'; cat "$f"; } > "$corpus/$(basename "$f")"; done ;;
  FuzzConvert) c=Tests/Fixtures/convert
               { printf '\0'; cat $c/efficientnet.onnx; } > "$corpus/onnx"
               { printf '\0'; cat $c/mobilefacenet.onnx; } > "$corpus/onnx-mobilefacenet"
               { printf '\0'; cat $c/mobilevit.onnx; } > "$corpus/onnx-mobilevit"
               { printf '\1'; cat $c/efficientnet.pt; } > "$corpus/torch-zip"
               { printf '\2'; cat $c/pnet.pt; } > "$corpus/pnet-legacy"
               { printf '\1'; cat $c/efficientnet.state_dict.pt; } > "$corpus/state-dict"
               { printf '\3'; cat $c/wav2vec2_base/config.json; } > "$corpus/hf-config"
               { printf '\4'; cat $c/wav2vec2_base/model.safetensors; } > "$corpus/hf-safetensors"
               { printf '\5'; cat $c/roberta_bpe/vocab.json; printf '\0'; cat $c/roberta_bpe/merges.txt; } > "$corpus/bpe"
               { printf '\6'; cat $c/bert_sentence/tokenizer.json; } > "$corpus/json"
               for k in engagement engagement_model mini_xception; do
                   { printf '\7'; cat Tests/Fixtures/keras/$k.h5; } > "$corpus/keras-$k"
               done ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
for f in Fuzz/Seeds/"$target"/*; do seed "$f"; done
# Largest input per target: big enough for every structure the parser reads, small enough for a fast campaign.
case "$target" in
  FuzzTranscript) max_len=4096 ;; FuzzTokenizer) max_len=16384 ;; FuzzImage|FuzzRunInputs) max_len=262144 ;;
  *) max_len=1048576 ;;
esac
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
if [ "${1:-}" = --regress ]; then
  shopt -s nullglob; files=("$crashes"/* "$corpus"/*)
  exec "$bin" -rss_limit_mb=4096 -timeout=20 "${files[@]}"
fi
limit=()
if [ "${1:-}" = --runs ]; then limit=(-runs="$2"); shift 2; else limit=(-max_total_time="${1:-60}"); shift || true; fi
# 4 GB RSS and 20 s per input: an input that allocates more or runs longer is a finding (a bomb or a hang).
# -detect_leaks=0 as in ASAN_OPTIONS: otherwise libFuzzer runs every input that ends with more mallocs than frees
# (caches, libhdf5) a second time to look for a leak it would not report (13 % of FuzzConvert's time).
exec "$bin" "${limit[@]}" -rss_limit_mb=4096 -malloc_limit_mb=4096 -timeout=20 -max_len=$max_len -detect_leaks=0 \
  -artifact_prefix="$crashes/" -print_final_stats=1 "$@" "$corpus"
