"""timm MobileViT (`mobilevit_xxs` / `_xs` / `_s`, EmotiEffLib's `mobilevit_va_mtl`): timm names kept; the
variant is read from the checkpoint's shapes (final conv width 320 / 384 / 640)."""
from affect_tools.io import save_weights
from converters.vision import IMAGENET, labels_for


def convert_state_dict(sd, output, src, args):
    width = sd["final_conv.conv.weight"].shape[0]
    variant = {320: "mobilevit_xxs", 384: "mobilevit_xs", 640: "mobilevit_s"}.get(width, "mobilevit")
    n = sd["head.fc.weight"].shape[0] if "head.fc.weight" in sd else 0
    labels = args.labels.split(",") if getattr(args, "labels", None) else labels_for(n)
    config = {"timm_model": variant, "bn_eps": 1e-5, "ln_eps": 1e-5, "num_heads": 4, "patch_size": 2,
              "stage_strides": [1, 2, 2, 2, 2], "input_size": 224, "num_classes": n}
    pre = {"input_size": 224, "color": "RGB", "resize": "bilinear_antialias", "layout": "NCHW", **IMAGENET}
    save_weights(output, sd, "mobilevit", config, labels=labels, preprocess=pre, source=src)
