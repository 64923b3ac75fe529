#!/usr/bin/env python3
"""A synthetic dataset in the ABAW formats, for `affect fit` (see README "Training heads").

Videos are sequences of frames whose expression follows segments (a class held for 20 to 120 frames, the
classes drawn with ABAW-like imbalance: many Neutral and Other, few Fear and Disgust). Each frame's latent
state is its class centre plus noise that drifts smoothly over time; valence and arousal are a fixed nonlinear
function of the latent state plus noise. The features a head sees are a fixed random projection of the
latent state into `--width` dimensions, passed through tanh, plus feature noise: a task an MLP learns well
but not perfectly (the classes overlap), like frozen backbone features.

Written under OUT (all float32, labels in the ABAW text formats):

    flat/{train,val,test}.safetensors      tensor `features` [N, D], one row per frame of the split's videos
    flat/{train,val,test}.expr.txt         EXPR header line, then one class index per frame (-1: unlabelled)
    flat/{train,val,test}.va.txt           `valence,arousal` header, then one row per frame (-5: unlabelled)
    extract/VIDEO.mp4.safetensors          per video, as `affect extract` writes: `features` [F, D], `face` [F],
                                           `times` [F]
    annotations/EXPR/VIDEO.txt, annotations/VA/VIDEO.txt
    lists/{train,val,test}.txt             video names of each split

About 3 % of frames are unlabelled (-1 / -5) as in ABAW, so readers must skip them.

    /work/main/Tools/.venv/bin/python Tools/make_synthetic_abaw.py OUT [--videos 60] [--frames 600]
        [--width 64] [--seed 0]
"""
import argparse
import json
import os

import numpy as np
from safetensors.numpy import save_file

CLASSES = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"]
# ABAW's EXPR training set is dominated by Neutral and Other; Fear and Disgust are rare.
PRIORS = np.array([0.30, 0.06, 0.04, 0.03, 0.15, 0.10, 0.07, 0.25])
LATENT = 12


def make_world(rng, width):
    """The fixed parts of the task: class centres, the VA map and the feature projection."""
    centres = rng.normal(0, 1.0, (len(CLASSES), LATENT))
    va_map = rng.normal(0, 0.5, (LATENT, 2))
    projection = rng.normal(0, 1 / np.sqrt(LATENT), (LATENT, width))
    return centres, va_map, projection


def make_video(rng, world, frames, width):
    centres, va_map, projection = world
    labels = np.empty(frames, dtype=np.int64)
    t = 0
    while t < frames:
        length = rng.integers(20, 121)
        labels[t:t + length] = rng.choice(len(CLASSES), p=PRIORS)
        t += length
    # Smoothly drifting noise (an AR(1) process) around the class centre.
    noise = np.empty((frames, LATENT))
    noise[0] = rng.normal(0, 1, LATENT)
    for i in range(1, frames):
        noise[i] = 0.9 * noise[i - 1] + np.sqrt(1 - 0.81) * rng.normal(0, 1, LATENT)
    latent = centres[labels] + 0.9 * noise
    va = np.tanh(np.tanh(latent) @ va_map + 0.1 * rng.normal(0, 1, (frames, 2)))
    features = np.tanh(latent @ projection) + 0.3 * rng.normal(0, 1, (frames, width))
    unlabelled = rng.random(frames) < 0.03
    expr = np.where(unlabelled, -1, labels)
    va = np.where(unlabelled[:, None], -5.0, va)
    return features.astype(np.float32), expr, va.astype(np.float32)


def write_expr(path, expr):
    with open(path, "w") as f:
        f.write(",".join(CLASSES) + "\n")
        f.writelines(f"{int(c)}\n" for c in expr)


def write_va(path, va):
    with open(path, "w") as f:
        f.write("valence,arousal\n")
        f.writelines(f"{v:.6g},{a:.6g}\n" for v, a in va)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--videos", type=int, default=60)
    p.add_argument("--frames", type=int, default=600)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    world = make_world(rng, a.width)
    for d in ["flat", "extract", "annotations/EXPR", "annotations/VA", "lists"]:
        os.makedirs(os.path.join(a.out, d), exist_ok=True)
    names = [f"video_{i:03d}" for i in range(a.videos)]
    n_val = n_test = max(1, a.videos // 5)
    splits = {"train": names[:a.videos - n_val - n_test], "val": names[a.videos - n_val - n_test:a.videos - n_test],
              "test": names[a.videos - n_test:]}
    for split, videos in splits.items():
        feats, exprs, vas = [], [], []
        for name in videos:
            frames = int(rng.integers(a.frames // 2, a.frames * 3 // 2))
            x, expr, va = make_video(rng, world, frames, a.width)
            save_file({"features": x, "face": np.ones(frames, np.float32),
                       "times": (np.arange(frames) / 30).astype(np.float32)},
                      os.path.join(a.out, "extract", f"{name}.mp4.safetensors"),
                      metadata={"affect.extract": json.dumps({"video": f"{name}.mp4", "synthetic": True})})
            write_expr(os.path.join(a.out, "annotations/EXPR", f"{name}.txt"), expr)
            write_va(os.path.join(a.out, "annotations/VA", f"{name}.txt"), va)
            feats.append(x); exprs.append(expr); vas.append(va)
        save_file({"features": np.concatenate(feats)}, os.path.join(a.out, "flat", f"{split}.safetensors"))
        write_expr(os.path.join(a.out, "flat", f"{split}.expr.txt"), np.concatenate(exprs))
        write_va(os.path.join(a.out, "flat", f"{split}.va.txt"), np.concatenate(vas))
        with open(os.path.join(a.out, "lists", f"{split}.txt"), "w") as f:
            f.writelines(n + "\n" for n in videos)
        print(f"{split}: {len(videos)} videos, {sum(len(x) for x in feats)} frames")


if __name__ == "__main__":
    main()
