"""facenet-pytorch's MTCNN: the folder holding `pnet.pt`, `rnet.pt`, `onet.pt` (state dicts, read with the
restricted unpickler) → one weight file with tensors `pnet.*`, `rnet.*`, `onet.*` named as in the state dicts."""
import os

from affect_tools import unpickle
from affect_tools.io import save_weights, sha256

NETS = ("pnet", "rnet", "onet")


def detect(source):
    if os.path.isdir(source) and all(os.path.exists(os.path.join(source, f"{n}.pt")) for n in NETS):
        return "mtcnn"
    return None


def convert(source, output, arch, args):
    tensors, sources = {}, []
    for n in NETS:
        path = os.path.join(source, f"{n}.pt")
        for k, v in unpickle.state_dict(path).items():
            tensors[f"{n}.{k}"] = v
        sources.append(f"{n}.pt sha256={sha256(path)}")
    config = {"model": "facenet-pytorch MTCNN", "thresholds": [0.6, 0.7, 0.7], "factor": 0.709, "min_face_size": 20}
    pre = {"color": "RGB", "scale": "(x - 127.5) * 0.0078125", "resize": "area"}
    save_weights(output, tensors, "mtcnn", config, preprocess=pre, source="facenet-pytorch 2.6.0: " + ", ".join(sources))
