"""facenet-pytorch's MTCNN detections on the images of Tests/Fixtures/media (min_face_size 40, keep_all), for the
Swift detector's test: `Tools/make_reference.py mtcnn Tests/Fixtures/faces`."""
import json
import os

import numpy as np
from PIL import Image

from references.preprocess import DATA, IMAGES


def ffmpeg_rgb(path):
    """The image as FFmpeg + swscale decode it with the flags Affect uses for stills other than JPEG (video
    frames use plain bicubic, as OpenCV does)."""
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
    for name in IMAGES + ["../faces/astronaut-420.jpg"]:   # a 4:2:0 JPEG, as cameras write them
        # PIL's pixels, as facenet-pytorch users load them; Affect decodes JPEG with libjpeg-turbo as PIL does.
        img = np.asarray(Image.open(os.path.join(DATA, name)).convert("RGB"))
        boxes, probs, points = mtcnn.detect(img, landmarks=True)
        faces = []
        if boxes is not None:
            for b, p, pts in zip(boxes, probs, points):
                faces.append({"box": [float(v) for v in b], "prob": float(p), "landmarks": [[float(x), float(y)] for x, y in pts]})
        result.append({"image": name, "faces": faces})
    with open(os.path.join(outdir, "mtcnn_images.json"), "w") as f:
        json.dump({"framework": f"facenet-pytorch {facenet_pytorch.__version__ if hasattr(facenet_pytorch, '__version__') else '2.6.0'}",
                   "min_face_size": 40, "images": result}, f, indent=1)




ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                        [70.7299, 92.2041]], dtype=np.float64)


def umeyama(src, dst):
    """Least-squares similarity src -> dst (Umeyama 1991, as scikit-image's SimilarityTransform.estimate),
    as a 2x3 matrix."""
    sm, dm = src.mean(0), dst.mean(0)
    s, d = src - sm, dst - dm
    a = d.T @ s / len(src)
    sign = np.ones(2)
    if np.linalg.det(a) < 0:
        sign[-1] = -1
    u, sv, vt = np.linalg.svd(a)
    r = u @ np.diag(sign) @ vt
    scale = (sv @ sign) / s.var(0).sum()
    m = np.zeros((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = dm - scale * r @ sm
    return m


def warp_bilinear(img, m, size):
    """dst(u, v) = img(M^-1 (u, v)), bilinear, zero beyond the border, in float64 (what cv2.warpAffine with
    INTER_LINEAR and borderValue=0 approximates in fixed point)."""
    from scipy.ndimage import map_coordinates
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    sx = inv[0, 0] * u + inv[0, 1] * v + inv[0, 2]
    sy = inv[1, 0] * u + inv[1, 1] * v + inv[1, 2]
    out = np.stack([map_coordinates(img[:, :, c].astype(np.float64), [sy, sx], order=1, mode="grid-constant", cval=0)
                    for c in range(3)], -1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def pattern(w, h):
    """The synthetic test picture the Swift test rebuilds: smooth ramps plus a checkerboard."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255) // (w - 1)
    g = (y * 255) // (h - 1)
    b = np.where(((x // 8) + (y // 8)) % 2 == 0, 40, 220)
    return np.stack([r, g, b], -1).astype(np.uint8)


def build_alignment(outdir, batches, args):
    """Aligned face crops: the similarity transform from five landmarks to the ArcFace template scaled to the
    crop, and the bilinearly warped crop, on a synthetic picture (a tilted 'face' partly outside the frame) and
    on portrait.png with facenet-pytorch's landmarks from mtcnn_images.json. cv2.estimateAffinePartial2D and
    cv2.warpAffine are recorded for comparison."""
    import cv2
    cases = []
    w, h = 96, 80
    img = pattern(w, h)
    ang = np.deg2rad(17)
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    marks = (ARCFACE_112 - 56) * 0.9 @ rot.T + [20, 30] + np.array([[0.7, -0.4], [-0.3, 0.5], [0.2, 0.1], [0.4, -0.6], [-0.5, 0.3]])
    cases.append(("synthetic", img, marks, 64, 1))
    faces = json.load(open(os.path.join(outdir, "mtcnn_images.json")))
    astro = next(i for i in faces["images"] if i["image"] == "portrait.png")
    cases.append(("portrait.png", ffmpeg_rgb(os.path.join(DATA, "portrait.png")),
                  np.array(astro["faces"][0]["landmarks"], dtype=np.float64), 112, 7))
    out = []
    for name, img, marks, size, stride in cases:
        tmpl = ARCFACE_112 * size / 112
        m = umeyama(marks, tmpl)
        crop = warp_bilinear(img, m, size)
        m_cv, _ = cv2.estimateAffinePartial2D(marks.astype(np.float32), tmpl.astype(np.float32), method=cv2.LMEDS)
        crop_cv = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        flat = crop.reshape(-1)
        out.append({"image": name, "width": int(img.shape[1]), "height": int(img.shape[0]), "size": size,
                    "landmarks": marks.tolist(), "matrix": m.reshape(-1).tolist(),
                    "cv2_matrix_max_diff": float(np.abs(m_cv - m).max()),
                    "cv2_warp_max_level_diff": int(np.abs(crop_cv.astype(int) - crop.astype(int)).max()),
                    "sample_stride": stride, "samples": flat[::stride].astype(int).tolist()})
    with open(os.path.join(outdir, "alignment.json"), "w") as f:
        json.dump({"template": "ArcFace 112x112 five points, scaled to the crop", "cases": out}, f)


def build_nets(outdir, batches, args):
    """P-, R- and O-Net on their own (facenet-pytorch's real weights) for `affect verify`: P-Net on an odd-sized
    image batch (ceil-mode pooling edges), R-Net on 24x24 and O-Net on 48x48 crops."""
    import torch
    import facenet_pytorch
    from facenet_pytorch.models.mtcnn import PNet, RNet, ONet
    from references.common import convert, image_batch
    convert(os.path.join(os.path.dirname(facenet_pytorch.__file__), "data"), os.path.join(outdir, "mtcnn.safetensors"))
    from affect_tools.io import save_reference
    nets = [PNet().eval(), RNet().eval(), ONet().eval()]
    for b in batches:
        p = image_batch(b, 83, args.seed)[:, :, :61, :]
        r = image_batch(b, 24, args.seed + 1)
        o = image_batch(b, 48, args.seed + 2)
        with torch.no_grad():
            preg, pprob = nets[0](p)
            rreg, rprob = nets[1](r)
            oreg, omarks, oprob = nets[2](o)
        save_reference(os.path.join(outdir, f"mtcnn.b{b}.ref.safetensors"), {"pnet": p.contiguous(), "rnet": r, "onet": o},
                       {"pnet.prob": pprob, "pnet.reg": preg, "rnet.prob": rprob, "rnet.reg": rreg,
                        "onet.prob": oprob, "onet.reg": oreg, "onet.landmarks": omarks},
                       "facenet-pytorch", "2.6.0", "MTCNN P/R/O-Net")


MODELS = {"mtcnn": build, "mtcnn_nets": build_nets, "alignment": build_alignment}
