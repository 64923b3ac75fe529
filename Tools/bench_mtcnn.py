#!/usr/bin/env python3
"""MTCNN face detection: Affect against facenet-pytorch on the same frame, in one run, and whole-video speed.

    Tools/bench_mtcnn.py IMAGE [--video VIDEO] [--threads 2] [--seconds 5]

facenet-pytorch 2.6 `MTCNN(keep_all=True, min_face_size=40).detect` and `affect faces IMAGE --time-repeats N`
on the same RGB frame (FFmpeg's decoding for both, as Tools/references/mtcnn.py makes the test fixtures);
ours is timed before and after the peer, both as medians after warm-up. With --video, the whole video is
decoded and detected frame by frame: by `affect faces VIDEO` (wall time of the process, weights loading
included) and by facenet-pytorch with OpenCV decoding. Absolute times drift on shared machines: compare the
ratios of one run, and say what else was running.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from affect_tools.timing import median_time  # noqa: E402
from references.mtcnn import ffmpeg_rgb  # noqa: E402

AFFECT = os.path.join(os.path.dirname(HERE), ".build", "release", "affect")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--video", help="also decode + detect this whole video")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5)
    args = p.parse_args()
    if not os.path.exists(AFFECT):
        sys.exit(f"{AFFECT} not found: run `swift build -c release` first")
    from facenet_pytorch import MTCNN
    torch.set_num_threads(args.threads)
    img = ffmpeg_rgb(args.image)
    repeats = max(5, int(args.seconds / 0.2))

    def ours():
        r = subprocess.run([AFFECT, "faces", args.image, "--threads", str(args.threads), "--time-repeats", str(repeats),
                            "--format", "csv"], check=True, capture_output=True, text=True)
        line = [x for x in r.stderr.splitlines() if x.startswith("detect: median")][0]
        return float(line.split()[2]), len(r.stdout.strip().splitlines()) - 1

    mtcnn = MTCNN(keep_all=True, min_face_size=40, device="cpu")
    load = "%.1f %.1f %.1f" % os.getloadavg()
    ours1, n_ours = ours()
    with torch.no_grad():
        peer = median_time(lambda: mtcnn.detect(img), args.seconds)
    ours2, _ = ours()
    boxes, _ = mtcnn.detect(img)
    n_peer = 0 if boxes is None else len(boxes)
    print(f"MTCNN.detect on {os.path.basename(args.image)} ({img.shape[1]}x{img.shape[0]}), threads={args.threads}, "
          f"min_face_size=40, load average {load}: faces ours {n_ours} / facenet-pytorch {n_peer}")
    print("| ours ms (before, after) | facenet-pytorch ms | speed-up (peer / ours) |")
    print(f"| {ours1:8.1f}, {ours2:8.1f}    | {peer:18.1f} | {peer / min(ours1, ours2):6.2f}x "
          f"(worst {peer / max(ours1, ours2):.2f}x) |")
    if not args.video:
        return
    import cv2
    t0 = time.perf_counter()
    r = subprocess.run([AFFECT, "faces", args.video, "--threads", str(args.threads), "--format", "csv"],
                       check=True, capture_output=True, text=True)
    ours_s = time.perf_counter() - t0
    cap = cv2.VideoCapture(args.video)
    n = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            mtcnn.detect(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            n += 1
    peer_s = time.perf_counter() - t0
    rows = len(r.stdout.strip().splitlines()) - 1
    print(f"whole video {os.path.basename(args.video)}: {n} frames ({rows} faces found by ours); ours {ours_s:.2f} s = "
          f"{n / ours_s:.1f} frames/s; facenet-pytorch + OpenCV decoding {peer_s:.2f} s = {n / peer_s:.1f} frames/s; "
          f"speed-up {peer_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
