"""EmotiEffLib / timm facial backbones: EfficientNet (tf_efficientnet_b0_ns / b2_ns), MobileViT,
MobileFaceNet, from whole pickled modules, state dicts or ONNX exports."""
import os

from affect_tools import unpickle
from affect_tools.io import save_weights, sha256

EXPR8 = ["Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
EXPR7 = ["Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def labels_for(n):
    return {7: EXPR7, 8: EXPR8, 10: EXPR8 + ["Valence", "Arousal"]}.get(n)


def read_state_dict(source):
    if source.endswith(".onnx"):
        from converters import onnx_vision
        return onnx_vision.state_dict(source)
    return unpickle.state_dict(source)


def arch_of(sd):
    keys = list(sd)
    if "conv_stem.weight" in sd:
        return "efficientnet"
    if any(k.startswith("stages.") for k in keys) and any(".transformer." in k for k in keys):
        return "mobilevit"
    if "conv_sep.layers.0.weight" in sd and "features.layers.0.layers.0.weight" in sd:
        return "mobilefacenet"
    return None


def detect(source):
    if os.path.isdir(source) or not source.endswith((".pt", ".pth", ".onnx")):
        return None
    try:
        return arch_of(read_state_dict(source))
    except Exception:
        return None


def convert(source, output, arch, args):
    sd = read_state_dict(source)
    src = f"{os.path.basename(source)} sha256={sha256(source)}"
    if arch == "efficientnet":
        convert_efficientnet(sd, output, src, args)
    else:
        import importlib
        m = importlib.import_module(f"converters.{arch}")
        m.convert_state_dict(sd, output, src, args)


def classifier_outputs(sd):
    for k in ("classifier.weight", "classifier.0.weight", "head.fc.weight", "fc.weight", "fc.0.weight"):
        if k in sd:
            return sd[k].shape[0]
    return None


def convert_efficientnet(sd, output, src, args):
    head = sd["conv_head.weight"].shape[0]
    size = {1280: 224, 1408: 260, 1536: 288}.get(head, 224)
    n = classifier_outputs(sd)
    labels = args.labels.split(",") if getattr(args, "labels", None) else labels_for(n)
    config = {
        "timm_model": "tf_efficientnet_b0_ns" if head == 1280 else "tf_efficientnet_b2_ns",
        "bn_eps": 1e-3, "pad_type": getattr(args, "pad_type", None) or "same",
        "stage_strides": [1, 2, 2, 2, 1, 2, 1], "input_size": size, "num_classes": n or 0,
    }
    pre = {"input_size": size, "color": "RGB", "resize": "bilinear_antialias", "layout": "NCHW", **IMAGENET}
    save_weights(output, sd, "efficientnet", config, labels=labels, preprocess=pre, source=src)
