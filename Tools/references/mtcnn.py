"""facenet-pytorch's MTCNN detections on the images of ../shared/data (min_face_size 40, keep_all), for the
Swift detector's test: `Tools/make_reference.py mtcnn Tests/Fixtures/faces`."""
import json
import os

import numpy as np
from PIL import Image

from references.preprocess import DATA, IMAGES


def ffmpeg_rgb(path):
    """The image as Affect's decoder sees it (FFmpeg + swscale with the same flags), so the comparison
    isolates the detector from JPEG decoder differences (libjpeg in PIL vs FFmpeg's)."""
    import subprocess
    w, h = Image.open(path).size
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "-sws_flags", "bicubic+accurate_rnd+full_chroma_int", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)


def build(outdir, batches, args):
    import facenet_pytorch
    from facenet_pytorch import MTCNN
    mtcnn = MTCNN(keep_all=True, min_face_size=40, device="cpu")
    result = []
    for name in IMAGES:
        img = ffmpeg_rgb(os.path.join(DATA, name))
        boxes, probs, points = mtcnn.detect(img, landmarks=True)
        faces = []
        if boxes is not None:
            for b, p, pts in zip(boxes, probs, points):
                faces.append({"box": [float(v) for v in b], "prob": float(p), "landmarks": [[float(x), float(y)] for x, y in pts]})
        result.append({"image": name, "faces": faces})
    with open(os.path.join(outdir, "mtcnn_images.json"), "w") as f:
        json.dump({"framework": f"facenet-pytorch {facenet_pytorch.__version__ if hasattr(facenet_pytorch, '__version__') else '2.6.0'}",
                   "min_face_size": 40, "images": result}, f, indent=1)


MODELS = {"mtcnn": build}
