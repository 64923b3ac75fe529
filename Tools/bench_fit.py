#!/usr/bin/env python3
"""Speed and memory of `affect fit` against PyTorch on the issue's benchmark: an EXPR head (Dense 128 ReLU →
Dense 8, balanced class weights, Adam) on 300,000 frames of face + audio features (1280 + 768 = 2048 wide)
for 10 epochs, both at the same thread count and batch size, each followed by its validation pass per epoch
(20,000 rows). The machine's load average is printed before each run, and CPU time (user + system) beside
wall time: on a shared machine wall time depends on what else runs. Early stopping is off (patience above the epochs) so both run every epoch.

Features are synthetic (class-dependent means plus noise, so the loss falls); written once to WORK and
reused. Each trainer runs as its own process; wall time is measured around it and peak RSS comes from
wait4(). PyTorch loads the features into memory (safetensors → tensor); affect maps the file.

    /work/main/Tools/.venv/bin/python Tools/bench_fit.py --affect .build/release/affect --work /tmp/fitbench
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CLASSES = 8


def write_safetensors(path, rows, width, seed, chunk=20_000):
    """Streams a [rows, width] float32 `features` tensor to `path` (never the whole matrix in memory) and
    returns the labels."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).normal(0, 0.3, (CLASSES, width)).astype(np.float32)
    header = json.dumps({"features": {"dtype": "F32", "shape": [rows, width], "data_offsets": [0, rows * width * 4]}})
    header += " " * ((8 - (8 + len(header)) % 8) % 8)
    labels = rng.choice(CLASSES, size=rows, p=[0.3, 0.06, 0.04, 0.03, 0.15, 0.1, 0.07, 0.25])
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(len(header).to_bytes(8, "little"))
        f.write(header.encode())
        for s in range(0, rows, chunk):
            e = min(rows, s + chunk)
            x = centres[labels[s:e]] + rng.normal(0, 1, (e - s, width)).astype(np.float32)
            f.write(x.astype(np.float32).tobytes())
    os.replace(tmp, path)
    return labels


def write_labels(path, labels):
    with open(path, "w") as f:
        f.write("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n")
        f.writelines(f"{c}\n" for c in labels)


def run(cmd, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, out


def torch_worker(a):
    """The PyTorch side: the same model, loss, optimiser, batch size and epochs."""
    import torch
    from safetensors.numpy import load_file
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.from_numpy(load_file(os.path.join(a.work, "train.safetensors"))["features"])
    xv = torch.from_numpy(load_file(os.path.join(a.work, "val.safetensors"))["features"])
    y = torch.from_numpy(np.loadtxt(os.path.join(a.work, "train.txt"), skiprows=1, dtype=np.int64))
    counts = torch.bincount(y, minlength=CLASSES).double()
    weights = (len(y) / (CLASSES * counts)).float()
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(), torch.nn.Linear(128, CLASSES))
    opt = torch.optim.Adam(model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    start = time.perf_counter()
    for epoch in range(a.epochs):
        perm = torch.randperm(len(x))
        total = 0.0
        for s in range(0, len(x), a.batch_size):
            idx = perm[s:s + a.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        with torch.no_grad():
            for s in range(0, len(xv), 1024):
                torch.softmax(model(xv[s:s + 1024]), 1)
        print(f"epoch {epoch + 1} loss {total / len(x):.5f}", flush=True)
    print(f"training seconds {time.perf_counter() - start:.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--affect", default=".build/release/affect")
    p.add_argument("--work", default="/tmp/fitbench")
    p.add_argument("--rows", type=int, default=300_000)
    p.add_argument("--val-rows", type=int, default=20_000)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", choices=["affect", "torch"])
    p.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.torch_worker:
        return torch_worker(a)
    os.makedirs(a.work, exist_ok=True)
    for split, rows, seed in (("train", a.rows, 1), ("val", a.val_rows, 2)):
        path = os.path.join(a.work, f"{split}.safetensors")
        if not os.path.exists(path) or os.path.getsize(path) < rows * a.width * 4:
            print(f"writing {path} ({rows} x {a.width})", flush=True)
            write_labels(os.path.join(a.work, f"{split}.txt"), write_safetensors(path, rows, a.width, seed))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    print(f"CPU: {cpu}; {a.rows} x {a.width} features, {a.epochs} epochs, batch {a.batch_size}, {a.threads} threads")
    if a.only != "torch":
        head, log = os.path.join(a.work, "head.safetensors"), os.path.join(a.work, "log.json")
        cmd = [a.affect, "fit", "--task", "expr", "--features", os.path.join(a.work, "train.safetensors"),
               "--labels", os.path.join(a.work, "train.txt"), "--val-features", os.path.join(a.work, "val.safetensors"),
               "--val-labels", os.path.join(a.work, "val.txt"), "-o", head, "--log", log, "--epochs", str(a.epochs),
               "--batch-size", str(a.batch_size), "--patience", str(a.epochs + 1), "--threads", str(a.threads)]
        print(f"load average before affect fit: {os.getloadavg()[0]:.1f}", flush=True)
        seconds, rss, cpu, out = run(cmd, a.threads)
        train = json.load(open(log))["seconds"]
        print(f"affect fit: {seconds:.1f} s wall ({train:.1f} s training), {cpu:.1f} s CPU, peak RSS {rss:.0f} MiB", flush=True)
        print("  " + out.strip().splitlines()[-2] if len(out.strip().splitlines()) > 1 else out)
    if a.only != "affect":
        cmd = [sys.executable, __file__, "--torch-worker", "--work", a.work, "--epochs", str(a.epochs),
               "--batch-size", str(a.batch_size), "--threads", str(a.threads)]
        print(f"load average before PyTorch: {os.getloadavg()[0]:.1f}", flush=True)
        seconds, rss, cpu, out = run(cmd, a.threads)
        lines = out.strip().splitlines()
        print(f"PyTorch: {seconds:.1f} s wall ({lines[-1].split()[-1]} s training), {cpu:.1f} s CPU, peak RSS {rss:.0f} MiB", flush=True)
        print("  " + lines[-2])


if __name__ == "__main__":
    main()
