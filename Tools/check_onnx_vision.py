#!/usr/bin/env python3
"""Full-size check of the ONNX converters for EmotiEffLib's MobileFaceNet and MobileViT (nothing is committed).

    Tools/check_onnx_vision.py OUTDIR [--affect .build/release/affect]

Builds `mbf_va_mtl`'s architecture (EmotiEffLib's get_mbf(512) + fc, 10 outputs) and timm's `mobilevit_s` and
`mobilevit_xxs` (10 outputs) with trained-looking weights, exports each as EmotiEffLib did
(training_and_examples/convert_pt_to_onnx.py: opset 11, constant folding, so BatchNorm is folded and initializers
renamed or Identity-aliased), writes a PyTorch reference (batch 2), then converts the ONNX file with
Tools/convert.py and with `affect convert`, checks both outputs are equal (tensors and affect.* metadata) and runs
`affect verify` on the Swift one.
"""
import os
import subprocess
import sys
import types

import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)


def mobilefacenet():
    from emotiefflib.backbones.mobilefacenet import MobileFaceNet, get_mbf
    m = get_mbf(False, 512)
    m.fc = torch.nn.Linear(512, 10)
    # The exported module ends with fc, as EmotiEffLib's did (its ONNX recognizer strips a final Gemm).
    m.forward = types.MethodType(lambda self, x: self.fc(MobileFaceNet.forward(self, x)), m)

    def run(model, x):
        feats = MobileFaceNet.forward(model, x)
        return feats, model.fc(feats)
    return m, 112, run


def mobilevit(variant):
    def make():
        import timm
        m = timm.create_model(variant, pretrained=False, num_classes=10)
        for mod in m.modules():
            if hasattr(mod, "fused_attn"):
                mod.fused_attn = False  # opset 11: attention as MatMuls, as EmotiEffLib's exporter wrote it
        return m, 224, lambda model, x: (model.forward_head(model.forward_features(x), pre_logits=True), model(x))
    return make


def same_weights(a, b):
    from safetensors import safe_open
    x, y = safe_open(a, "np"), safe_open(b, "np")
    if sorted(x.keys()) != sorted(y.keys()):
        return f"names differ: {sorted(set(x.keys()) ^ set(y.keys()))[:5]}"
    for k in x.keys():
        p, q = x.get_tensor(k), y.get_tensor(k)
        if p.dtype != q.dtype or p.shape != q.shape or p.tobytes() != q.tobytes():
            return f"tensor {k} differs"
    mx, my = x.metadata(), y.metadata()
    return None if mx == my else f"metadata differs: {mx} vs {my}"


def main():
    args = sys.argv[1:]
    affect = "affect"
    if "--affect" in args:
        i = args.index("--affect")
        affect = args[i + 1]
        del args[i:i + 2]
    outdir = args[0] if args else "/tmp/affect-onnx-vision"
    os.makedirs(outdir, exist_ok=True)
    import timm
    from affect_tools.io import save_reference
    from affect_tools.random_weights import make_trained_looking
    from references.common import image_batch, save_checkpoint, versions
    from make_convert_fixtures import aliases_and_renames

    for name, make, seed in (("mbf_va_mtl", mobilefacenet, 31), ("mobilevit_s", mobilevit("mobilevit_s"), 32),
                             ("mobilevit_xxs", mobilevit("mobilevit_xxs"), 33)):
        torch.manual_seed(seed)
        model, size, run = make()
        model = make_trained_looking(model, seed=seed, calibration_input=image_batch(4, size, seed)).eval()
        onnx_path = os.path.join(outdir, f"{name}.onnx")
        save_checkpoint(model, onnx_path, "onnx", example=image_batch(1, size, seed))
        alias, renamed = aliases_and_renames(onnx_path)
        x = image_batch(2, size, seed + 1)
        with torch.no_grad():
            feats, logits = run(model, x)
        ref = os.path.join(outdir, f"{name}.ref.safetensors")
        save_reference(ref, {"pixels": x}, {"features": feats, "logits": logits}, "pytorch", versions(torch, timm),
                       f"{name} architecture (trained-looking weights), ONNX export")
        py_out, swift_out = os.path.join(outdir, f"{name}.py.safetensors"), os.path.join(outdir, f"{name}.swift.safetensors")
        subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), onnx_path, py_out], check=True)
        subprocess.run([affect, "convert", onnx_path, "--output", swift_out], check=True)
        diff = same_weights(py_out, swift_out)
        print(f"{name}: {os.path.getsize(onnx_path) / 1e6:.1f} MB ONNX, {alias} Identity-aliased and {renamed} renamed "
              f"initializers; Swift output {'equals convert.py' if diff is None else 'DIFFERS: ' + diff}", flush=True)
        subprocess.run([affect, "verify", swift_out, ref], check=False)


if __name__ == "__main__":
    main()
