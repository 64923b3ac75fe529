#!/usr/bin/env bash
# The main job, end to end, on input this script makes itself: a talking-head clip built with ffmpeg from a
# public-domain portrait (scripts/demo/astronaut.jpg, see the README there) and speech synthesised with
# espeak-ng, with its transcript. `affect analyze` runs the committed MTCNN and mini-Xception weights on it
# and prints a summary; CSV, JSON and an SVG plot land in .build/demo/. Finally the committed facial
# references are re-verified (each port against its reference framework).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "building affect (release; the first build takes several minutes)..."
swift build -c release 2>&1 | tail -1
affect=.build/release/affect
out=.build/demo
mkdir -p "$out"

# Input: 25 fps video zooming slowly onto the face, with synthetic speech as its sound track.
text="Hello. I have just come back from space. It was a long flight, and I am very happy to be home again."
printf '%s\n' "$text" > "$out/speech.txt"
espeak-ng -v en-us -s 150 -w "$out/speech.wav" "$text"
ffmpeg -v error -y -loop 1 -framerate 25 -i scripts/demo/astronaut.jpg -i "$out/speech.wav" \
    -vf "zoompan=z='min(1+0.0015*on,1.35)':x='max(0,min(iw-iw/zoom,168-iw/zoom/2))':y='max(0,min(ih-ih/zoom,90-ih/zoom/2))':d=1:s=384x384:fps=25,format=yuv420p" \
    -c:v libx264 -preset veryfast -c:a aac -shortest "$out/astronaut-speaking.mp4"

echo
echo "\$ affect analyze $out/astronaut-speaking.mp4 --transcript $out/speech.txt --delta 5 -o $out/analysis.csv -o $out/analysis.json --plot $out/analysis.svg --render $out/annotated.mp4"
$affect analyze "$out/astronaut-speaking.mp4" --transcript "$out/speech.txt" --delta 5 \
    -o "$out/analysis.csv" -o "$out/analysis.json" --plot "$out/analysis.svg" --render "$out/annotated.mp4"
echo
echo "first rows of $out/analysis.csv:"
head -4 "$out/analysis.csv" | cut -c1-150

# The ports behind it, proven against their frameworks on committed references.
echo
echo "verifying the committed references (max error relative to the reference framework's output):"
fx=Tests/Fixtures/models
verify() {
    printf '  %-28s ' "$(basename "$2" .ref.safetensors)"
    $affect verify "$1" "$2" | awk '$NF == "ok" || $NF == "FAIL" { if ($4 + 0 > m) m = $4 + 0; n[$NF]++ }
                                     END { printf "max relative error %.1e: %d outputs ok, %d failed\n", m, n["ok"], n["FAIL"] }'
}
for b in b1 b8; do verify Weights/mini_xception.safetensors $fx/mini_xception.$b.ref.safetensors; done
for m in efficientnet_tiny mobilefacenet_tiny mobilevit_tiny; do
    for b in b1 b3; do verify $fx/$m.safetensors $fx/$m.$b.ref.safetensors; done
done
