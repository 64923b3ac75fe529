"""Reading and writing Affect weight files (SPEC 3.1) and reference files (SPEC 3.2)."""
import hashlib
import json
import os

import numpy as np
from safetensors.numpy import save_file, load_file


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _np(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        t = t.numpy()
    return np.ascontiguousarray(t)


def save_weights(path, tensors, arch, config, labels=None, preprocess=None, source="", tokenizer=None):
    """Writes an Affect weight file. `tensors`: name -> array/tensor (names as in the source checkpoint)."""
    meta = {
        "affect.format": "1",
        "affect.arch": arch,
        "affect.config": json.dumps(config),
        "affect.source": source,
    }
    if labels is not None:
        meta["affect.labels"] = json.dumps(list(labels))
    if preprocess is not None:
        meta["affect.preprocess"] = json.dumps(preprocess)
    if tokenizer is not None:
        meta["affect.tokenizer"] = tokenizer
    arrays = {}
    for k, v in tensors.items():
        a = _np(v)
        if a.dtype == np.float64 or a.dtype == np.float16:
            a = a.astype(np.float32)
        arrays[k] = a
    tmp = path + ".tmp"
    save_file(arrays, tmp, metadata=meta)
    os.replace(tmp, path)


def save_reference(path, inputs, outputs, framework, version, model):
    """Writes a reference file: `inputs` and `outputs` are name -> array (without the prefixes)."""
    arrays = {}
    for k, v in inputs.items():
        arrays["input." + k] = _np(v)
    for k, v in outputs.items():
        a = _np(v)
        arrays["output." + k] = a.astype(np.float32) if a.dtype.kind == "f" else a
    meta = {"affect.reference": json.dumps({"framework": framework, "version": version, "model": model})}
    tmp = path + ".tmp"
    save_file(arrays, tmp, metadata=meta)
    os.replace(tmp, path)


def load_tensors(path):
    return load_file(path)
