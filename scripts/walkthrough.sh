#!/usr/bin/env bash
# The seed's recipe with `affect` alone (no Python): extract -> fit -> analyze -> evaluate, on talking-head
# clips built like the demo's (the public-domain portrait scripts/demo/astronaut.jpg with espeak-ng speech)
# and a synthetic labelling: a frame is Happiness (4) while the person speaks and Neutral (0) otherwise.
# Six clips: four to train on, one to tune on (validation), one held out for `analyze` and `evaluate`.
# The audio and text models are the tiny committed test models (random weights) so the script runs offline;
# with the real ones use e.g. --audio-model wav2vec2-base-960h --text-model all-MiniLM-L6-v2 (`affect pull`).
# Needs ffmpeg, ffprobe, espeak-ng and awk (scripts/install-deps.sh installs them) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
affect=${AFFECT:-.build/release/affect}
out=.build/walkthrough
rm -rf "$out"
mkdir -p "$out/clips" "$out/heldout" "$out/transcripts" "$out/annotations"

sentences=(
    "Hello. I have just come back from space."
    "It was a long flight, and I am very happy to be home again."
    "The view of the Earth at night is something I will never forget."
    "We worked hard every day, and the crew was wonderful."
    "Tomorrow I will see my family for the first time in months."
    "Thank you all for following our mission."
)
for i in "${!sentences[@]}"; do
    name=clip$i
    folder=$out/clips
    [ "$i" = 5 ] && folder=$out/heldout
    espeak-ng -v en-us -s 150 -w "$out/$name.wav" "${sentences[$i]}"
    printf '%s\n' "${sentences[$i]}" > "$out/transcripts/$name.txt"
    # 5 s at 25 fps (125 frames); the speech starts at 1 s.
    ffmpeg -v error -y -loop 1 -framerate 25 -i scripts/demo/astronaut.jpg -i "$out/$name.wav" \
        -filter_complex "[0:v]zoompan=z='min(1+0.0015*on,1.35)':x='max(0,min(iw-iw/zoom,168-iw/zoom/2))':y='max(0,min(ih-ih/zoom,90-ih/zoom/2))':d=1:s=384x384:fps=25,format=yuv420p[v];[1:a]adelay=1000,apad[a]" \
        -map "[v]" -map "[a]" -t 5 -c:v libx264 -preset veryfast -c:a aac "$folder/$name.mp4"
    speech=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$out/$name.wav")
    # ABAW EXPR annotation: a header line, then one class per frame.
    awk -v d="$speech" 'BEGIN { print "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
                               for (f = 0; f < 125; f++) { t = f / 25; print (t >= 1 && t < 1 + d) ? 4 : 0 } }' \
        > "$out/annotations/$name.txt"
done
printf 'clip0\nclip1\nclip2\nclip3\n' > "$out/train.txt"
printf 'clip4\n' > "$out/val.txt"

models="--audio-model Tests/Fixtures/audio/wav2vec2_tiny.safetensors --text-model Tests/Fixtures/text/tiny_roberta_go.safetensors"
run() { echo "\$ affect ${*}"; $affect "$@"; echo; }
run extract "$out/clips" -o "$out/features" $models --transcript-dir "$out/transcripts"
run fit --task expr --extract-dir "$out/features" --annotations "$out/annotations" --train-list "$out/train.txt" \
    --val-list "$out/val.txt" --modalities face+audio+text --epochs 40 --batch-size 32 -o "$out/expr.safetensors" --log "$out/fit.json"
run analyze "$out/heldout/clip5.mp4" $models --transcript "$out/transcripts/clip5.txt" \
    --expr-head "face+audio+text:$out/expr.safetensors" -o "$out/clip5.csv"
run evaluate "$out/clip5.csv" "$out/annotations/clip5.txt" --task expr
