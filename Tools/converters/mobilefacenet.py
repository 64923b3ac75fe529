"""MobileFaceNet as in EmotiEffLib's `mbf_va_mtl` (`emotiefflib/backbones/mobilefacenet.py` plus an `fc`
classifier): state dict names are kept (`layers.K.layers...`, `conv_sep`, `features`, `fc`)."""
from affect_tools.io import save_weights
from converters.vision import labels_for


def convert_state_dict(sd, output, src, args):
    n = sd["fc.weight"].shape[0] if "fc.weight" in sd else 0
    labels = args.labels.split(",") if getattr(args, "labels", None) else labels_for(n)
    config = {"model": "mobilefacenet", "bn_eps": 1e-5, "input_size": 112, "num_classes": n,
              "embedding_size": int(sd["features.layers.2.weight"].shape[0])}
    pre = {"input_size": 112, "color": "RGB", "resize": "bilinear_antialias", "layout": "NCHW",
           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    save_weights(output, sd, "mobilefacenet", config, labels=labels, preprocess=pre, source=src)
