"""Recovers timm tensor names from an ONNX export of an EmotiEffLib EfficientNet.

The exporter folds each BatchNorm into its convolution and renames most initializers (`onnx::Conv_123`),
so names cannot be trusted. We map by the graph's structure instead: Conv nodes appear in forward order;
the first is `conv_stem`; a block opens with a depthwise conv (depthwise-separable block, stage 0) or a 1×1
conv (inverted residual); a squeeze-excitation pair is recognised by its input coming from a global
average (ReduceMean / GlobalAveragePool); the last conv before the classifier is `conv_head`; a block that
cannot keep its input (stride 2 or new width) opens a new stage. Folded convolutions get a `.bias` and no
BatchNorm tensors; the engine then skips folding.
"""
import collections

import numpy as np
import onnx
from onnx import numpy_helper


def state_dict(path):
    model = onnx.load(path)
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    # Identity nodes alias initializers (the exporter de-duplicates equal tensors through them).
    for n in g.node:
        if n.op_type == "Identity" and n.input[0] in inits:
            inits[n.output[0]] = inits[n.input[0]]
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    inits[n.output[0]] = numpy_helper.to_array(a.t)
    producer = {o: n for n in g.node for o in n.output}

    def from_global_pool(name, depth=0):
        n = producer.get(name)
        if n is None or depth > 3:
            return False
        if n.op_type in ("ReduceMean", "GlobalAveragePool"):
            return True
        return any(from_global_pool(i, depth + 1) for i in n.input if i in producer)

    convs = []
    for n in g.node:
        if n.op_type == "Conv":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            w = inits[n.input[1]]
            b = inits[n.input[2]] if len(n.input) > 2 and n.input[2] else None
            convs.append({"w": w, "b": b, "group": attrs.get("group", 1), "stride": attrs.get("strides", [1, 1])[0],
                          "se": from_global_pool(n.input[0])})
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

    for n in g.node:
        if n.op_type == "Gemm":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            w = inits[n.input[1]]
            sd["classifier.weight"] = w if attrs.get("transB", 0) else w.T
            if len(n.input) > 2:
                sd["classifier.bias"] = inits[n.input[2]]
        elif n.op_type == "MatMul" and n.input[1] in inits and "classifier.weight" not in sd:
            sd["classifier.weight"] = np.ascontiguousarray(inits[n.input[1]].T)
            adds = [m for m in g.node if m.op_type == "Add" and n.output[0] in m.input]
            for a in adds:
                other = [x for x in a.input if x != n.output[0]][0]
                if other in inits:
                    sd["classifier.bias"] = inits[other]
    return sd
