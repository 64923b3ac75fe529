"""Recovers EmotiEffLib / timm tensor names from an ONNX export of an EmotiEffLib facial model.

The exporter (EmotiEffLib's training_and_examples/convert_pt_to_onnx.py: opset 11, constant folding) folds
each BatchNorm into its convolution and renames most initializers (`onnx::Conv_123`), aliasing equal ones
through Identity nodes, so names cannot be trusted. We map by the graph's structure instead; Conv nodes and
weight MatMuls appear in forward order. The family is told by the graph: PRelu activations are MobileFaceNet's
(`mbf_va_mtl`), several weight MatMuls are MobileViT's transformers (`mobilevit_va_mtl`), anything else is read
as an EfficientNet.

EfficientNet: the first conv is `conv_stem`; a block opens with a depthwise conv (depthwise-separable block,
stage 0) or a 1×1 conv (inverted residual); a squeeze-excitation pair is recognised by its input coming from a
global average (ReduceMean / GlobalAveragePool); the last conv before the classifier is `conv_head`; a block that
cannot keep its input (stride 2 or new width) opens a new stage. Folded convolutions get a `.bias` and no
BatchNorm tensors; the engine then skips folding.

MobileFaceNet and MobileViT: their loaders read every convolution with its BatchNorm, so a folded convolution
keeps its folded weight and gets an identity BatchNorm that carries the folded bias (weight 1, bias = the conv's
bias, running mean 0, running variance 1 - eps with eps the configuration's 1e-5: the scale 1/sqrt(var + eps) is
exactly 1 in float32). The graph's strides and paddings are checked against what the loaders assume, so a file
that would compute something else is refused here rather than misread.
"""
import collections

import numpy as np
import onnx
from onnx import numpy_helper

BN_EPS = 1e-5  # the bn_eps MobileFaceNet's and MobileViT's configurations carry (converters/mobile*.py)


class Graph:
    """Nodes, initializers (with Identity aliases and Constant outputs), producers and consumers."""

    def __init__(self, path):
        self.path = path
        g = onnx.load(path).graph
        self.nodes = list(g.node)
        self.inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        # Identity nodes alias initializers (the exporter de-duplicates equal tensors through them).
        for n in self.nodes:
            if n.op_type == "Identity" and n.input[0] in self.inits:
                self.inits[n.output[0]] = self.inits[n.input[0]]
        for n in self.nodes:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.inits[n.output[0]] = numpy_helper.to_array(a.t)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers = collections.defaultdict(list)
        for n in self.nodes:
            for i in n.input:
                self.consumers[i].append(n)

    def error(self, family, why):
        return ValueError(f"{self.path}: not a {family} export ({why})")

    def is_weight_matmul(self, n):
        return n.op_type == "MatMul" and len(n.input) >= 2 and n.input[1] in self.inits

    def convs(self):
        """Every Conv in node order: weight, bias, group, stride, kernel, pads, its input and output."""
        out = []
        for index, n in enumerate(self.nodes):
            if n.op_type != "Conv":
                continue
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            w = self.inits[n.input[1]]
            b = self.inits[n.input[2]] if len(n.input) > 2 and n.input[2] else None
            out.append({"w": w, "b": b, "group": attrs.get("group", 1), "stride": attrs.get("strides", [1, 1])[0],
                        "strides": list(attrs.get("strides", [1, 1])), "pads": list(attrs.get("pads", [0, 0, 0, 0])),
                        "dilations": list(attrs.get("dilations", [1, 1])), "auto_pad": attrs.get("auto_pad", b"NOTSET"),
                        "input": n.input[0], "output": n.output[0], "index": index})
        return out

    def linear(self, n, family):
        """(weight as [out, in], bias or None) of a weight MatMul (+ Add of an initializer) or a Gemm."""
        if n.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                raise self.error(family, "a Gemm with transA, alpha or beta, which a Linear layer does not export")
            w = self.inits.get(n.input[1])
            if w is None or w.ndim != 2:
                raise self.error(family, f"Gemm weight `{n.input[1]}` is not a 2-D initializer")
            b = self.inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            if len(n.input) > 2 and n.input[2] and b is None:
                raise self.error(family, f"Gemm bias `{n.input[2]}` is not an initializer")
            return (w if attrs.get("transB", 0) else np.ascontiguousarray(w.T)), b
        w = self.inits[n.input[1]]
        if w.ndim != 2:
            raise self.error(family, f"MatMul weight `{n.input[1]}` has shape {list(w.shape)}, not 2-D")
        b = None
        for a in self.consumers[n.output[0]]:
            if a.op_type == "Add":
                other = [x for x in a.input if x != n.output[0]]
                if len(other) == 1 and other[0] in self.inits:
                    b = self.inits[other[0]]
        return np.ascontiguousarray(w.T), b


def state_dict(path):
    g = Graph(path)
    if any(n.op_type == "PRelu" for n in g.nodes):
        return mobilefacenet(g)
    if sum(1 for n in g.nodes if g.is_weight_matmul(n)) > 1:
        return mobilevit(g)
    return efficientnet(g)


def _identity_bn(sd, prefix, bias, channels):
    """A BatchNorm that computes `x + bias`: where the exporter folded the real one into the conv."""
    sd[prefix + ".weight"] = np.ones(channels, np.float32)
    sd[prefix + ".bias"] = bias.astype(np.float32) if bias is not None else np.zeros(channels, np.float32)
    sd[prefix + ".running_mean"] = np.zeros(channels, np.float32)
    sd[prefix + ".running_var"] = np.full(channels, 1 - BN_EPS, np.float32)


def _check_conv(g, family, c, what, stride, valid=False):
    """The conv computes what the loader will: square odd kernel, `stride`, symmetric (k-1)/2 padding (or none)."""
    w = c["w"]
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise g.error(family, f"{what} has weight shape {list(w.shape)}, not a square kernel")
    if min(w.shape) <= 0:
        raise g.error(family, f"{what} has an empty weight of shape {list(w.shape)}")
    k = w.shape[2]
    pad = 0 if valid else (k - 1) // 2
    if not valid and k % 2 != 1:
        raise g.error(family, f"{what} has a {k}x{k} kernel, not an odd one")
    if c["strides"] != [stride, stride]:
        raise g.error(family, f"{what} has strides {c['strides']}, expected {[stride, stride]}")
    if c["pads"] != [pad] * 4 or c["dilations"] != [1, 1] or c["auto_pad"] not in (b"NOTSET", "NOTSET"):
        raise g.error(family, f"{what} has pads {c['pads']} / dilations {c['dilations']}, expected pads {[pad] * 4}")
    if c["b"] is not None and c["b"].shape != (w.shape[0],):
        raise g.error(family, f"{what} has a bias of shape {list(c['b'].shape)} for {w.shape[0]} channels")


# ---------------------------------------------------------------------------------------------- MobileFaceNet

def mobilefacenet(g):
    """EmotiEffLib's MobileFaceNet (`emotiefflib/backbones/mobilefacenet.py` + `fc`): a ConvBlock is a conv with
    a PRelu, a LinearBlock a conv without; `layers.0` is the stem, then ConvBlocks (`layers.K`), DepthWise triples
    (1×1 ConvBlock, grouped k×k ConvBlock of stride 2, 1×1 LinearBlock: `layers.K`) and runs of residual triples
    (stride 1, their output added to their input: `layers.K.layers.J`); then `conv_sep` (ConvBlock), the GDC's
    depthwise LinearBlock (`features.layers.0`), the embedding MatMul (`features.layers.2`), its BatchNormalization
    (`features.layers.3`, kept unfolded by the exporter) and the classifier Gemm (`fc`)."""
    fam = "MobileFaceNet"
    convs = g.convs()
    if len(convs) < 3:
        raise g.error(fam, f"{len(convs)} convolutions, fewer than stem, conv_sep and GDC")
    for c in convs:
        c["prelu"] = None
        for n in g.consumers[c["output"]]:
            if n.op_type == "PRelu":
                slope = g.inits.get(n.input[1]) if len(n.input) > 1 else None
                o = c["w"].shape[0]
                if slope is None or slope.size != o or sum(1 for d in slope.shape if d != 1) > 1:
                    raise g.error(fam, f"PRelu slope `{n.input[1] if len(n.input) > 1 else ''}` is not a "
                                       f"per-channel initializer of {o} values")
                c["prelu"] = np.ascontiguousarray(slope.reshape(o)).astype(np.float32)
    sd = collections.OrderedDict()

    def put(prefix, c, what, stride, valid=False, act=True):
        _check_conv(g, fam, c, what, stride, valid)
        if act != (c["prelu"] is not None):
            raise g.error(fam, f"{what} {'has no' if act else 'has a'} PRelu")
        sd[prefix + ".layers.0.weight"] = c["w"]
        _identity_bn(sd, prefix + ".layers.1", c["b"], c["w"].shape[0])
        if act:
            sd[prefix + ".layers.2.weight"] = c["prelu"]

    def triple_at(i):
        """convs[i:i+3] form a DepthWise block: 1×1 ConvBlock, grouped ConvBlock, LinearBlock."""
        if i + 2 >= len(convs) - 2:
            return False
        a, b, c = convs[i], convs[i + 1], convs[i + 2]
        return (a["prelu"] is not None and a["group"] == 1 and a["w"].shape[2:] == (1, 1)
                and b["prelu"] is not None and b["group"] > 1 and c["prelu"] is None)

    def residual(i):
        """The triple at i adds its input to its output."""
        return any(n.op_type == "Add" and sorted(n.input) == sorted([convs[i]["input"], convs[i + 2]["output"]])
                   for n in g.consumers[convs[i + 2]["output"]])

    stem = convs[0]
    if stem["w"].ndim != 4 or stem["w"].shape[1] != 3:
        raise g.error(fam, "first Conv does not take 3 channels")
    put("layers.0", stem, "the stem Conv", 2)
    i, k, body_end = 1, 1, len(convs) - 2
    while i < body_end:
        if triple_at(i) and residual(i):
            j = 0
            while i < body_end and triple_at(i) and residual(i):
                for m, s in enumerate((1, 1, 1)):
                    put(f"layers.{k}.layers.{j}.layers.{m}", convs[i + m], f"Conv {i + m} (residual block)", s,
                        act=m < 2)
                i, j = i + 3, j + 1
        elif triple_at(i):
            for m, s in enumerate((1, 2, 1)):
                put(f"layers.{k}.layers.{m}", convs[i + m], f"Conv {i + m} (DepthWise block)", s, act=m < 2)
            i += 3
        else:
            put(f"layers.{k}", convs[i], f"Conv {i} (ConvBlock)", 1)
            i += 1
        k += 1
    put("conv_sep", convs[-2], "the conv_sep Conv", 1)
    gdc = convs[-1]
    put("features.layers.0", gdc, "the GDC Conv", 1, valid=True, act=False)

    after = g.nodes[gdc["index"] + 1:]
    linears = [n for n in after if g.is_weight_matmul(n) or n.op_type == "Gemm"]
    if not linears:
        raise g.error(fam, "no embedding MatMul after the GDC")
    w, b = g.linear(linears[0], fam)
    if b is not None:
        raise g.error(fam, "the embedding layer has a bias, which GDC's Linear has not")
    sd["features.layers.2.weight"] = w
    bns = [n for n in after if n.op_type == "BatchNormalization"]
    if len(bns) != 1 or len(bns[0].input) < 5 or not all(x in g.inits for x in bns[0].input[1:5]):
        raise g.error(fam, "no BatchNormalization with initializers after the embedding MatMul")
    bn = bns[0]
    eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
    if abs(eps - BN_EPS) > 1e-9:
        raise g.error(fam, f"the embedding BatchNormalization has epsilon {eps}, not {BN_EPS}")
    for suffix, name in zip(("weight", "bias", "running_mean", "running_var"), bn.input[1:5]):
        sd[f"features.layers.3.{suffix}"] = g.inits[name]
    if len(linears) > 2:
        raise g.error(fam, f"{len(linears)} linear layers after the GDC, expected the embedding and fc")
    if len(linears) == 2:
        w, b = g.linear(linears[1], fam)
        sd["fc.weight"] = w
        if b is not None:
            sd["fc.bias"] = b
    return sd


# ---------------------------------------------------------------------------------------------- MobileViT

STAGE_STRIDES = [1, 2, 2, 2, 2]  # converters/mobilevit.py's stage_strides: the loader strides block 0 of stage s


def _layer_norms(g, lo, hi):
    """(weight, bias) of each LayerNorm among nodes lo..hi: opset 11 spells it ReduceMean, Sub, Pow, ReduceMean,
    Add, Sqrt, Div, then Mul by the weight and Add of the bias."""
    out = []
    for n in g.nodes[lo:hi]:
        if n.op_type != "Mul" or len(n.input) != 2:
            continue
        ws = [x for x in n.input if x in g.inits]
        xs = [x for x in n.input if x not in g.inits]
        if len(ws) != 1 or len(xs) != 1 or g.producer.get(xs[0]) is None or g.producer[xs[0]].op_type != "Div":
            continue
        bias = None
        for a in g.consumers[n.output[0]]:
            other = [x for x in a.input if x != n.output[0]]
            if a.op_type == "Add" and len(other) == 1 and other[0] in g.inits:
                bias = g.inits[other[0]]
        if bias is None:
            raise g.error("MobileViT", f"the LayerNorm with weight `{ws[0]}` has no bias Add")
        out.append((g.inits[ws[0]], bias))
    return out


def mobilevit(g):
    """timm's MobileViT (v1): `stem`, then per stage bottlenecks (1×1, depthwise k×k, 1×1 convs: `conv1_1x1`,
    `conv2_kxk`, `conv3_1x1`) and MobileViT blocks (`conv_kxk`, the bias-free `conv_1x1`, transformer layers of
    MatMul (+ Add) linears `attn.qkv`, `attn.proj`, `mlp.fc1`, `mlp.fc2` with LayerNorms `norm1` / `norm2`, a final
    `norm`, then `conv_proj` and `conv_fusion`), `final_conv` and the classifier Gemm (`head.fc`). A stage opens
    with the first block and at every bottleneck of stride 2."""
    fam = "MobileViT"
    convs = g.convs()
    if len(convs) < 5:
        raise g.error(fam, f"{len(convs)} convolutions")
    sd = collections.OrderedDict()

    def put(prefix, c, what, stride):
        _check_conv(g, fam, c, what, stride)
        sd[prefix + ".conv.weight"] = c["w"]
        _identity_bn(sd, prefix + ".bn", c["b"], c["w"].shape[0])

    def linear(prefix, n, cin, cout, what):
        w, b = g.linear(n, fam)
        if w.shape != (cout if cout else w.shape[0], cin):
            raise g.error(fam, f"{what} has weight shape {list(w.shape[::-1])} (as stored), expected in = {cin}"
                               + (f", out = {cout}" if cout else ""))
        sd[prefix + ".weight"] = w
        if b is not None:
            if b.shape != (w.shape[0],):
                raise g.error(fam, f"{what} has a bias of shape {list(b.shape)}")
            sd[prefix + ".bias"] = b
        return w.shape[0]

    def norm(prefix, wb, dim, what):
        w, b = wb
        if w.shape != (dim,) or b.shape != (dim,):
            raise g.error(fam, f"{what} has weight / bias shapes {list(w.shape)} / {list(b.shape)}, expected [{dim}]")
        sd[prefix + ".weight"], sd[prefix + ".bias"] = w, b

    stem = convs[0]
    if stem["w"].ndim != 4 or stem["w"].shape[1] != 3:
        raise g.error(fam, "first Conv does not take 3 channels")
    put("stem", stem, "the stem Conv", 2)
    i, s, b, last = 1, -1, 0, len(convs) - 1
    while i < last:
        c = convs[i]
        nxt = convs[i + 1] if i + 1 < last else None
        if nxt is not None and c["group"] == 1 and nxt["group"] > 1 and i + 2 < last:   # bottleneck
            stride = nxt["strides"][0]
            if s < 0 or stride != 1:
                s, b = s + 1, 0
            expected = STAGE_STRIDES[s] if b == 0 and s < len(STAGE_STRIDES) else 1
            p = f"stages.{s}.{b}"
            put(f"{p}.conv1_1x1", c, f"Conv {i} (bottleneck expansion)", 1)
            put(f"{p}.conv2_kxk", nxt, f"Conv {i + 1} (bottleneck depthwise, block {b} of stage {s})", expected)
            put(f"{p}.conv3_1x1", convs[i + 2], f"Conv {i + 2} (bottleneck projection)", 1)
            i += 3
        elif nxt is not None and c["group"] == 1 and nxt["b"] is None and i + 3 < last:   # MobileViT block
            if s < 0:
                raise g.error(fam, "a transformer block before any bottleneck")
            p = f"stages.{s}.{b}"
            put(f"{p}.conv_kxk", c, f"Conv {i} (MobileViT local conv)", 1)
            w1 = nxt["w"]
            _check_conv(g, fam, nxt, f"Conv {i + 1} (MobileViT conv_1x1)", 1)
            if w1.shape[2:] != (1, 1):
                raise g.error(fam, f"Conv {i + 1} (MobileViT conv_1x1) is not a 1x1 convolution")
            if w1.shape[1] != c["w"].shape[0]:
                raise g.error(fam, f"Conv {i + 1} (MobileViT conv_1x1) takes {w1.shape[1]} channels, not {c['w'].shape[0]}")
            sd[f"{p}.conv_1x1.weight"] = w1
            dim = w1.shape[0]
            lo, hi = nxt["index"] + 1, convs[i + 2]["index"]
            mms = [n for n in g.nodes[lo:hi] if g.is_weight_matmul(n)]
            lns = _layer_norms(g, lo, hi)
            if not mms or len(mms) % 4 or len(lns) != len(mms) // 2 + 1:
                raise g.error(fam, f"the transformer after Conv {i + 1} has {len(mms)} weight MatMuls and {len(lns)} "
                                   "LayerNorms, expected 4 and 2 per layer plus a final LayerNorm")
            for layer in range(len(mms) // 4):
                q = f"{p}.transformer.{layer}"
                qkv, proj, fc1, fc2 = mms[4 * layer: 4 * layer + 4]
                norm(f"{q}.norm1", lns[2 * layer], dim, f"LayerNorm {2 * layer} of the transformer after Conv {i + 1}")
                linear(f"{q}.attn.qkv", qkv, dim, 3 * dim, f"the qkv MatMul of layer {layer} after Conv {i + 1}")
                linear(f"{q}.attn.proj", proj, dim, dim, f"the attention projection of layer {layer} after Conv {i + 1}")
                norm(f"{q}.norm2", lns[2 * layer + 1], dim, f"LayerNorm {2 * layer + 1} of the transformer after Conv {i + 1}")
                hidden = linear(f"{q}.mlp.fc1", fc1, dim, None, f"the fc1 MatMul of layer {layer} after Conv {i + 1}")
                linear(f"{q}.mlp.fc2", fc2, hidden, dim, f"the fc2 MatMul of layer {layer} after Conv {i + 1}")
            norm(f"{p}.norm", lns[-1], dim, f"the final LayerNorm of the transformer after Conv {i + 1}")
            put(f"{p}.conv_proj", convs[i + 2], f"Conv {i + 2} (MobileViT projection)", 1)
            put(f"{p}.conv_fusion", convs[i + 3], f"Conv {i + 3} (MobileViT fusion)", 1)
            i += 4
        else:
            raise g.error(fam, f"Conv {i} opens neither a bottleneck nor a MobileViT block")
        b += 1
    put("final_conv", convs[-1], "the final Conv", 1)
    heads = [n for n in g.nodes[convs[-1]["index"] + 1:] if g.is_weight_matmul(n) or n.op_type == "Gemm"]
    if len(heads) > 1:
        raise g.error(fam, f"{len(heads)} linear layers after the final Conv, expected the classifier")
    if heads:
        linear("head.fc", heads[0], convs[-1]["w"].shape[0], None, "the classifier")
    return sd


# ---------------------------------------------------------------------------------------------- EfficientNet

def efficientnet(g):
    path, inits = g.path, g.inits

    def from_global_pool(name, depth=0):
        n = g.producer.get(name)
        if n is None or depth > 3:
            return False
        if n.op_type in ("ReduceMean", "GlobalAveragePool"):
            return True
        return any(from_global_pool(i, depth + 1) for i in n.input if i in g.producer)

    convs = g.convs()
    for c in convs:
        c["se"] = from_global_pool(c["input"])
    if not convs or convs[0]["w"].shape[1] != 3:
        raise ValueError(f"{path}: not an EfficientNet export (first Conv does not take 3 channels)")

    sd = collections.OrderedDict()

    def put(name, c):
        sd[name + ".weight"] = c["w"]
        if c["b"] is not None:
            sd[name + ".bias"] = c["b"]

    put("conv_stem", convs[0])
    i, stage, idx, channels = 1, -1, 0, convs[0]["w"].shape[0]
    body = convs[1:-1]
    while i - 1 < len(body):
        c = convs[i]
        block = {}
        if c["group"] > 1:                      # depthwise-separable
            block["conv_dw"] = c; i += 1
            if convs[i]["se"]:
                block["se.conv_reduce"], block["se.conv_expand"] = convs[i], convs[i + 1]; i += 2
            block["conv_pw"] = convs[i]; i += 1
            out, stride = block["conv_pw"]["w"].shape[0], block["conv_dw"]["stride"]
        else:                                   # inverted residual
            block["conv_pw"] = c
            block["conv_dw"] = convs[i + 1]; i += 2
            if convs[i]["se"]:
                block["se.conv_reduce"], block["se.conv_expand"] = convs[i], convs[i + 1]; i += 2
            block["conv_pwl"] = convs[i]; i += 1
            out, stride = block["conv_pwl"]["w"].shape[0], block["conv_dw"]["stride"]
        if stride != 1 or out != channels or stage < 0:
            stage, idx = stage + 1, 0
        for k, v in block.items():
            put(f"blocks.{stage}.{idx}.{k}", v)
        idx += 1
        channels = out
    put("conv_head", convs[-1])

    for n in g.nodes:
        if n.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            w = inits[n.input[1]]
            sd["classifier.weight"] = w if attrs.get("transB", 0) else w.T
            if len(n.input) > 2:
                sd["classifier.bias"] = inits[n.input[2]]
        elif n.op_type == "MatMul" and n.input[1] in inits and "classifier.weight" not in sd:
            sd["classifier.weight"] = np.ascontiguousarray(inits[n.input[1]].T)
            adds = [m for m in g.nodes if m.op_type == "Add" and n.output[0] in m.input]
            for a in adds:
                other = [x for x in a.input if x != n.output[0]][0]
                if other in inits:
                    sd["classifier.bias"] = inits[other]
    return sd
