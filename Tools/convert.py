#!/usr/bin/env python3
"""Converts a checkpoint into an Affect weight file (SPEC 3.1).

    Tools/convert.py SOURCE OUTPUT.safetensors [--arch A]
    Tools/convert.py --emotiefflib enet_b0_8_best_afew OUTPUT.safetensors

SOURCE may be an EmotiEffLib / timm `.pt` (whole pickled module or state dict, read with a restricted
unpickler that builds no arbitrary objects), an `.onnx` export, a Hugging Face model folder, a Keras `.h5`,
or facenet-pytorch's folder of `pnet.pt`/`rnet.pt`/`onet.pt`. Each family's converter lives in
Tools/converters/<family>.py and exposes `detect(source) -> arch | None` and `convert(source, output, args)`.
"""
import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from converters import Family  # noqa: E402

# Family modules, asked in order which of them recognises the source.
FAMILIES = ["vision", "keras", "mtcnn", "hf_audio", "text", "head"]

ARCH_FAMILY = {
    "efficientnet": "vision", "mobilevit": "vision", "mobilefacenet": "vision",
    "mini_xception": "keras", "engagement": "keras", "mtcnn": "mtcnn", "wav2vec2": "hf_audio", "hubert": "hf_audio",
    "roberta": "text", "bert": "text", "head": "head",
}


def _family(name) -> "Family | None":
    try:
        module = importlib.import_module(f"converters.{name}")
    except ModuleNotFoundError as e:
        if e.name == f"converters.{name}":
            return None
        raise
    if not isinstance(module, Family):
        raise TypeError(f"converters.{name} lacks detect(source) or convert(source, output, arch, args)")
    return module


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", nargs="?", help="checkpoint file or folder")
    p.add_argument("output", help="output .safetensors")
    p.add_argument("--arch", choices=sorted(ARCH_FAMILY), help="architecture (detected when omitted)")
    p.add_argument("--emotiefflib", metavar="MODEL", help="convert ~/.emotiefflib/MODEL.pt (or .onnx)")
    p.add_argument("--labels", help="comma-separated class names (overrides the detected ones)")
    p.add_argument("--pad-type", choices=["same", "symmetric"], help="EfficientNet padding (default: same, as tf_ models)")
    p.add_argument("--tokenizer", help="tokenizer.json to embed (text models)")
    args = p.parse_args(argv)

    if args.emotiefflib:
        cache = os.path.expanduser("~/.emotiefflib")
        for ext in (".pt", ".onnx"):
            cand = os.path.join(cache, args.emotiefflib + ext)
            if os.path.exists(cand):
                args.source = cand
                break
        else:
            p.error(f"{cache}/{args.emotiefflib}.pt (or .onnx) not found; run EmotiEffLib once to download it")
    if not args.source:
        p.error("give SOURCE or --emotiefflib MODEL")
    if not os.path.exists(args.source):
        p.error(f"{args.source}: no such file or folder")

    if args.arch:
        fam = _family(ARCH_FAMILY[args.arch])
        if fam is None:
            p.error(f"no converter for {args.arch} yet")
        arch = args.arch
    else:
        arch, fam = None, None
        for name in FAMILIES:
            m = _family(name)
            if m is None:
                continue
            a = m.detect(args.source)
            if a:
                arch, fam = a, m
                break
        if fam is None:
            p.error(f"{args.source}: cannot tell which architecture this is; pass --arch")
    fam.convert(args.source, args.output, arch, args)
    print(f"wrote {args.output} ({arch})")


if __name__ == "__main__":
    main()
