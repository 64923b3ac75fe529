#!/usr/bin/env python3
"""Whisper speed against whisper.cpp, openai-whisper / transformers (PyTorch) and ONNX Runtime, on the same weights.

    Tools/bench_whisper.py prepare DIR --whisper-cpp PEER [--sizes tiny,base,small]
    chrt -f 10 Tools/bench_whisper.py run DIR --whisper-cpp PEER [--sizes tiny,base,small] [--runs 3]
                                      [--threads 1,2] [--what encoder,transcribe] [--markdown FILE]

DIR holds `whisper_SIZE.safetensors` from `Tools/make_whisper_reference.py DIR --size SIZE` (trained-looking random
weights of the released shapes: no real checkpoint can be downloaded here). PEER is a whisper.cpp source tree built
with its own CMake build (`cmake -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target whisper-cli whisper-bench quantize`); it is a peer for
measuring only, never a dependency.

`prepare` writes, from each weight file: `whisper_SIZE.pt` (the same weights as an openai-whisper checkpoint),
`ggml_SIZE-f32.bin` / `-f16.bin` (whisper.cpp's own models/convert-pt-to-ggml.py on that .pt, with the installed
openai-whisper package's mel filters and tokenizer asset), `ggml_SIZE-q8_0.bin` (its quantize tool),
`whisper_SIZE.encoder.onnx` (openai-whisper's AudioEncoder through torch.onnx.export), and `long2min.wav`: the
2-minute file of the long-form reference (espeak-ng speech in two voices, with noise, a tone and silences; the
clips of Tests/Fixtures/whisper/clips joined by make_whisper_reference.py's LONG_FORM_2MIN_CYCLE).

`run` measures, at each thread count, with every engine in its own process, alternating engines run by run:
- **encoder**: one 30 s window (80 × 3000 log-Mel) through the encoder. whisper.cpp: `whisper-bench -w 0` (one
  warm-up encode, then one timed encode; its `encode time`); ours: `affect bench` (median of 3 passes after a
  warm-up); PyTorch (openai-whisper's AudioEncoder) and ONNX Runtime: median of 3 passes after a warm-up.
- **transcribe**: the 2-minute file, English, greedy, temperature 0 only (no fallback) and no timestamps, so that
  every engine decodes four 30 s windows conditioned on the previous text, each until end-of-text or the
  window's token limit (random weights rarely end early: the decoded token counts are reported beside the
  times). whisper.cpp: `whisper-cli -l en -nt -nf`; ours: `affect transcribe --no-fallback --no-timestamps`;
  PyTorch: openai-whisper's `transcribe(temperature=0, without_timestamps=True)`. Wall time of the whole process
  (model load included).
The medians of `--runs` runs are printed as a Markdown table with peak RSS (each process's maxrss from wait4).
Run it under `chrt -f 10` on a shared machine (children inherit the FIFO policy).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
AFFECT = os.environ.get("AFFECT_BIN") or os.path.join(REPO, ".build", "release", "affect")
sys.path.insert(0, HERE)


def cpu_name():
    flags = ""
    with open("/proc/cpuinfo") as f:
        text = f.read()
    name = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    fl = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
    if fl:
        have = set(fl.group(1).split())
        flags = ", ".join(x for x in ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")
                          if x in have)
    return f"{name.group(1).strip() if name else 'unknown CPU'} ({os.cpu_count()} logical cores; {flags})"


# MARK: prepare

def openai_dims(cfg):
    from whisper.model import ModelDimensions
    return ModelDimensions(n_mels=cfg["num_mel_bins"], n_audio_ctx=cfg["max_source_positions"], n_audio_state=cfg["d_model"],
                           n_audio_head=cfg["encoder_attention_heads"], n_audio_layer=cfg["encoder_layers"],
                           n_vocab=cfg["vocab_size"], n_text_ctx=cfg["max_target_positions"], n_text_state=cfg["d_model"],
                           n_text_head=cfg["decoder_attention_heads"], n_text_layer=cfg["decoder_layers"])


def openai_model(weights):
    """openai-whisper's Whisper with the weights of an Affect weight file (Hugging Face names)."""
    import whisper
    from safetensors import safe_open
    from safetensors.torch import load_file
    from make_whisper_reference import openai_to_hf
    with safe_open(weights, "np") as f:
        cfg = json.loads(f.metadata()["affect.config"])
    sd = {k: v.float() for k, v in load_file(weights).items()}
    dims = openai_dims(cfg)
    model = whisper.model.Whisper(dims)
    model.load_state_dict({k: sd[openai_to_hf(k)] for k in model.state_dict()})
    return model.eval(), dims


def prepare(args):
    import torch
    import whisper
    from make_whisper_reference import LONG_FORM_2MIN_SAMPLES, long_form_2min_recipe, long_form_audio, write_wav
    site = os.path.dirname(os.path.dirname(whisper.__file__))
    clips = os.path.join(REPO, "Tests", "Fixtures", "whisper", "clips")
    wav = os.path.join(args.dir, "long2min.wav")
    write_wav(wav, long_form_audio(clips, long_form_2min_recipe(clips), LONG_FORM_2MIN_SAMPLES))
    print("wrote", wav)
    convert = os.path.join(args.whisper_cpp, "models", "convert-pt-to-ggml.py")
    quantize = os.path.join(args.whisper_cpp, "build", "bin", "quantize")   # CMake target `quantize`
    for size in args.sizes.split(","):
        # Each step is skipped when its output exists (the quantize tool needs whisper.cpp built first).
        out = {k: os.path.join(args.dir, f"ggml_{size}-{k}.bin") for k in ("f32", "f16", "q8_0")}
        pt = os.path.join(args.dir, f"whisper_{size}.pt")
        onnx = os.path.join(args.dir, f"whisper_{size}.encoder.onnx")
        if not (os.path.exists(pt) and os.path.exists(onnx)):
            model, dims = openai_model(os.path.join(args.dir, f"whisper_{size}.safetensors"))
            torch.save({"dims": dims.__dict__, "model_state_dict": model.state_dict()}, pt)
            with torch.no_grad():
                torch.onnx.export(model.encoder, (torch.zeros(1, dims.n_mels, 3000),), onnx, input_names=["mel"],
                                  output_names=["audio"], opset_version=17, dynamo=False)
        # convert-pt-to-ggml.py writes tensors in the checkpoint's own precision and labels matrices f16 unless
        # asked for f32: the released checkpoints are float16, so the f16 model is made from a float16 copy.
        pt16 = os.path.join(args.dir, f"whisper_{size}.f16.pt")
        if not os.path.exists(out["f16"]) and not os.path.exists(pt16):
            ck = torch.load(pt, map_location="cpu")
            ck["model_state_dict"] = {k: v.half() for k, v in ck["model_state_dict"].items()}
            torch.save(ck, pt16)
        for kind, source, extra in (("f32", pt, ["use-f32"]), ("f16", pt16, [])):
            if not os.path.exists(out[kind]):
                with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                    subprocess.run([sys.executable, convert, source, site, tmp] + extra, check=True, stdout=subprocess.DEVNULL)
                    os.replace(os.path.join(tmp, "ggml-model-f32.bin" if extra else "ggml-model.bin"), out[kind])
        if not os.path.exists(out["q8_0"]):
            if os.path.exists(quantize):
                subprocess.run([quantize, out["f16"], out["q8_0"], "q8_0"], check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            else:
                print(f"{quantize} is not built yet: no q8_0 model for {size}")
        print("prepared", size)


# MARK: workers (run in their own process, so each has its own RSS)

def worker(args):
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    if args.kind == "torch-encoder":
        model, dims = openai_model(args.weights)
        x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, dims.n_mels, 3000)).astype(np.float32))
        with torch.no_grad():
            model.encoder(x)
            times = []
            for _ in range(args.passes):
                t0 = time.perf_counter()
                model.encoder(x)
                times.append((time.perf_counter() - t0) * 1000)
        print(f"median_ms={statistics.median(times):.3f}")
    elif args.kind == "ort-encoder":
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        s = ort.InferenceSession(args.weights, so, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).uniform(-1, 1, (1, 80, 3000)).astype(np.float32)
        s.run(None, {"mel": x})
        times = []
        for _ in range(args.passes):
            t0 = time.perf_counter()
            s.run(None, {"mel": x})
            times.append((time.perf_counter() - t0) * 1000)
        print(f"median_ms={statistics.median(times):.3f}")
    elif args.kind == "torch-transcribe":
        import whisper
        model, _ = openai_model(args.weights)
        from make_whisper_reference import read_wav
        audio = read_wav(args.audio)
        r = whisper.transcribe(model, audio, temperature=0.0, language="en", fp16=False, verbose=None,
                               without_timestamps=True, condition_on_previous_text=True)
        print(f"tokens={sum(len(s['tokens']) for s in r['segments'])} windows={len(r['segments'])}")


# MARK: run

def child(cmd):
    """Runs `cmd`; returns (wall seconds, peak RSS MiB, stdout, stderr)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        so, se = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{se[-2000:]}")
    return wall, usage.ru_maxrss / 1024, so, se


def encoder_engines(args, size):
    d = args.dir
    py = [sys.executable, os.path.abspath(__file__), "worker"]
    bench = os.path.join(args.whisper_cpp, "build", "bin", "whisper-bench")

    def cpp(kind):
        def f(t):
            _, rss, _, err = child([bench, "-m", os.path.join(d, f"ggml_{size}-{kind}.bin"), "-t", str(t), "-w", "0"])
            return float(re.search(r"encode time =\s*([0-9.]+) ms", err).group(1)), rss
        return f

    def ours(t):
        _, rss, out, _ = child([AFFECT, "bench", os.path.join(d, f"whisper_{size}.safetensors"), "--threads", str(t),
                                "--seconds", "0", "--min-runs", "3"])
        return float(re.findall(r"median_ms=([0-9.]+)", out)[-1]), rss

    def pyworker(kind, path):
        def f(t):
            _, rss, out, _ = child(py + [kind, path, "--threads", str(t)])
            return float(re.search(r"median_ms=([0-9.]+)", out).group(1)), rss
        return f

    # whisper.cpp's f32 models abort at this commit (ggml-cpu/ops.cpp: im2col asserts a float16 kernel), so its
    # float16 model (its default, as the released checkpoints are) is the comparison.
    engines = {"affect f32": ours}
    for kind in ("f32", "f16", "q8_0"):
        if os.path.exists(os.path.join(d, f"ggml_{size}-{kind}.bin")):
            engines[f"whisper.cpp {kind}"] = cpp(kind)
    engines["PyTorch f32"] = pyworker("torch-encoder", os.path.join(d, f"whisper_{size}.safetensors"))
    onnx = os.path.join(d, f"whisper_{size}.encoder.onnx")
    if os.path.exists(onnx):
        engines["ONNX Runtime f32"] = pyworker("ort-encoder", onnx)
    return engines


def transcribe_engines(args, size):
    d, wav = args.dir, os.path.join(args.dir, "long2min.wav")
    cli = os.path.join(args.whisper_cpp, "build", "bin", "whisper-cli")

    def cpp(kind):
        def f(t):
            with tempfile.TemporaryDirectory() as tmp:
                wall, rss, _, err = child([cli, "-m", os.path.join(d, f"ggml_{size}-{kind}.bin"), "-f", wav, "-t", str(t),
                                           "-l", "en", "-nt", "-nf", "-ojf", "-of", os.path.join(tmp, "out")])
                with open(os.path.join(tmp, "out.json"), encoding="utf-8", errors="replace") as fj:
                    segs = json.load(fj)["transcription"]
            tokens = sum(1 for s in segs for tok in s.get("tokens", []) if not tok["text"].startswith("[_"))
            return wall * 1000, rss, f"{tokens} in {len(segs)}"
        return f

    def ours(t):
        wall, rss, out, _ = child([AFFECT, "transcribe", wav, "--model", os.path.join(d, f"whisper_{size}.safetensors"),
                                   "--threads", str(t), "--language", "en", "--no-fallback", "--no-timestamps", "--format", "json"])
        segs = json.loads(out)["segments"]
        return wall * 1000, rss, f"{sum(len(s['tokens']) for s in segs)} in {len(segs)}"

    def torch_transcribe(t):
        wall, rss, out, _ = child([sys.executable, os.path.abspath(__file__), "worker", "torch-transcribe",
                                   os.path.join(d, f"whisper_{size}.safetensors"), "--threads", str(t), "--audio", wav])
        m = re.search(r"tokens=(\d+) windows=(\d+)", out)
        return wall * 1000, rss, f"{m.group(1)} in {m.group(2)}"

    engines = {"affect f32": ours}
    for kind in ("f32", "f16", "q8_0"):
        if os.path.exists(os.path.join(d, f"ggml_{size}-{kind}.bin")):
            engines[f"whisper.cpp {kind}"] = cpp(kind)
    if not args.no_torch_transcribe:
        engines["PyTorch f32 (openai-whisper)"] = torch_transcribe
    return engines


def run(args):
    rows = []
    load_before = open("/proc/loadavg").read().split()[:3]
    print(f"CPU: {cpu_name()}; load average before: {' '.join(load_before)}", flush=True)
    for what in args.what.split(","):
        for size in args.sizes.split(","):
            engines = encoder_engines(args, size) if what == "encoder" else transcribe_engines(args, size)
            for t in [int(x) for x in args.threads.split(",")]:
                results = {name: [] for name in engines}
                for r in range(args.runs):
                    for name, f in engines.items():
                        results[name].append(f(t))
                for name, res in results.items():
                    ms = statistics.median(x[0] for x in res)
                    rss = max(x[1] for x in res)
                    extra = res[-1][2] if len(res[-1]) > 2 else ""
                    rows.append((what, size, t, name, ms, [round(x[0]) for x in res], rss, extra))
                    print(f"| {what} | {size} | {t} | {name} | {ms:.0f} | {rss:.0f} | {extra} | runs {[round(x[0]) for x in res]}", flush=True)
    load_after = open("/proc/loadavg").read().split()[:3]
    lines = [f"CPU: {cpu_name()}; load average {' '.join(load_before)} before, {' '.join(load_after)} after", "",
             "| task | size | threads | engine | median ms | runs (ms) | peak RSS MiB | tokens decoded in windows |",
             "|---|---|---:|---|---:|---|---:|---|"]
    for what, size, t, name, ms, runs, rss, extra in rows:
        lines.append(f"| {what} | {size} | {t} | {name} | {ms:.0f} | {', '.join(map(str, runs))} | {rss:.0f} | {extra} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("prepare", "run"):
        s = sub.add_parser(name)
        s.add_argument("dir")
        s.add_argument("--whisper-cpp", required=True)
        s.add_argument("--sizes", default="tiny,base,small")
        if name == "run":
            s.add_argument("--runs", type=int, default=3)
            s.add_argument("--threads", default="1,2")
            s.add_argument("--what", default="encoder,transcribe")
            s.add_argument("--no-torch-transcribe", action="store_true")
            s.add_argument("--markdown")
    w = sub.add_parser("worker")
    w.add_argument("kind", choices=["torch-encoder", "ort-encoder", "torch-transcribe"])
    w.add_argument("weights")
    w.add_argument("--threads", type=int, default=1)
    w.add_argument("--passes", type=int, default=3)
    w.add_argument("--audio")
    args = p.parse_args()
    {"prepare": prepare, "run": run, "worker": worker}[args.command](args)


if __name__ == "__main__":
    main()
