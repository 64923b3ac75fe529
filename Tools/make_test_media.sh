#!/usr/bin/env bash
# Makes the test media the Swift tests use (Tests/Fixtures/media), from the committed public-domain portrait
# scripts/demo/astronaut.jpg and speech synthesised with espeak-ng; needs only ffmpeg and espeak-ng.
# The outputs are committed (encoders differ between versions, and the references in Tests/Fixtures were
# computed from these exact bytes): rerun this only together with the reference generators that read them
# (Tools/make_reference.py mtcnn|video|preprocess|analyze).
set -euo pipefail
cd "$(dirname "$0")/.."
out=Tests/Fixtures/media
face=scripts/demo/astronaut.jpg
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# speech.wav: 16 kHz mono PCM, the transcript in speech.txt.
text="Hello. I have just come back from space, and I am very happy to be home."
printf '%s\n' "$text" > "$out/speech.txt"
espeak-ng -v en-us -s 150 -w "$tmp/speech22k.wav" "$text"
ffmpeg -v error -y -i "$tmp/speech22k.wav" -ac 1 -ar 16000 -c:a pcm_s16le -fflags +bitexact -map_metadata -1 "$out/speech.wav"

# portrait.png: the portrait itself, losslessly (the decoders of PNG agree to the bit; JPEG decoders do not).
ffmpeg -v error -y -i "$face" -pix_fmt rgb24 "$out/portrait.png"

# group.png: four copies of the portrait's head and shoulders at different sizes (one mirrored) on a soft gradient, 768×432.
bg="gradients=s=768x432:c0=0x6a7b8c:c1=0xc8b89a:x0=0:y0=0:x1=768:y1=432:d=1:r=1"
ffmpeg -v error -y -f lavfi -i "$bg" -i "$face" -filter_complex \
  "[1]crop=190:220:75:0,split=4[a][b][c][d];[a]scale=172:200:flags=lanczos[a1];[b]scale=138:160:flags=lanczos,hflip[b1];\
[c]scale=120:140:flags=lanczos[c1];[d]scale=104:120:flags=lanczos,hflip[d1];\
[0][a1]overlay=20:30[x1];[x1][b1]overlay=250:220[x2];[x2][c1]overlay=440:40[x3];[x3][d1]overlay=620:260,format=rgb24" \
  -frames:v 1 "$out/group.png"

# crowd.mp4: 4 s at 25 fps, 768×432, the same four portraits moving along different paths (faces enter,
# cross and stay apart), H.264 + AAC 48 kHz stereo (speech on the left, a quiet 330 Hz tone on the right).
ffmpeg -v error -y -f lavfi -i "gradients=s=768x432:c0=0x6a7b8c:c1=0xc8b89a:x0=0:y0=0:x1=768:y1=432:d=4:r=25" \
  -loop 1 -framerate 25 -t 4 -i "$face" -i "$tmp/speech22k.wav" -f lavfi -t 4 -i "sine=f=330:r=48000" -filter_complex \
  "[1]crop=190:220:75:0,split=4[a][b][c][d];[a]scale=172:200:flags=lanczos[a1];[b]scale=138:160:flags=lanczos,hflip[b1];\
[c]scale=120:140:flags=lanczos[c1];[d]scale=104:120:flags=lanczos,hflip[d1];\
[0][a1]overlay=x='10+30*t':y=30:shortest=1[x1];[x1][b1]overlay=x=250:y='250-20*t'[x2];\
[x2][c1]overlay=x='450+10*t':y=20[x3];[x3][d1]overlay=x='630-15*t':y=290,format=yuv420p[v];\
[2]aresample=48000,apad[s];[3]volume=0.05[tone];[s][tone]join=inputs=2:channel_layout=stereo[aud]" \
  -map "[v]" -map "[aud]" -t 4 -c:v libx264 -preset veryfast -crf 30 -c:a aac -b:a 64k "$out/crowd.mp4"

# talking.mp4: the demo's talking-head clip (scripts/demo.sh), 4 s: zooming onto the face, speech as AAC.
ffmpeg -v error -y -loop 1 -framerate 25 -i "$face" -i "$tmp/speech22k.wav" \
  -vf "zoompan=z='min(1+0.0015*on,1.35)':x='max(0,min(iw-iw/zoom,168-iw/zoom/2))':y='max(0,min(ih-ih/zoom,90-ih/zoom/2))':d=1:s=384x384:fps=25,format=yuv420p" \
  -t 4 -c:v libx264 -preset veryfast -crf 28 -c:a aac -b:a 48k "$out/talking.mp4"
ls -la "$out"
