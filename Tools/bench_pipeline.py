#!/usr/bin/env python3
"""The whole video pipeline: `affect analyze` against the Python pipeline it replaces, same clip, same faces.

    Tools/bench_pipeline.py CLIP [--models DIR] [--threads 1,2] [--runs 3] [--precision float32|int8] [--no-fifo] [--markdown OUT.md]
                            [--avx2-only]   # every process sees a CPU without AVX-512 (Tools/avx2only); set
                                            # AFFECT_BIN to an AFFECT_TARGET_CPU=haswell build of ours

Python side (the seed's pipeline): OpenCV decoding (`cv2.VideoCapture`, BGR → RGB), facenet-pytorch 2.6
`MTCNN(keep_all=True, min_face_size=40).detect` on every frame, each face cropped as EmotiEffLib's examples
crop it (`frame[y1:y2, x1:x2]`, integer box clamped to the frame) and all faces of a frame given to
EmotiEffLib's own `EmotiEffLibRecognizerOnnx.predict_emotions(faces, logits=False)` (cv2 resize to 224,
ImageNet normalisation, the ONNX graph without its last Gemm run by onnxruntime, then the classifier and
softmax in NumPy), per-frame probabilities written to a CSV.
Ours: `affect analyze CLIP --face-model DIR/efficientnet_b0.safetensors --tracks all --threads T -o OUT.csv`.

The face model is EmotiEffLib's `enet_b0_8_best_vgaf` architecture (timm `tf_efficientnet_b0_ns`, 8 classes)
with trained-looking random weights (EmotiEffLib's checkpoints cannot be downloaded here): built once by
`Tools/make_reference.py efficientnet_b0 DIR --batch 1 --format onnx`, which exports the ONNX file the Python
side loads and converts the same weights with `Tools/convert.py` for ours. Speed does not depend on the
values.

Each run is its own child process under GNU time (wall, user + system CPU, peak RSS of that process: model
loading and imports included, as a user pays them), each under `chrt -f 10` (SCHED_FIFO: other work on a
shared machine cannot preempt it; needs root), ours and Python alternating, medians over --runs. Both sides
get T threads (ours `--threads T`; torch.set_num_threads, cv2.setNumThreads and onnxruntime's intra-op
threads T for Python). Faces per frame are counted on both sides (ours: CSV rows with `face` = 1). The
Python child also reports its loop time alone (decode + detect + recognise, after imports and model loading).
"""
import argparse
import csv
import datetime
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from affect_tools.avx2only import MASKED, mask_avx512  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
AFFECT = os.environ.get("AFFECT_BIN") or os.path.join(REPO, ".build", "release", "affect")
TIME = "/usr/bin/time"


def python_child(clip, onnx_path, threads, out_csv):
    """The Python pipeline in this process; prints `frames=N faces=F loop_s=S`."""
    import time
    t_start = time.perf_counter()
    import cv2
    import numpy as np
    import onnxruntime as ort
    import torch
    from facenet_pytorch import MTCNN
    # EmotiEffLib imports TensorFlow when it is installed (for its engagement model only); its ONNX users need
    # not have it, and it would add seconds and hundreds of MB to this side.
    sys.modules["tensorflow"] = None
    import emotiefflib.facial_analysis as fa

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    # EmotiEffLib's recogniser builds its own InferenceSession with default options; give it T threads.
    session = ort.InferenceSession

    def limited(model, providers=None, **kw):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        return session(model, sess_options=so, providers=providers)
    ort.InferenceSession = limited
    # Its model file (normally downloaded into ~/.emotiefflib) is ours.
    fa.get_model_path_onnx = lambda name: onnx_path
    recognizer = fa.EmotiEffLibRecognizerOnnx("enet_b0_8_best_vgaf")
    mtcnn = MTCNN(keep_all=True, min_face_size=40, device="cpu")
    labels = [recognizer.idx_to_emotion_class[i] for i in range(len(recognizer.idx_to_emotion_class))]
    t_loop = time.perf_counter()
    cap = cv2.VideoCapture(clip)
    frames = faces = 0
    with open(out_csv, "w", newline="") as f, torch.no_grad():
        w = csv.writer(f)
        w.writerow(["frame", "face", "x1", "y1", "x2", "y2", *[f"p_{x}" for x in labels]])
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            boxes, _ = mtcnn.detect(rgb)
            if boxes is not None:
                h, wd = rgb.shape[:2]
                crops, kept = [], []
                for b in boxes:
                    x1, y1, x2, y2 = [int(v) for v in b]
                    x1, y1 = min(max(x1, 0), wd), min(max(y1, 0), h)
                    x2, y2 = min(max(x2, x1), wd), min(max(y2, y1), h)
                    if x2 > x1 and y2 > y1:
                        crops.append(rgb[y1:y2, x1:x2])
                        kept.append((x1, y1, x2, y2))
                if crops:
                    _, scores = recognizer.predict_emotions(crops, logits=False)
                    for k, (box, p) in enumerate(zip(kept, scores)):
                        w.writerow([frames, k, *box, *[f"{v:.6f}" for v in p]])
                    faces += len(crops)
            frames += 1
    end = time.perf_counter()
    print(f"frames={frames} faces={faces} loop_s={end - t_loop:.3f} startup_s={t_loop - t_start:.3f}")


def emotiefflib_onnx(src, dst):
    """`src` as EmotiEffLib's own ONNX files are laid out: the exporter may give the final Gemm's bias through an
    Identity node of another initializer with the same values, which EmotiEffLib's recogniser (it looks the
    Gemm's weight and bias up among the initializers) cannot read; such Identity nodes become initializers."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(src)
    inits = {t.name: t for t in m.graph.initializer}
    for node in list(m.graph.node):
        if node.op_type == "Identity" and node.input[0] in inits:
            t = numpy_helper.from_array(numpy_helper.to_array(inits[node.input[0]]), node.output[0])
            m.graph.initializer.append(t)
            m.graph.node.remove(node)
    onnx.save(m, dst)


def timed(cmd, fifo):
    """Runs `cmd` under GNU time (and chrt -f 10); returns (stdout, wall s, cpu s, peak RSS MB)."""
    with tempfile.NamedTemporaryFile(mode="r") as tf:
        prefix = ["chrt", "-f", "10"] if fifo else []
        p = subprocess.run([*prefix, TIME, "-f", "%e %U %S %M", "-o", tf.name, *cmd], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} failed ({p.returncode}): {p.stderr[-2000:]}")
        wall, user, sys_, rss = tf.read().strip().splitlines()[-1].split()
    return p.stdout, float(wall), float(user) + float(sys_), int(rss) / 1024


def ours_faces(csv_path):
    frames, faces = set(), 0
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            frames.add(row["frame"])
            faces += row["face"] == "1"
    return len(frames), faces


def probe(clip):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=width,height,nb_frames,r_frame_rate:format=duration", "-of", "default=nw=1", clip],
                         check=True, capture_output=True, text=True).stdout
    kv = dict(line.split("=", 1) for line in out.strip().splitlines())
    return kv


def cpu_name():
    name, flags = "?", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and name == "?":
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    vec = [x for x in ("avx2", "fma", "avx512f", "avx512_vnni") if x in flags]
    if MASKED[0]:
        vec = [x for x in vec if not x.startswith("avx512")] + ["AVX-512 masked by Tools/avx2only for every process"]
    return f"{name} ({', '.join(vec) or 'no AVX2'}), {os.cpu_count()} logical cores"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("clip", nargs="?")
    p.add_argument("--models", default="/tmp/affect-pipeline-models",
                   help="folder with efficientnet_b0.onnx + .safetensors (built there when missing)")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-fifo", action="store_true", help="do not run under chrt -f 10")
    p.add_argument("--ours-only", action="store_true", help="time ours alone (e.g. the real-time check)")
    p.add_argument("--precision", choices=["float32", "int8"], default="float32",
                   help="ours: `affect analyze --precision` (int8: EfficientNet's wider 1×1 convolutions in int8)")
    p.add_argument("--markdown", help="also append the table to this file")
    p.add_argument("--avx2-only", action="store_true",
                   help="mask AVX-512, AMX and AVX-VNNI from every process's `cpuid` (Tools/avx2only)")
    p.add_argument("--child", nargs=4, metavar=("CLIP", "ONNX", "THREADS", "CSV"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        python_child(args.child[0], args.child[1], int(args.child[2]), args.child[3])
        return
    if not args.clip:
        p.error("give CLIP")
    if args.avx2_only:
        mask_avx512()
    if not os.path.exists(AFFECT):
        sys.exit(f"{AFFECT} not found: run `swift build -c release` first")
    onnx_path = os.path.join(args.models, "efficientnet_b0.onnx")
    weights = os.path.join(args.models, "efficientnet_b0.safetensors")
    if not (os.path.exists(onnx_path) and os.path.exists(weights)):
        subprocess.run([sys.executable, os.path.join(HERE, "make_reference.py"), "efficientnet_b0", args.models,
                        "--batch", "1", "--format", "onnx"], check=True)
    ort_path = os.path.join(args.models, "efficientnet_b0.emotiefflib.onnx")
    if not os.path.exists(ort_path):
        emotiefflib_onnx(onnx_path, ort_path)
    fifo = not args.no_fifo
    info = probe(args.clip)
    num, den = info.get("r_frame_rate", "0/1").split("/")
    duration = float(info.get("duration", "nan"))
    threads = [int(t) for t in args.threads.split(",")]
    load_before = "%.2f %.2f %.2f" % os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    results = {(side, t): [] for t in threads for side in ("ours", "python")}
    faces = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.runs):
            for t in threads:
                order = ["ours", "python"] if r % 2 == 0 else ["python", "ours"]
                for side in order:
                    if side == "python" and args.ours_only:
                        continue
                    out_csv = os.path.join(tmp, f"{side}{t}.csv")
                    if side == "ours":
                        cmd = [AFFECT, "analyze", args.clip, "--face-model", weights, "--tracks", "all",
                               "--threads", str(t), "--precision", args.precision, "-o", out_csv]
                        _, wall, cpu, rss = timed(cmd, fifo)
                        frames, n = ours_faces(out_csv)
                        loop = None
                    else:
                        cmd = [sys.executable, os.path.abspath(__file__), "--child", args.clip, ort_path, str(t), out_csv]
                        out, wall, cpu, rss = timed(cmd, fifo)
                        kv = dict(x.split("=") for x in out.strip().splitlines()[-1].split())
                        frames, n, loop = int(kv["frames"]), int(kv["faces"]), float(kv["loop_s"])
                    results[(side, t)].append((wall, cpu, rss, loop))
                    faces[(side, t)] = (frames, n)
                    print(f"run {r + 1} threads {t} {side:6s}: {wall:7.2f} s wall, {cpu:7.2f} s CPU, {rss:6.0f} MB, "
                          f"{n} faces in {frames} frames" + (f", loop {loop:.2f} s" if loop else ""), flush=True)
    load_after = "%.2f %.2f %.2f" % os.getloadavg()

    def med(side, t, i):
        v = [x[i] for x in results[(side, t)] if x[i] is not None]
        return statistics.median(v) if v else None

    lines = [
        f"`Tools/bench_pipeline.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}`, "
        f"{started:%Y-%m-%d %H:%M} UTC, commit {git_commit()}",
        "",
        f"- Clip: {os.path.basename(args.clip)}, {info.get('width')}×{info.get('height')}, "
        f"{int(num) / int(den):.2f} fps, {duration:.2f} s",
        f"- CPU: {cpu_name()}; load average {load_before} before, {load_after} after",
        f"- Ours at `--precision {args.precision}` (`{AFFECT}`, "
        f"AFFECT_TARGET_CPU={os.environ.get('AFFECT_TARGET_CPU', 'native')}); Python's recogniser is ONNX Runtime float32",
        f"- {'Every run under `chrt -f 10`, ' if fifo else ''}{'ours alone' if args.ours_only else 'ours and Python alternating'}, median of {args.runs} runs; "
        "times and peak RSS of the whole process (imports and model loading included)",
        "",
        "| threads | ours s | Python s (loop alone) | speed-up | ours CPU s | Python CPU s | ours / Python peak RSS MB "
        "| faces/frame ours / Python | ours: video s ÷ wall s |",
        "|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for t in threads:
        ow, oc, orss = med("ours", t, 0), med("ours", t, 1), med("ours", t, 2)
        of, on = faces[("ours", t)]
        speed = duration / ow
        if args.ours_only:
            lines.append(f"| {t} | {ow:.2f} | — | — | {oc:.2f} | — | {orss:.0f} / — | {on / of:.2f} / — | {speed:.2f} |")
            continue
        pw, pc, prss, pl = med("python", t, 0), med("python", t, 1), med("python", t, 2), med("python", t, 3)
        pf, pn = faces[("python", t)]
        lines.append(f"| {t} | {ow:.2f} | {pw:.2f} ({pl:.2f}) | {pw / ow:.2f}× ({pl / ow:.2f}×) | {oc:.2f} | {pc:.2f} | "
                     f"{orss:.0f} / {prss:.0f} | {on / of:.2f} / {pn / pf:.2f} | {speed:.2f} |")
    table = "\n".join(lines)
    print()
    print(table)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(table + "\n")


def git_commit():
    try:
        return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
