"""Helpers shared by the reference builders."""
import os
import subprocess
import sys

import numpy as np
import torch

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def convert(source, output, *extra):
    subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), source, output, *extra], check=True)


def save_checkpoint(model, path, fmt, example=None):
    """Saves `model` as users have it: a whole pickled module, a state dict, or an ONNX export."""
    if fmt == "pt":
        torch.save(model, path)
    elif fmt == "state_dict":
        torch.save(model.state_dict(), path)
    elif fmt == "onnx":
        torch.onnx.export(model, example, path, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=11, do_constant_folding=True, dynamo=False)
    else:
        raise ValueError(fmt)


def image_batch(n, size, seed, channels=3):
    g = torch.Generator().manual_seed(seed + 1000)
    # Roughly what normalised face crops look like: smooth structure plus noise.
    base = torch.randn(n, channels, 8, 8, generator=g)
    x = torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear", align_corners=False)
    return (x + 0.3 * torch.randn(n, channels, size, size, generator=g)).float().contiguous()


def versions(*mods):
    return " ".join(f"{m.__name__} {m.__version__}" for m in mods)
