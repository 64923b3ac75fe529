"""Operator-level references from PyTorch for every kernel of AffectKernels.

    Tools/make_reference.py ops Tests/Fixtures/ops

writes `ops.safetensors`: for each case, tensors `<case>.<role>` (inputs and parameters in PyTorch layout,
`<case>.output` what torch computed) and, in the metadata key `affect.cases`, a JSON list of
{"name", "op", ...hyper-parameters}. Sizes are odd on purpose: channels that are not multiples of the
SIMD width (3, 5, 17, 33), 1×1 to 7×7 kernels, stride 2 with TF-SAME on even and odd inputs, batch > 1.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

g = torch.Generator().manual_seed(1234)


def rnd(*shape, scale=1.0):
    return (torch.randn(*shape, generator=g) * scale).float()


def tf_same_pad(x, k, s, d=1):
    ih, iw = x.shape[-2:]
    def pad(i, kk, ss):
        return max((math.ceil(i / ss) - 1) * ss + (kk - 1) * d + 1 - i, 0)
    ph, pw = pad(ih, k[0], s), pad(iw, k[1], s)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


ACTS = {"none": lambda x: x, "relu": F.relu, "relu6": F.relu6, "silu": F.silu, "gelu": F.gelu,
        "sigmoid": torch.sigmoid, "tanh": torch.tanh, "hardswish": F.hardswish}


def build(outdir, batches, args):
    T, cases = {}, []

    def case(name, op, tensors, **params):
        for k, v in tensors.items():
            T[f"{name}.{k}"] = np.ascontiguousarray(v.detach().numpy().astype(np.float32))
        cases.append({"name": name, "op": op, **params})

    # conv2d: (name, N, Cin, H, W, Cout, k, stride, padding ("same" or int), dilation, groups, bias, act)
    convs = [
        ("conv3x3", 2, 5, 9, 11, 7, 3, 1, 1, 1, 1, True, "none"),
        ("conv1x1", 1, 33, 6, 7, 17, 1, 1, 0, 1, 1, True, "none"),
        ("conv7x7s2", 2, 3, 15, 14, 16, 7, 2, 3, 1, 1, False, "relu"),
        ("dw3x3s2_same_even", 2, 17, 10, 12, 17, 3, 2, "same", 1, 17, True, "silu"),
        ("dw5x5s2_same_odd", 1, 16, 13, 11, 16, 5, 2, "same", 1, 16, False, "none"),
        ("dw5x5", 1, 33, 8, 8, 33, 5, 1, 2, 1, 33, True, "relu6"),
        ("conv3x3_dil2", 1, 4, 12, 10, 6, 3, 1, 2, 2, 1, True, "none"),
        ("conv3x3_groups4", 2, 8, 7, 9, 12, 3, 1, 1, 1, 4, True, "none"),
        ("conv3x3s2_same_even", 1, 3, 12, 12, 8, 3, 2, "same", 1, 1, False, "none"),
        ("conv3x3s2_same_odd", 1, 3, 13, 11, 8, 3, 2, "same", 1, 1, False, "none"),
        ("conv1x1s2", 1, 20, 9, 9, 24, 1, 2, 0, 1, 1, False, "none"),
    ]
    for (name, n, cin, h, w, cout, k, s, p, d, grp, bias, act) in convs:
        x = rnd(n, cin, h, w)
        wt = rnd(cout, cin // grp, k, k, scale=1 / math.sqrt(cin // grp * k * k))
        b = rnd(cout, scale=0.1) if bias else None
        if p == "same":
            y = F.conv2d(tf_same_pad(x, (k, k), s, d), wt, b, stride=s, dilation=d, groups=grp)
        else:
            y = F.conv2d(x, wt, b, stride=s, padding=p, dilation=d, groups=grp)
        y = ACTS[act](y)
        t = {"input": x, "weight": wt, "output": y}
        if bias:
            t["bias"] = b
        case(name, "conv2d", t, stride=s, padding=p, dilation=d, groups=grp, activation=act)

    # conv + eval BatchNorm (folded at load by the engine)
    x = rnd(2, 6, 8, 7)
    conv = torch.nn.Conv2d(6, 10, 3, padding=1, bias=True)
    bn = torch.nn.BatchNorm2d(10, eps=1e-3).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(10, generator=g) + 0.5); bn.bias.copy_(rnd(10, scale=0.3))
        bn.running_mean.copy_(rnd(10, scale=0.5)); bn.running_var.copy_(torch.rand(10, generator=g) + 0.3)
        y = bn(conv(x))
    case("conv_bn", "conv_bn", {"input": x, "weight": conv.weight, "bias": conv.bias, "bn_weight": bn.weight,
                                "bn_bias": bn.bias, "bn_mean": bn.running_mean, "bn_var": bn.running_var, "output": y},
         eps=1e-3)

    # conv1d: wav2vec2's first layer and its grouped positional conv
    x = rnd(2, 1, 203)
    wt = rnd(8, 1, 10, scale=0.3)
    case("conv1d_k10s5", "conv1d", {"input": x, "weight": wt, "output": F.conv1d(x, wt, stride=5)},
         stride=5, padding=0, groups=1)
    x = rnd(1, 32, 150)
    wt = rnd(32, 2, 128, scale=0.06)
    b = rnd(32, scale=0.1)
    case("conv1d_pos", "conv1d", {"input": x, "weight": wt, "bias": b,
                                  "output": F.conv1d(x, wt, b, padding=64, groups=16)}, stride=1, padding=64, groups=16)

    # linear
    x = rnd(2, 5, 96)
    wt = rnd(40, 96, scale=0.1)
    b = rnd(40)
    case("linear", "linear", {"input": x, "weight": wt, "bias": b, "output": F.linear(x, wt, b)})

    # norms
    x = rnd(3, 5, 37) * 3 + 1
    w, b = torch.rand(37, generator=g) + 0.5, rnd(37, scale=0.2)
    case("layernorm", "layernorm", {"input": x, "weight": w, "bias": b,
                                    "output": F.layer_norm(x, (37,), w, b, 1e-5)}, eps=1e-5)
    for groups in (12, 3):
        x = rnd(2, 12, 6, 5) * 2 + 0.5
        w, b = torch.rand(12, generator=g) + 0.5, rnd(12, scale=0.2)
        case(f"groupnorm{groups}", "groupnorm", {"input": x, "weight": w, "bias": b,
                                                 "output": F.group_norm(x, groups, w, b, 1e-5)}, groups=groups, eps=1e-5)

    # activations (channels along dim 1 for PReLU, as torch)
    x = torch.cat([rnd(2, 5, 30) * 4, torch.tensor([[[-90.0, -20, -1e-4, 0, 1e-4, 20, 90] + [0.5] * 23] * 5] * 2)], dim=2)
    for act in ["relu", "relu6", "silu", "gelu", "sigmoid", "tanh", "hardswish"]:
        case(f"act_{act}", "activation", {"input": x, "output": ACTS[act](x)}, activation=act)
    slopes = torch.rand(5, generator=g) * 0.4 + 0.05
    case("act_prelu", "prelu", {"input": x, "weight": slopes, "output": F.prelu(x, slopes)})

    x = rnd(4, 37) * 5
    x[0, 3] = 80
    case("softmax", "softmax", {"input": x, "output": torch.softmax(x, dim=-1)})

    # pooling (NCHW in the file)
    x = rnd(2, 5, 11, 12)
    case("maxpool3s2p1", "maxpool", {"input": x, "output": F.max_pool2d(x, 3, 2, 1)}, kernel=3, stride=2, padding=1, ceil=False)
    x = rnd(1, 17, 11, 11)
    case("maxpool3s2_ceil", "maxpool", {"input": x, "output": F.max_pool2d(x, 3, 2, 0, ceil_mode=True)}, kernel=3, stride=2, padding=0, ceil=True)
    x = rnd(1, 3, 7, 7)
    case("maxpool2s2_ceil", "maxpool", {"input": x, "output": F.max_pool2d(x, 2, 2, 0, ceil_mode=True)}, kernel=2, stride=2, padding=0, ceil=True)
    x = rnd(2, 5, 10, 10)
    for inc in (True, False):
        case(f"avgpool3s2p1_{int(inc)}", "avgpool", {"input": x, "output": F.avg_pool2d(x, 3, 2, 1, count_include_pad=inc)},
             kernel=3, stride=2, padding=1, ceil=False, count_include_pad=inc)
        case(f"avgpool3s2p1_ceil_{int(inc)}", "avgpool",
             {"input": x, "output": F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=inc)},
             kernel=3, stride=2, padding=1, ceil=True, count_include_pad=inc)
    x = rnd(2, 19, 5, 6)
    case("globalavgpool", "globalavgpool", {"input": x, "output": x.mean(dim=(2, 3))})

    # element-wise with broadcasting (layout-free: compared as arrays)
    a, b = rnd(2, 3, 4, 5), rnd(4, 1)
    case("add_broadcast", "add", {"a": a, "b": b, "output": a + b})
    a, b = rnd(2, 3, 17), rnd(17)
    case("mul_channels", "mul", {"a": a, "b": b, "output": a * b})
    a, b = rnd(2, 3, 4), rnd(2, 5, 4)
    case("concat", "concat", {"a": a, "b": b, "output": torch.cat([a, b], dim=1)}, axis=1)

    # squeeze-excitation as timm's EfficientNet blocks
    from timm.models._efficientnet_blocks import SqueezeExcite
    se = SqueezeExcite(24, rd_ratio=0.25, act_layer=torch.nn.SiLU).eval()
    x = rnd(2, 24, 5, 5)
    with torch.no_grad():
        y = se(x)
    case("squeeze_excite", "se", {"input": x, "reduce_weight": se.conv_reduce.weight, "reduce_bias": se.conv_reduce.bias,
                                  "expand_weight": se.conv_expand.weight, "expand_bias": se.conv_expand.bias, "output": y})

    # attention with a key padding mask
    B, L, H, D = 2, 7, 4, 8
    q, k, v = rnd(B, L, H * D), rnd(B, L, H * D), rnd(B, L, H * D)
    mask = torch.ones(B, L)
    mask[1, 4:] = 0
    def heads(t):
        return t.view(B, L, H, D).transpose(1, 2)
    o = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=mask.bool()[:, None, None, :])
    case("attention", "attention", {"q": q, "k": k, "v": v, "mask": mask, "output": o.transpose(1, 2).reshape(B, L, H * D)},
         heads=H)

    # resizing (NCHW in the file)
    x = rnd(1, 3, 20, 15) * 40 + 128
    for (oh, ow) in [(13, 29), (40, 31)]:
        case(f"bilinear_{oh}x{ow}", "resize", {"input": x, "output": F.interpolate(x, (oh, ow), mode="bilinear", align_corners=False)},
             method="bilinear")
    x = rnd(1, 3, 37, 41) * 40 + 128
    case("bilinear_aa_12x17", "resize", {"input": x, "output": F.interpolate(x, (12, 17), mode="bilinear", align_corners=False, antialias=True)},
         method="bilinear_antialias")
    case("area_12x17", "resize", {"input": x, "output": F.interpolate(x, (12, 17), mode="area")}, method="area")
    case("area_24x24", "resize", {"input": x, "output": F.interpolate(x, (24, 24), mode="area")}, method="area")

    meta = {"affect.cases": json.dumps(cases),
            "affect.reference": json.dumps({"framework": "pytorch", "version": torch.__version__, "model": "operators"})}
    save_file(T, os.path.join(outdir, "ops.safetensors"), metadata=meta)
    print(f"{len(cases)} cases, {sum(a.size for a in T.values()) * 4 / 1e6:.2f} MB")


MODELS = {"ops": build}
