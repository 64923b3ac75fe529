"""References for EmotiEffLib's facial backbones, built with timm (and the emotiefflib package)."""
import os

import timm
import torch

from affect_tools.io import save_reference
from affect_tools.random_weights import make_trained_looking
from references.common import convert, save_checkpoint, image_batch, versions


def _efficientnet(variant, classes, size, tiny=False):
    if tiny:
        from timm.models.efficientnet import _gen_efficientnet
        m = _gen_efficientnet(variant, channel_multiplier=0.25, depth_multiplier=0.3, pretrained=False,
                              num_classes=classes, bn_eps=1e-3, pad_type="same")
    else:
        m = timm.create_model(variant, pretrained=False, num_classes=classes)
    return m


def facial_reference(name, make_model, size, run, label):
    """Builds `make_model()` with trained-looking weights (BatchNorm calibrated on face-like inputs), saves it
    as users have it (--format), converts it, and writes references of `run(model, x) -> (features, logits)`."""
    def build(outdir, batches, args):
        torch.manual_seed(args.seed)
        model = make_trained_looking(make_model(), seed=args.seed, calibration_input=image_batch(4, size, args.seed + 7))
        ext = ".onnx" if args.format == "onnx" else ".pt"
        ckpt = os.path.join(outdir, f"{name}{ext}" if args.format != "state_dict" else f"{name}.state_dict.pt")
        save_checkpoint(model, ckpt, args.format, example=image_batch(1, size, args.seed))
        convert(ckpt, os.path.join(outdir, f"{name}.safetensors"))
        for b in batches:
            x = image_batch(b, size, args.seed)
            with torch.no_grad():
                feats, logits = run(model, x)
            save_reference(os.path.join(outdir, f"{name}.b{b}.ref.safetensors"), {"pixels": x},
                           {"features": feats, "logits": logits}, "pytorch", versions(torch, timm), label)
    return build


def timm_run(model, x):
    return model.forward_head(model.forward_features(x), pre_logits=True), model(x)


def mbf_run(model, x):
    feats = model(x)
    return feats, model.fc(feats)


def efficientnet_reference(name, variant, classes, size, tiny=False):
    return facial_reference(name, lambda: _efficientnet(variant, classes, size, tiny), size, timm_run, variant)


def mobilevit_reference(name, variant, size=224, classes=10):
    return facial_reference(name, lambda: timm.create_model(variant, pretrained=False, num_classes=classes), size,
                            timm_run, variant)


def mobilefacenet_reference(name, blocks=(1, 4, 6, 2), scale=2, classes=10):
    """EmotiEffLib's MobileFaceNet (its own module) with an `fc` head, saved as a whole pickled module."""
    def make():
        from emotiefflib.backbones.mobilefacenet import get_mbf
        model = get_mbf(False, 512, blocks=blocks, scale=scale)
        model.fc = torch.nn.Linear(512, classes)
        return model
    return facial_reference(name, make, 112, mbf_run, f"emotiefflib MobileFaceNet blocks={blocks} scale={scale}")


MODELS = {
    "mobilevit_xxs": mobilevit_reference("mobilevit_xxs", "mobilevit_xxs"),
    "mobilevit_s": mobilevit_reference("mobilevit_s", "mobilevit_s"),
    "mobilevit_tiny": mobilevit_reference("mobilevit_tiny", "mobilevit_xxs", size=64, classes=10),
    "mobilefacenet": mobilefacenet_reference("mobilefacenet"),
    "mobilefacenet_tiny": mobilefacenet_reference("mobilefacenet_tiny", blocks=(1, 1, 1, 1), scale=1, classes=10),
    "efficientnet_b0": efficientnet_reference("efficientnet_b0", "tf_efficientnet_b0_ns", 8, 224),
    "efficientnet_b0_va": efficientnet_reference("efficientnet_b0_va", "tf_efficientnet_b0_ns", 10, 224),
    "efficientnet_b2": efficientnet_reference("efficientnet_b2", "tf_efficientnet_b2_ns", 7, 260),
    "efficientnet_tiny": efficientnet_reference("efficientnet_tiny", "tf_efficientnet_b0", 7, 64, tiny=True),
}
