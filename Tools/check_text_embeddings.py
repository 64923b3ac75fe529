#!/usr/bin/env python3
"""Compares `affect embed-text` with sentence-transformers on a corpus (cosine per text).

    Tools/make_reference.py minilm /work/refs/text      # writes minilm_corpus.jsonl/.npy (sentence-transformers)
    Tools/check_text_embeddings.py Weights/all-MiniLM-L6-v2.safetensors /work/refs/text/minilm_corpus

Runs `.build/release/affect embed-text --model W --file CORPUS.jsonl --jsonl -o OUT` and prints the minimum
cosine similarity and max abs difference against CORPUS.npy; exits 1 when the minimum cosine is below 0.99999.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    weights, corpus = sys.argv[1], sys.argv[2]
    out = os.path.join(tempfile.mkdtemp(), "emb.safetensors")
    subprocess.run([os.path.join(REPO, ".build", "release", "affect"), "embed-text", "--model", weights, "--file",
                    corpus + ".jsonl", "--jsonl", "-o", out], check=True, stdout=subprocess.DEVNULL)
    ours = load_file(out)["embeddings"].astype(np.float64)
    ref = np.load(corpus + ".npy").astype(np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    cos = (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)
    worst = int(cos.argmin())
    print(f"{len(cos)} texts: min cosine {cos.min():.9f} (text {worst}), mean {cos.mean():.9f}, "
          f"max abs diff {np.abs(ours - ref).max():.3e}")
    sys.exit(0 if cos.min() >= 0.99999 else 1)


if __name__ == "__main__":
    main()
