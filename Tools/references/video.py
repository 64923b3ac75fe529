"""Expectations for the video decoder and MTCNN on Tests/Fixtures/media/crowd.mp4:

    Tools/make_reference.py video Tests/Fixtures/faces

`video_crowd.json`: frame count and timestamps from `ffprobe -count_frames`; 4096 sampled RGB values
of frames 0 and 50 from `ffmpeg -pix_fmt rgb24` (swscale bicubic, as the engine and OpenCV decode video); facenet-pytorch MTCNN
detections (min_face_size 40, keep_all) on every 5th frame of those same RGB frames.
"""
import json
import os
import subprocess

import numpy as np

from references.preprocess import DATA

VIDEO = "crowd.mp4"
FLAGS = "bicubic"   # what OpenCV's VideoCapture and `ffmpeg -pix_fmt rgb24` use, and the engine for video


def build(outdir, batches, args):
    from facenet_pytorch import MTCNN
    path = os.path.join(DATA, VIDEO)
    times = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "frame=best_effort_timestamp_time", "-of", "csv=p=0", path],
                           check=True, capture_output=True, text=True).stdout.split()
    count = int(subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                                "stream=nb_read_frames", "-of", "csv=p=0", path], check=True, capture_output=True,
                               text=True).stdout.strip())
    w, h = [int(v) for v in subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                                            "stream=width,height", "-of", "csv=p=0", path], check=True,
                                           capture_output=True, text=True).stdout.strip().split(",")]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-sws_flags", FLAGS, "-"],
                         check=True, capture_output=True).stdout
    frames = np.frombuffer(raw, dtype=np.uint8).reshape(-1, h, w, 3)
    positions = (np.arange(4096) * 1517) % (w * h * 3)
    samples = {str(i): frames[i].reshape(-1)[positions].tolist() for i in (0, 50)}
    mtcnn = MTCNN(keep_all=True, min_face_size=40, device="cpu")
    detections = []
    for i in range(0, len(frames), 5):
        boxes, probs, points = mtcnn.detect(frames[i], landmarks=True)
        faces = [] if boxes is None else [{"box": [float(v) for v in b], "prob": float(p)} for b, p in zip(boxes, probs)]
        detections.append({"frame": i, "faces": faces})
    out = {"video": VIDEO, "frames": count, "decoded": int(len(frames)), "times": [float(t.strip(",")) for t in times],
           "sample_stride": 1517, "samples": samples, "detections": detections}
    with open(os.path.join(outdir, "video_crowd.json"), "w") as f:
        json.dump(out, f)


MODELS = {"video": build}
