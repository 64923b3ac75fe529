#!/usr/bin/env python3
"""Whisper encoder speed: one 30 s window (80 x 3000 log-Mel) through transformers' WhisperEncoder (PyTorch,
float32) and through `affect bench` (the same weights), at 1 and 2 threads.

    Tools/bench_whisper.py DIR [--sizes tiny,base] [--seconds 10]

DIR holds `whisper_SIZE.safetensors` and `whisper_SIZE.hf/` from Tools/make_whisper_reference.py (run without
--no-checkpoints). Prints a Markdown table with the CPU name; medians of repeated runs after a warm-up.
"""
import argparse
import os
import re
import statistics
import subprocess
import time

import torch
from transformers import WhisperForConditionalGeneration

AFFECT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".build", "release", "affect")


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def torch_median_ms(encoder, threads, seconds):
    torch.set_num_threads(threads)
    x = torch.randn(1, 80, 3000)
    with torch.no_grad():
        encoder(x)
        times, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds or len(times) < 3:
            t0 = time.perf_counter()
            encoder(x)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def affect_median_ms(weights, threads, seconds):
    out = subprocess.run([AFFECT, "bench", weights, "--threads", str(threads), "--seconds", str(seconds), "--min-runs", "3"],
                         check=True, capture_output=True, text=True).stdout
    return float(re.findall(r"median_ms=([0-9.]+)", out)[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("--sizes", default="tiny,base")
    p.add_argument("--seconds", type=float, default=10)
    args = p.parse_args()
    print(f"CPU: {cpu_name()}; torch {torch.__version__}\n")
    print("| size | threads | transformers (PyTorch) ms | affect ms |\n|---|---|---|---|")
    for size in args.sizes.split(","):
        model = WhisperForConditionalGeneration.from_pretrained(os.path.join(args.dir, f"whisper_{size}.hf")).eval()
        for threads in (1, 2):
            t = torch_median_ms(model.model.encoder, threads, args.seconds)
            a = affect_median_ms(os.path.join(args.dir, f"whisper_{size}.safetensors"), threads, args.seconds)
            print(f"| {size} | {threads} | {t:.0f} | {a:.0f} |", flush=True)


if __name__ == "__main__":
    main()
