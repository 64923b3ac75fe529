"""Converts small heads on top of backbone features into arch `head` weight files (SPEC 3.1).

Sources:
- Keras `.h5` files from `model.save_weights` (tf_keras / Keras 2 layout: root attribute `layer_names`,
  per layer `weight_names` such as `dense_1/kernel:0`, datasets at `dense_1/dense_1/kernel:0`; kernels
  are `[in, out]`). Read with h5py only. A full `model.save` file also carries `model_config`, from which
  the activations are taken.
- PyTorch `.pt`/`.pth`: a state dict of `nn.Sequential(Linear, ReLU, Linear)` (keys `0.weight`, `0.bias`,
  `2.weight`, ...) or a whole pickled `nn.Sequential`, read with the restricted unpickler of
  `affect_tools.unpickle` (the activation modules are then read from the pickled structure).
- scikit-learn `LogisticRegression` pickled with joblib or pickle (`.joblib`, `.pkl`): loaded by an
  unpickler that only admits LogisticRegression and the numpy/joblib array types it needs; `coef_`
  `[out, in]` and `intercept_` are stored as is. Binary problems give output `sklearn_binary`
  (`predict_proba`'s two columns from one decision value), multinomial ones `softmax`, one-vs-rest ones
  `sklearn_ovr`.

Weight files save_weights/state dicts do not record activations: hidden layers default to ReLU and the
output to sigmoid for one output and softmax otherwise. Override from the command line:

    Tools/converters/head.py SOURCE OUT.safetensors [--hidden relu] [--output softmax|sigmoid|linear] [--labels a,b]

(`Tools/convert.py SOURCE OUT.safetensors --arch head` uses the defaults.)
"""
import argparse
import json
import os
import pickle
import sys

import numpy as np

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from affect_tools.io import save_weights, sha256  # noqa: E402

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
TORCH_SUFFIXES = (".pt", ".pth")
SKLEARN_SUFFIXES = (".joblib", ".pkl", ".pickle")


# ---------------------------------------------------------------------------------------------- detection

def detect(source):
    if os.path.isdir(source):
        return None
    try:
        if source.endswith(KERAS_SUFFIXES):
            layers, _ = _keras_layers(source)
            return "head" if layers else None
        if source.endswith(TORCH_SUFFIXES):
            return "head" if _torch_layers(source)[0] else None
        if source.endswith(SKLEARN_SUFFIXES):
            _sklearn_model(source)
            return "head"
    except Exception:
        return None
    return None


# ---------------------------------------------------------------------------------------------- Keras

def _keras_layers(path):
    """[(name, kernel_name, kernel, bias_name, bias)] for the Dense layers in file order, and the
    activations from `model_config` when the file has one ({layer name: activation})."""
    import h5py
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        acts = {}
        cfg = f.attrs.get("model_config")
        if cfg is not None:
            cfg = json.loads(cfg.decode() if isinstance(cfg, bytes) else cfg)
            for layer in cfg.get("config", {}).get("layers", []):
                c = layer.get("config", {})
                if layer.get("class_name") == "Dense":
                    acts[c.get("name")] = c.get("activation", "linear")
        if "layer_names" not in root.attrs:
            raise ValueError(f"{path}: no `layer_names` attribute; not a Keras 2 save_weights file")
        layers = []
        for lname in root.attrs["layer_names"]:
            lname = lname.decode() if isinstance(lname, bytes) else lname
            g = root[lname]
            names = [n.decode() if isinstance(n, bytes) else n for n in g.attrs.get("weight_names", [])]
            if not names:
                continue  # InputLayer, Dropout, ...
            kernel = [n for n in names if n.endswith("kernel:0")]
            bias = [n for n in names if n.endswith("bias:0")]
            if len(kernel) != 1 or len(names) != len(kernel) + len(bias):
                raise ValueError(f"{path}: layer {lname} is not a Dense layer (weights {names})")
            k = np.asarray(g[kernel[0]], dtype=np.float32)
            if k.ndim != 2:
                raise ValueError(f"{path}: layer {lname} has a {k.ndim}-D kernel; only Dense layers make a head")
            b = np.asarray(g[bias[0]], dtype=np.float32) if bias else None
            # Tensor names keep the HDF5 path of the dataset: `<layer>/<weight name>`.
            layers.append((lname, f"{lname}/{kernel[0]}", k, f"{lname}/{bias[0]}" if bias else None, b))
        return layers, acts


def _convert_keras(source, hidden, output):
    layers, acts = _keras_layers(source)
    if not layers:
        raise SystemExit(f"{source}: no Dense layers found")
    tensors, specs = {}, []
    for i, (lname, kname, k, bname, b) in enumerate(layers):
        tensors[kname] = k
        if b is not None:
            tensors[bname] = b
        act = acts.get(lname, hidden if i < len(layers) - 1 else None)
        specs.append({"weight": kname, "bias": bname, "layout": "in_out", "activation": act or "linear"})
    if output is None:
        output = acts.get(layers[-1][0]) or ("sigmoid" if layers[-1][2].shape[1] == 1 else "softmax")
    return tensors, specs, int(layers[0][2].shape[0]), output, "keras"


# ---------------------------------------------------------------------------------------------- PyTorch

_TORCH_ACTS = {"ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softmax": "softmax", "Identity": "linear"}


def _torch_layers(path):
    """[(prefix, weight, bias)] for the Linear layers, and the activation after each one when the
    checkpoint is a whole pickled nn.Sequential (None otherwise)."""
    from affect_tools.unpickle import load_checkpoint, to_state_dict, Stub
    root = load_checkpoint(path)
    sd = to_state_dict(root)
    prefixes = []
    for k in sd:
        if k.endswith(".weight"):
            prefixes.append(k[: -len(".weight")])
        elif not k.endswith(".bias"):
            raise ValueError(f"{path}: tensor {k} is not part of a Linear layer")
    layers = []
    for p in prefixes:
        w = np.asarray(sd[p + ".weight"], dtype=np.float32)
        if w.ndim != 2:
            raise ValueError(f"{path}: {p}.weight is {w.ndim}-D; only Linear layers make a head")
        b = sd.get(p + ".bias")
        layers.append((p, w, None if b is None else np.asarray(b, dtype=np.float32)))
    acts = None
    if isinstance(root, Stub) and isinstance(root.__dict__.get("_modules"), dict):
        # nn.Sequential: module order is execution order; an activation applies to the Linear before it.
        acts, current = {}, None
        for name, m in root._modules.items():
            kind = getattr(m, "_qualname", "").rsplit(".", 1)[-1]
            if kind == "Linear":
                current = name
                acts[name] = "linear"
            elif kind in _TORCH_ACTS and current is not None:
                acts[current] = _TORCH_ACTS[kind]
            elif kind not in ("Dropout",):
                raise ValueError(f"{path}: module {name} ({kind}) is not supported in a head")
    return layers, acts


def _convert_torch(source, hidden, output):
    layers, acts = _torch_layers(source)
    if not layers:
        raise SystemExit(f"{source}: no Linear layers found")
    tensors, specs = {}, []
    for i, (p, w, b) in enumerate(layers):
        tensors[p + ".weight"] = w
        if b is not None:
            tensors[p + ".bias"] = b
        act = acts.get(p) if acts is not None else (hidden if i < len(layers) - 1 else None)
        specs.append({"weight": p + ".weight", "bias": p + ".bias" if b is not None else None,
                      "layout": "out_in", "activation": act or "linear"})
    if output is None:
        # A pickled module says what it computes (even logits); a bare state dict gets the default.
        if acts is not None:
            output = acts[layers[-1][0]]
        else:
            output = "sigmoid" if layers[-1][1].shape[0] == 1 else "softmax"
    return tensors, specs, int(layers[0][1].shape[1]), output, "pytorch"


# ---------------------------------------------------------------------------------------------- sklearn

_SKLEARN_ALLOWED = {
    ("sklearn.linear_model._logistic", "LogisticRegression"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"), ("joblib.numpy_pickle", "NDArrayWrapper"),
    ("builtins", "slice"), ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"),
}


def _sklearn_model(path):
    """Loads a pickled LogisticRegression with an unpickler that admits nothing else (pickles are code)."""
    from joblib import numpy_pickle

    class Restricted(numpy_pickle.NumpyUnpickler):
        def find_class(self, module, name):
            if (module, name) not in _SKLEARN_ALLOWED:
                raise pickle.UnpicklingError(f"{path}: refusing to load {module}.{name} (only LogisticRegression)")
            return super().find_class(module, name)

    with open(path, "rb") as f:
        with numpy_pickle._validate_fileobject_and_memmap(f, path, None) as (fobj, _):
            model = Restricted(path, fobj, False).load()
    if type(model).__name__ != "LogisticRegression":
        raise ValueError(f"{path}: expected a LogisticRegression, got {type(model).__name__}")
    return model


def _convert_sklearn(source, hidden, output):
    m = _sklearn_model(source)
    coef = np.asarray(m.coef_, dtype=np.float32)
    intercept = np.asarray(m.intercept_, dtype=np.float32).reshape(-1)
    classes = [str(c) for c in m.classes_]
    if len(classes) == 2:
        out = "sklearn_binary"
    else:
        # sklearn >= 1.5 always fits multinomial unless wrapped in OneVsRestClassifier; older pickles
        # record `multi_class`.
        mc = getattr(m, "multi_class", "auto")
        solver = getattr(m, "solver", "lbfgs")
        out = "sklearn_ovr" if mc == "ovr" or (mc == "auto" and solver == "liblinear") else "softmax"
    if output is not None and output != out:
        raise SystemExit(f"{source}: a LogisticRegression's output is {out}, not {output}")
    specs = [{"weight": "coef_", "bias": "intercept_", "layout": "out_in", "activation": "linear"}]
    return {"coef_": coef, "intercept_": intercept}, specs, int(coef.shape[1]), out, "sklearn", classes


# ---------------------------------------------------------------------------------------------- entry points

def convert(source, output, arch, args, hidden="relu", out_act=None):
    labels = None
    if source.endswith(KERAS_SUFFIXES):
        tensors, specs, width, out, fw = _convert_keras(source, hidden, out_act)
    elif source.endswith(TORCH_SUFFIXES):
        tensors, specs, width, out, fw = _convert_torch(source, hidden, out_act)
    elif source.endswith(SKLEARN_SUFFIXES):
        tensors, specs, width, out, fw, labels = _convert_sklearn(source, hidden, out_act)
    else:
        raise SystemExit(f"{source}: a head must be a Keras .h5, a PyTorch .pt/.pth or a pickled LogisticRegression")
    if getattr(args, "labels", None):
        labels = args.labels.split(",")
    config = {"input_width": width, "layers": specs, "output": out, "framework": fw}
    save_weights(output, tensors, "head", config, labels=labels,
                 source=f"{os.path.basename(source)} sha256={sha256(source)}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source")
    p.add_argument("output")
    p.add_argument("--hidden", default="relu", choices=["relu", "tanh", "sigmoid", "linear"])
    p.add_argument("--output", dest="out_act", choices=["softmax", "sigmoid", "linear"])
    p.add_argument("--labels", help="comma-separated output names")
    a = p.parse_args(argv)
    convert(a.source, a.output, "head", a, hidden=a.hidden, out_act=a.out_act)
    print(f"wrote {a.output} (head)")


if __name__ == "__main__":
    main()
