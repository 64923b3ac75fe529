#!/usr/bin/env python3
"""Times Affect against ONNX Runtime and PyTorch on the same shapes, in one run, 2 threads, and prints ratios.

    Tools/bench_peers.py --ops                      # a 3×3 conv layer and a 768×3072 linear layer (+ raw sgemm)
    Tools/bench_peers.py --models W.safetensors ... # whole models (efficientnet, mobilevit, mobilefacenet, wav2vec2, hubert)
    options: --threads 2 --seconds 5 --batch 1 --audio-seconds 10

Our figure is `affect bench`'s median (release build, `.build/release/affect`); the peers' are medians of
repeated runs after warm-up, PyTorch with `torch.set_num_threads(T)`, ONNX Runtime with
`intra_op_num_threads=T, inter_op_num_threads=1`. Absolute times drift on shared machines: compare the
ratios of one run. Each model family registers a builder in PEERS: arch -> function(weights, batch) returning
(torch module, example input tuple, onnx input names).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from affect_tools.io import save_weights  # noqa: E402

AFFECT = os.path.join(REPO, ".build", "release", "affect")


def median_time(fn, seconds, min_runs=5):
    for _ in range(2):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def affect_bench(weights, args, extra=()):
    out = subprocess.run([AFFECT, "bench", weights, "--threads", str(args.threads), "--seconds", str(args.seconds),
                          "--batch", str(args.batch), *extra], check=True, capture_output=True, text=True).stdout
    last = out.strip().splitlines()[-1]
    assert last.startswith("median_ms="), out
    gflops = None
    for line in out.splitlines():
        if line.startswith("compute:"):
            gflops = float(line.split(",")[1].split()[0])
    return float(last.split("=")[1]), gflops


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


def row(name, ours, ort_ms, torch_ms, gflops=None):
    r_ort = ours / ort_ms if ort_ms else float("nan")
    r_pt = ours / torch_ms if torch_ms else float("nan")
    g = f"{gflops:8.1f}" if gflops else "       -"
    print(f"| {name:34s} | {ours:9.3f} | {ort_ms:9.3f} | {torch_ms:9.3f} | {r_ort:8.2f} | {r_pt:8.2f} | {g} |", flush=True)


def header(args):
    print(f"threads={args.threads} batch={args.batch} seconds={args.seconds}; ratio = ours / peer (below 1 = we are faster)")
    print("| model / layer                      |  ours ms  |  ORT ms   | torch ms  | vs ORT   | vs torch | GFLOP/s  |")
    print("|------------------------------------|-----------|-----------|-----------|----------|----------|----------|")


def bench_ops(args):
    tmp = tempfile.mkdtemp()
    g = torch.Generator().manual_seed(0)
    # 3×3 conv, 64 → 64 channels on 56×56 (an EfficientNet/ResNet-sized layer)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1)
    w = os.path.join(tmp, "conv.safetensors")
    save_weights(w, {"weight": conv.weight, "bias": conv.bias}, "layer",
                 {"op": "conv2d", "stride": 1, "padding": 1, "bench_shape": [1, 64, 56, 56]})
    x = torch.randn(args.batch, 64, 56, 56, generator=g)
    ours, gf = affect_bench(w, args)
    row("conv3x3 64→64 @56×56", ours, ort_time(conv, [x], ["input"], args), torch_time(conv, [x], args), gf)
    # 768 → 3072 linear on 128 tokens (a transformer FFN), and the raw cblas_sgemm of the same product
    lin = torch.nn.Linear(768, 3072)
    w = os.path.join(tmp, "linear.safetensors")
    save_weights(w, {"weight": lin.weight, "bias": lin.bias}, "layer", {"op": "linear", "bench_shape": [1, 128, 768]})
    ws = os.path.join(tmp, "sgemm.safetensors")
    save_weights(ws, {"weight": lin.weight}, "layer", {"op": "cblas_sgemm", "bench_shape": [1, 128, 768]})
    x = torch.randn(args.batch, 128, 768, generator=g)
    ours, gf = affect_bench(w, args)
    row("linear 768→3072 ×128 tokens", ours, ort_time(lin, [x], ["input"], args), torch_time(lin, [x], args), gf)
    raw, gf_raw = affect_bench(ws, args)
    print(f"\nraw cblas_sgemm (OpenBLAS, {args.threads} threads) on the same product: {raw:.3f} ms, {gf_raw:.1f} GFLOP/s;"
          f" our linear layer reaches {100 * raw / ours:.0f} % of its throughput")


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


PEERS = {"efficientnet": efficientnet_peer, "mobilevit": mobilevit_peer, "mobilefacenet": mobilefacenet_peer,
         "wav2vec2": speech_peer, "hubert": speech_peer}
from affect_tools.text_peers import PEERS as TEXT_PEERS  # noqa: E402
PEERS.update(TEXT_PEERS)


def bench_models(args):
    from safetensors import safe_open
    for w in args.models:
        with safe_open(w, "np") as f:
            meta = f.metadata()
        arch = meta.get("affect.arch")
        if arch not in PEERS:
            print(f"| {os.path.basename(w):34s} | no peer builder for arch {arch} |")
            continue
        if arch in ("wav2vec2", "hubert"):
            module, inputs, names = PEERS[arch](w, meta, args.batch, args.audio_seconds)
            ours, gf = affect_bench(w, args, ["--audio-seconds", str(args.audio_seconds)])
        else:
            module, inputs, names = PEERS[arch](w, meta, args.batch)
            ours, gf = affect_bench(w, args)
        row(f"{os.path.basename(w)} b{args.batch}", ours, ort_time(module, inputs, names, args),
            torch_time(module, inputs, args), gf)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ops", action="store_true")
    p.add_argument("--models", nargs="*", default=[])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--audio-seconds", type=float, default=10.0, help="input length for wav2vec2 / hubert")
    args = p.parse_args()
    if not os.path.exists(AFFECT):
        sys.exit(f"{AFFECT} not found: run `swift build -c release` first")
    header(args)
    if args.ops:
        bench_ops(args)
    if args.models:
        bench_models(args)


if __name__ == "__main__":
    main()
