"""References for the head/fusion layer: heads trained briefly in PyTorch, Keras (tf_keras) and
scikit-learn, converted with Tools/converters/head.py, and NumPy/SciPy/scikit-learn results for every
fusion step (`fusion_ops`).

    Tools/make_reference.py head_torch OUTDIR          # also head_torch_au, head_keras, head_keras_ah,
    Tools/make_reference.py fusion_ops OUTDIR          #      head_sklearn_binary, head_sklearn_multi
    Tools/make_reference.py fusion_fixtures Tests/Fixtures/fusion   # everything the Swift tests read
"""
import json
import os
import pickle
import sys

import numpy as np

from affect_tools.io import save_reference

FEATURES = 32  # input width of the test heads (the authors' heads take 1280-d EfficientNet features)


def _data(n, classes, seed, binary_multi=False):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.5, (classes, FEATURES))
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.normal(0, 1.0, (n, FEATURES))
    return x.astype(np.float32), y


def _inputs(batch, seed):
    rng = np.random.default_rng(seed + 99)
    return rng.normal(0, 1.5, (batch, FEATURES)).astype(np.float32)


def _convert(src, out, **kw):
    from converters import head as conv

    class A:
        labels = None
    conv.convert(src, out, "head", A(), **kw)


# ---------------------------------------------------------------------------------------------- PyTorch

def torch_head(name, outputs, final, whole_module):
    def build(outdir, batches, args):
        import torch
        torch.manual_seed(args.seed)
        layers = [torch.nn.Linear(FEATURES, 128), torch.nn.ReLU(), torch.nn.Linear(128, outputs)]
        if whole_module and final == "sigmoid":
            layers.append(torch.nn.Sigmoid())
        model = torch.nn.Sequential(*layers)
        x, y = _data(512, outputs if final == "softmax" else 2, args.seed)
        xt = torch.from_numpy(x)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(60):  # brief training so weights look trained
            opt.zero_grad()
            out = model(xt)
            if final == "softmax":
                loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y))
            else:
                target = torch.from_numpy(np.stack([(y + k) % 2 for k in range(outputs)], 1).astype(np.float32))
                p = out if whole_module else torch.sigmoid(out)
                loss = torch.nn.functional.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), target)
            loss.backward()
            opt.step()
        model.eval()
        ckpt = os.path.join(outdir, f"{name}.pt")
        torch.save(model if whole_module else model.state_dict(), ckpt)
        _convert(ckpt, os.path.join(outdir, f"{name}.safetensors"))
        for b in batches:
            xb = _inputs(b, args.seed)
            with torch.no_grad():
                out = model(torch.from_numpy(xb))
                if not whole_module:
                    out = torch.softmax(out, 1) if final == "softmax" else torch.sigmoid(out)
            save_reference(os.path.join(outdir, f"{name}.b{b}.ref.safetensors"), {"features": xb},
                           {"probs": out.numpy()}, "pytorch", torch.__version__, name)
    return build


# ---------------------------------------------------------------------------------------------- Keras

def keras_head(name, hidden, outputs, final):
    def build(outdir, batches, args):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf
        import tf_keras as keras
        keras.utils.set_random_seed(args.seed)
        model = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(hidden, activation="relu"),
                                  keras.layers.Dense(outputs, activation=final)])
        x, y = _data(512, outputs if final == "softmax" else 2, args.seed)
        if final == "softmax":
            model.compile("adam", "sparse_categorical_crossentropy")
        else:
            model.compile("adam", "binary_crossentropy")
            y = y.reshape(-1, 1).astype(np.float32)
        model.fit(x, y, epochs=3, batch_size=64, verbose=0)
        ckpt = os.path.join(outdir, f"{name}.h5")
        model.save_weights(ckpt)  # as the authors: mlpModel.save_weights(...)
        _convert(ckpt, os.path.join(outdir, f"{name}.safetensors"))
        for b in batches:
            xb = _inputs(b, args.seed)
            probs = model(xb, training=False).numpy()
            save_reference(os.path.join(outdir, f"{name}.b{b}.ref.safetensors"), {"features": xb},
                           {"probs": probs}, "keras", f"tf_keras {keras.__version__} tensorflow {tf.__version__}", name)
    return build


# ---------------------------------------------------------------------------------------------- sklearn

def sklearn_head(name, classes):
    def build(outdir, batches, args):
        import joblib
        import sklearn
        from sklearn.linear_model import LogisticRegression
        x, y = _data(400, classes, args.seed)
        model = LogisticRegression(C=0.5, max_iter=500).fit(x, y)
        ckpt = os.path.join(outdir, f"{name}.joblib")
        joblib.dump(model, ckpt)
        _convert(ckpt, os.path.join(outdir, f"{name}.safetensors"))
        for b in batches:
            xb = _inputs(b, args.seed)
            save_reference(os.path.join(outdir, f"{name}.b{b}.ref.safetensors"), {"features": xb},
                           {"probs": model.predict_proba(xb.astype(np.float64))}, "scikit-learn",
                           sklearn.__version__, name)
        if classes == 2:
            # The video-level gate: predict_proba of the mean of a video's text features.
            rng = np.random.default_rng(args.seed + 5)
            videos = [(rng.normal(0, 1, (int(rng.integers(3, 9)), FEATURES)) + rng.normal(0, 1.5, FEATURES)).astype(np.float32)
                      for _ in range(4)]
            probs = [float(model.predict_proba(v.astype(np.float64).mean(0, keepdims=True))[0, 1]) for v in videos]
            with open(os.path.join(outdir, f"{name}.gate.json"), "w") as f:
                json.dump({"videos": [v.tolist() for v in videos], "positive_proba": probs}, f)
    return build


# ---------------------------------------------------------------------------------------------- fusion steps

def _authors_window(p, delta, fn):
    # The authors' smoothing loop: a window truncated at the ends of the video.
    out = np.zeros_like(p)
    for i in range(len(p)):
        out[i] = fn(p[max(0, i - delta): i + delta + 1], axis=0)
    return out


def fusion_ops(outdir, batches, args):
    import scipy
    import sklearn
    from scipy.interpolate import interp1d
    from scipy.ndimage import gaussian_filter1d
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(args.seed)
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    L = lambda a: np.asarray(a).tolist()  # noqa: E731
    ops = {"versions": f"numpy {np.__version__} scipy {scipy.__version__} scikit-learn {sklearn.__version__}"}

    # interp1d: irregular sample times, new times inside, on knots and outside, per extrapolation mode.
    x = np.sort(rng.uniform(0, 3, 9)).astype(np.float64)
    y = f32(rng.normal(0, 1, (9, 3)))
    xn = np.concatenate([[-0.4, x[0], x[3]], rng.uniform(-0.5, 3.5, 20), [x[-1], 3.7]])
    ops["interp"] = []
    for mode, kw in [("extrapolate", {"fill_value": "extrapolate"}),
                     ("hold", {"bounds_error": False, "fill_value": (y[0], y[-1])}),
                     ("constant", {"bounds_error": False, "fill_value": -1.0})]:
        ops["interp"].append({"mode": mode, "x": L(x), "y": L(y), "x_new": L(xn),
                              "expected": L(interp1d(x, y, kind="linear", axis=0, **kw)(xn))})

    # Predictions over frames without a face: gaps inside and at both edges, 25 fps.
    n = 40
    t = np.arange(n) / 25.0
    vals = f32(rng.dirichlet(np.ones(4), n))
    face = np.ones(n, bool)
    face[[0, 1, 2, 10, 11, 12, 13, 20, 35, 36, 37, 38, 39]] = False
    filled = interp1d(t[face], vals[face], kind="linear", axis=0, bounds_error=False,
                      fill_value=(vals[face][0], vals[face][-1]))(t)
    ops["gapfill"] = {"fps": 25.0, "values": [L(v) if f else None for v, f in zip(vals, face)], "expected": L(filled)}

    # Audio (50 Hz, frame centres i/50 + 0.0125) and words (mid-times) onto 30 fps frame times.
    audio = f32(rng.normal(0, 1, (60, 5)))
    at = np.arange(60) / 50.0 + 0.0125
    vt = np.arange(40) / 30.0
    ops["audio"] = {"features": L(audio), "frame_times": L(vt),
                    "expected": L(interp1d(at, audio, axis=0, bounds_error=False, fill_value=(audio[0], audio[-1]))(vt))}
    starts = np.array([0.05, 0.3, 0.62, 0.9]); ends = np.array([0.25, 0.55, 0.8, 1.2])
    words = f32(rng.normal(0, 1, (4, 3)))
    ops["words"] = {"features": L(words), "starts": L(starts), "ends": L(ends), "frame_times": L(vt),
                    "expected": L(interp1d((starts + ends) / 2, words, axis=0, bounds_error=False,
                                           fill_value=(words[0], words[-1]))(vt))}

    # Smoothing.
    p = f32(rng.dirichlet(np.ones(3) * 0.7, 50))
    ops["smooth_input"] = L(p)
    ops["smooth"] = []
    for d in (0, 1, 4, 60):
        ops["smooth"].append({"kind": "mean", "delta": d, "expected": L(_authors_window(p, d, np.mean))})
        ops["smooth"].append({"kind": "median", "delta": d, "expected": L(_authors_window(p, d, np.median))})
    for sigma, mode in [(0.8, "reflect"), (3.0, "reflect"), (2.5, "nearest"), (2.0, "mirror"), (20.0, "reflect"), (20.0, "mirror")]:
        ops["smooth"].append({"kind": "gaussian", "sigma": sigma, "mode": mode,
                              "expected": L(gaussian_filter1d(p.astype(np.float64), sigma, axis=0, mode=mode, truncate=4.0))})

    # STAT and mean pooling.
    feats = f32(rng.normal(0.3, 2, (17, 6)))
    ops["pool"] = {"input": L(feats), "mean": L(feats.mean(0)),
                   "stat": L(np.concatenate([feats.mean(0), feats.std(0), feats.min(0), feats.max(0)]))}

    # Late and early fusion.
    a, b, c = (f32(rng.dirichlet(np.ones(8), 10)) for _ in range(3))
    ops["blend"] = {"a": L(a), "b": L(b), "c": L(c), "w": 0.35, "expected2": L(0.35 * a + 0.65 * b),
                    "weights3": [0.5, 0.3, 0.2], "expected3": L(0.5 * a + 0.3 * b + 0.2 * c),
                    "concat": L(np.concatenate([a, b[:, :3]], 1))}

    # Confidence filtering: EmotiEffLib 8-class probabilities vs an ABAW EXPR head.
    abaw = ["Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other"]
    eff = ["Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
    mapping = np.array([abaw.index(l if l != "Contempt" else "Other") for l in eff])
    model = f32(rng.dirichlet(np.ones(8) * 0.3, 60))
    task = f32(rng.dirichlet(np.ones(8), 60))
    thr = 0.7
    filt = np.where(model.max(1) > thr, mapping[model.argmax(1)], task.argmax(1))
    remap = np.zeros((60, 8), np.float32)
    for i, m in enumerate(mapping):
        remap[:, m] += model[:, i]
    ops["filter"] = {"model": L(model), "task": L(task), "threshold": thr, "mapping": L(mapping),
                     "expected": L(filt), "remapped": L(remap)}

    # Metrics.
    # Class 7 is neither true nor predicted: it still counts in the macro mean, with F1 0 (zero_division=0).
    yt = rng.integers(0, 7, 300); yp = np.where(rng.random(300) < 0.5, yt, rng.integers(0, 7, 300))
    v1 = rng.normal(0, 0.5, 200); v2 = 0.6 * v1 + rng.normal(0.1, 0.3, 200)

    def ccc(x, y):
        mx, my = x.mean(), y.mean()
        cov = ((x - mx) * (y - my)).mean()
        return 2 * cov / (x.var() + y.var() + (mx - my) ** 2)
    ops["metrics"] = {"truth": L(yt), "pred": L(yp),
                      "macro_f1": f1_score(yt, yp, average="macro", labels=list(range(8)), zero_division=0),
                      "weighted_f1": f1_score(yt, yp, average="weighted", labels=list(range(8)), zero_division=0),
                      "per_class_f1": L(f1_score(yt, yp, average=None, labels=list(range(8)), zero_division=0)),
                      "x": L(v1), "y": L(v2), "ccc": ccc(v1, v2), "pearson": float(np.corrcoef(v1, v2)[0, 1])}

    # `affect evaluate` files: CSV predictions against ABAW-style ground truth with invalid markers.
    ev = os.path.join(outdir, "eval")
    os.makedirs(ev, exist_ok=True)
    scores = {}
    m = 120
    gt = rng.integers(0, 8, m); gt[[3, 50, 51]] = -1
    pr = np.where(rng.random(m) < 0.6, np.maximum(gt, 0), rng.integers(0, 8, m))
    with open(f"{ev}/expr_gt.txt", "w") as f:  # ABAW annotation layout
        f.write(",".join(abaw) + "\n" + "".join(f"{v}\n" for v in gt))
    probs = f32(rng.dirichlet(np.ones(8), m)); probs[np.arange(m), pr] += 1.0
    with open(f"{ev}/expr_pred.csv", "w") as f:
        f.write("frame," + ",".join(abaw) + "\n")
        f.writelines(f"{i}," + ",".join(f"{x:.6f}" for x in probs[i]) + "\n" for i in range(m))
    ok = gt != -1
    scores["expr"] = f1_score(gt[ok], probs.argmax(1)[ok], average="macro", labels=list(range(8)), zero_division=0)
    with open(f"{ev}/expr_pred_classes.csv", "w") as f:
        f.write("frame,expr\n")
        f.writelines(f"{i},{probs[i].argmax()}\n" for i in range(m))

    va_gt = rng.uniform(-1, 1, (m, 2)); va_gt[[7, 8]] = -5; va_gt[9, 1] = -5
    va_pr = np.clip(0.7 * va_gt + rng.normal(0, 0.3, (m, 2)), -1, 1)
    for path, arr in [(f"{ev}/va_gt.txt", va_gt), (f"{ev}/va_pred.csv", va_pr)]:
        with open(path, "w") as f:
            f.write("valence,arousal\n")
            f.writelines(f"{r[0]:.6f},{r[1]:.6f}\n" for r in arr)
    va_gt_r = np.loadtxt(f"{ev}/va_gt.txt", delimiter=",", skiprows=1)
    va_pr_r = np.loadtxt(f"{ev}/va_pred.csv", delimiter=",", skiprows=1)
    ok = (va_gt_r != -5).all(1)
    scores["va"] = (ccc(va_pr_r[ok, 0], va_gt_r[ok, 0]) + ccc(va_pr_r[ok, 1], va_gt_r[ok, 1])) / 2

    aus = ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"]
    au_gt = (rng.random((m, 12)) < 0.3).astype(int); au_gt[[5, 6]] = -1
    au_pr = np.clip(au_gt * 0.6 + rng.random((m, 12)) * 0.6, 0, 1)
    with open(f"{ev}/au_gt.txt", "w") as f:
        f.write(",".join(aus) + "\n")
        f.writelines(",".join(str(v) for v in r) + "\n" for r in au_gt)
    with open(f"{ev}/au_pred.csv", "w") as f:
        f.write(",".join(aus) + "\n")
        f.writelines(",".join(f"{v:.6f}" for v in r) + "\n" for r in au_pr)
    au_pr_r = np.loadtxt(f"{ev}/au_pred.csv", delimiter=",", skiprows=1)
    ok = (au_gt != -1).all(1)
    scores["au"] = float(np.mean([f1_score(au_gt[ok, k], (au_pr_r[ok, k] >= 0.5).astype(int), zero_division=0)
                                  for k in range(12)]))

    emi = ["Admiration", "Amusement", "Determination", "Empathic Pain", "Excitement", "Joy"]
    vids = [f"{i:05d}" for i in range(30)]
    e_gt = rng.random((30, 6)); e_pr = np.clip(0.5 * e_gt + 0.5 * rng.random((30, 6)), 0, 1)
    order = rng.permutation(30)  # predictions in another order: rows pair by `video`
    with open(f"{ev}/emi_gt.csv", "w") as f:
        f.write("video," + ",".join(emi) + "\n")
        f.writelines(vids[i] + "," + ",".join(f"{v:.6f}" for v in e_gt[i]) + "\n" for i in range(30))
    with open(f"{ev}/emi_pred.csv", "w") as f:
        f.write("video," + ",".join(emi) + "\n")
        f.writelines(vids[i] + "," + ",".join(f"{v:.6f}" for v in e_pr[i]) + "\n" for i in order)
    e_gt_r = np.round(e_gt, 6); e_pr_r = np.round(e_pr, 6)
    scores["emi"] = float(np.mean([np.corrcoef(e_pr_r[:, k], e_gt_r[:, k])[0, 1] for k in range(6)]))

    ah_gt = (rng.random(m) < 0.35).astype(int)
    ah_pr = np.where(rng.random(m) < 0.7, ah_gt * 0.8 + 0.1, rng.random(m))
    with open(f"{ev}/ah_gt.txt", "w") as f:
        f.write("ah\n" + "".join(f"{v}\n" for v in ah_gt))
    with open(f"{ev}/ah_pred.csv", "w") as f:
        f.write("frame,ah\n" + "".join(f"{i},{v:.6f}\n" for i, v in enumerate(ah_pr)))
    ah_pr_r = np.loadtxt(f"{ev}/ah_pred.csv", delimiter=",", skiprows=1)[:, 1]
    scores["ah"] = f1_score(ah_gt, (ah_pr_r >= 0.5).astype(int), average="macro", zero_division=0)
    scores["ah_weighted"] = f1_score(ah_gt, (ah_pr_r >= 0.5).astype(int), average="weighted", zero_division=0)
    ops["evaluate"] = {k: float(v) for k, v in scores.items()}

    with open(os.path.join(outdir, "ops.json"), "w") as f:
        json.dump(ops, f, separators=(",", ":"))


HEADS = {
    "head_torch": torch_head("head_torch", 8, "softmax", whole_module=False),
    "head_torch_au": torch_head("head_torch_au", 12, "sigmoid", whole_module=True),
    "head_keras": keras_head("head_keras", 128, 8, "softmax"),
    "head_keras_ah": keras_head("head_keras_ah", 64, 1, "sigmoid"),
    "head_sklearn_binary": sklearn_head("head_sklearn_binary", 2),
    "head_sklearn_multi": sklearn_head("head_sklearn_multi", 4),
}


def fusion_fixtures(outdir, batches, args):
    """Everything Tests/Fixtures/fusion holds: ops.json, eval/*.csv, each head and its batch-5 reference
    (checkpoints themselves are not kept)."""
    fusion_ops(outdir, batches, args)
    for name, fn in HEADS.items():
        fn(outdir, [5], args)
        for ext in (".pt", ".h5", ".joblib"):
            if os.path.exists(os.path.join(outdir, name + ext)):
                os.remove(os.path.join(outdir, name + ext))


MODELS = {**HEADS, "fusion_ops": fusion_ops, "fusion_fixtures": fusion_fixtures}
