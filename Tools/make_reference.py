#!/usr/bin/env python3
"""Builds reference files (SPEC 3.2) from the real frameworks.

    Tools/make_reference.py MODEL OUTDIR [--batch 1,8] [--format pt|state_dict|onnx] [--seed 0]
    Tools/make_reference.py --list

For MODEL it builds the reference framework's model with trained-looking random weights (or loads real
ones where they exist), saves the checkpoint as users have it (--format), converts it with
Tools/convert.py into OUTDIR/MODEL.safetensors, and writes OUTDIR/MODEL.b<N>.ref.safetensors for each batch
size: the inputs and what the framework computed. Each family's models live in Tools/references/<family>.py
as a MODELS dict of name -> function(outdir, batches, args).
"""
import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FAMILIES = ["ops", "vision", "preprocess", "keras", "mtcnn", "video", "audio", "text", "head", "analyze"]


def registry():
    models = {}
    for fam in FAMILIES:
        try:
            m = importlib.import_module(f"references.{fam}")
        except ModuleNotFoundError as e:
            if e.name == f"references.{fam}":
                continue
            raise
        for name, fn in m.MODELS.items():
            models[name] = fn
    return models


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?")
    p.add_argument("outdir", nargs="?")
    p.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    p.add_argument("--format", default="pt", choices=["pt", "state_dict", "onnx", "h5"],
                   help="checkpoint format to convert from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list", action="store_true")
    args = p.parse_args()
    models = registry()
    if args.list or not args.model:
        print("\n".join(sorted(models)))
        return
    if args.model not in models:
        p.error(f"unknown model {args.model}; --list shows them")
    os.makedirs(args.outdir, exist_ok=True)
    batches = [int(b) for b in args.batch.split(",") if b]
    models[args.model](args.outdir, batches, args)


if __name__ == "__main__":
    main()
