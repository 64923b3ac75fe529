#!/usr/bin/env python3
"""References for Whisper (issue 19), from transformers and openai-whisper.

    Tools/make_whisper_reference.py OUTDIR [--size fixture|tiny|base|small|tiny.en|base.en|small.en] [--seed 0]
                                    [--clips N] [--f16] [--logits-tokens 6]

No checkpoint can be downloaded here, so the model is `WhisperForConditionalGeneration(config)` with the hub
checkpoint's shapes (or the reduced `fixture` shape for committed tests) and trained-looking random weights:
linear layers drawn with the spread of trained ones (std 1/sqrt(fan_in), larger than the initialiser's 0.02, so
attention is peaked and the logits far apart), norms and biases away from identity and zero (SPEC 5), the
token embedding wide enough that greedy decoding has clear winners. The same weights are loaded into
openai-whisper's `Whisper` (names mapped as its checkpoints spell them), so its `decode()` is the reference for
token ids.

Written to OUTDIR:
- `whisper_SIZE.safetensors`: the Affect weight file (arch `whisper`, Hugging Face names without `model.`,
  `affect.config` = the HF config, `affect.tiktoken` = openai-whisper's tokenizer asset). `--f16` stores the
  tensors as float16 (the references are computed from the rounded weights).
- `whisper_SIZE.pt`: the same weights as an openai-whisper checkpoint (`{"dims", "model_state_dict"}`), and
  `whisper_SIZE.hf/`: as a Hugging Face folder (config.json + model.safetensors), for the converters.
- `clips/*.wav`: 16 kHz clips made with espeak-ng and ffmpeg (two voices, speech with noise, silence, a tone).
- `whisper_SIZE.ref.safetensors`: input.audio (first clip, 16 kHz), output.input_features
  (`log_mel_spectrogram(pad_or_trim(audio))`), output.encoder_last_hidden_state, input.decoder_input_ids and
  output.logits (transformers, for the first `--logits-tokens` tokens of openai-whisper's greedy decode).
- `whisper_SIZE.transcribe.json`: openai-whisper's `transcribe()` (temperature 0, greedy and beam 5) on the
  clips joined with silences (`LONG_FORM`), segments with times and tokens.
- `whisper_SIZE.transcribe2min.json` (`--transcribe-2min`): the same on the 2-minute file (LONG_FORM_2MIN_CYCLE).
- `whisper_SIZE.decode.json`: for every clip and option set, openai-whisper's `decode()` result (tokens, text,
  avg_logprob, no_speech_prob, language, temperature).
"""
import argparse
import json
import os
import subprocess
import sys
import wave

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import transformers  # noqa: E402
import whisper  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from transformers import WhisperConfig, WhisperForConditionalGeneration  # noqa: E402
from whisper.model import ModelDimensions  # noqa: E402

from affect_tools.io import save_reference  # noqa: E402

# (d_model, layers, heads) of the released checkpoints; the fixture is a reduced shape for committed tests.
SIZES = {
    "fixture": (16, 2, 2, 51865),
    "tiny": (384, 4, 6, 51865), "base": (512, 6, 8, 51865), "small": (768, 12, 12, 51865),
    "tiny.en": (384, 4, 6, 51864), "base.en": (512, 6, 8, 51864), "small.en": (768, 12, 12, 51864),
}

# openai-whisper checkpoint names -> Hugging Face names (the mapping of transformers' convert_openai_to_hf).
OPENAI_TO_HF = [
    ("encoder.positional_embedding", "encoder.embed_positions.weight"),
    ("decoder.positional_embedding", "decoder.embed_positions.weight"),
    ("decoder.token_embedding", "decoder.embed_tokens"),
    ("encoder.ln_post", "encoder.layer_norm"), ("decoder.ln.", "decoder.layer_norm."),
    ("blocks", "layers"), (".cross_attn_ln", ".encoder_attn_layer_norm"), (".attn_ln", ".self_attn_layer_norm"),
    (".mlp_ln", ".final_layer_norm"), (".mlp.0", ".fc1"), (".mlp.2", ".fc2"),
    (".cross_attn.query", ".encoder_attn.q_proj"), (".cross_attn.key", ".encoder_attn.k_proj"),
    (".cross_attn.value", ".encoder_attn.v_proj"), (".cross_attn.out", ".encoder_attn.out_proj"),
    (".attn.query", ".self_attn.q_proj"), (".attn.key", ".self_attn.k_proj"), (".attn.value", ".self_attn.v_proj"),
    (".attn.out", ".self_attn.out_proj"),
]


def openai_to_hf(name):
    for a, b in OPENAI_TO_HF:
        name = name.replace(a, b)
    return name


def hf_config(size):
    d, layers, heads, vocab = SIZES[size]
    return WhisperConfig(vocab_size=vocab, num_mel_bins=80, d_model=d, encoder_layers=layers, decoder_layers=layers,
                         encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=4 * d,
                         decoder_ffn_dim=4 * d, max_source_positions=1500, max_target_positions=448,
                         activation_function="gelu", scale_embedding=False, tie_word_embeddings=True,
                         decoder_start_token_id=50258 if vocab >= 51865 else 50257,
                         pad_token_id=50257 if vocab >= 51865 else 50256, bos_token_id=50257 if vocab >= 51865 else 50256,
                         eos_token_id=50257 if vocab >= 51865 else 50256)


@torch.no_grad()
def trained_looking(model, seed):
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if "embed_positions" in name and "encoder" in name:
            continue                                   # sinusoids, as in every checkpoint
        if name.endswith("layer_norm.weight"):
            p.copy_(torch.rand(p.shape, generator=g) * 1.2 + 0.4)
        elif name.endswith(".bias"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        elif name.endswith("embed_tokens.weight"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.25)
        elif name.endswith("embed_positions.weight"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        elif p.dim() >= 2:
            fan_in = p[0].numel()
            scale = 2.0 if name.endswith(("q_proj.weight", "k_proj.weight")) else 1.0
            p.copy_(torch.randn(p.shape, generator=g) * scale / fan_in ** 0.5)
    return model.eval()


def make_clips(folder, count):
    """Clips at 16 kHz: espeak-ng speech in two voices, speech with noise, silence, a tone."""
    os.makedirs(folder, exist_ok=True)
    specs = [
        ("speech-us", ["espeak-ng", "-v", "en-us", "-s", "150", "The quick brown fox jumps over the lazy dog."]),
        ("speech-f", ["espeak-ng", "-v", "en+f3", "-s", "130", "Hello, how are you feeling today?"]),
        ("speech-noise", None), ("silence", None), ("tone", None),
    ][:count]
    out = []
    for name, cmd in specs:
        path = os.path.join(folder, name + ".wav")
        if name == "speech-noise":
            src = os.path.join(folder, "speech-us.wav")
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, "-f", "lavfi", "-i",
                            "anoisesrc=color=white:amplitude=0.05:seed=7:r=16000", "-filter_complex",
                            "[0:a][1:a]amix=inputs=2:duration=first:normalize=0", "-ac", "1", "-ar", "16000",
                            "-sample_fmt", "s16", path], check=True)
        elif name == "silence":
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "2",
                            "-sample_fmt", "s16", path], check=True)
        elif name == "tone":
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000",
                            "-t", "2", "-af", "volume=0.5", "-sample_fmt", "s16", path], check=True)
        else:
            raw = path + ".22k.wav"
            subprocess.run(cmd[:1] + ["-w", raw] + cmd[1:], check=True)
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", raw, "-ac", "1", "-ar", "16000", "-sample_fmt", "s16", path],
                           check=True)
            os.remove(raw)
        out.append(path)
    return out


def read_wav(path):
    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


OPTION_SETS = {
    "greedy_notimestamps": dict(temperature=0.0, without_timestamps=True),
    "greedy_timestamps": dict(temperature=0.0),
    "beam5": dict(temperature=0.0, beam_size=5, without_timestamps=True),
    "beam5_patience2": dict(temperature=0.0, beam_size=5, patience=2.0),
}


# The long-form reference: the clips with silences between them (about 42 s, two windows and more).
LONG_FORM = [("speech-us.wav", 10.0), ("speech-f.wav", 12.0), ("speech-noise.wav", 0.0), ("tone.wav", 8.0)]


# The 2-minute long-form reference (and the benchmark's file): speech in both voices, with noise, a tone and
# silences between them, cycled and cut at exactly 120 s, so every one of its four windows holds speech.
LONG_FORM_2MIN_CYCLE = [("speech-us.wav", 1.5), ("speech-f.wav", 2.0), ("speech-noise.wav", 1.0), ("tone.wav", 0.5),
                        ("speech-f.wav", 3.0), ("silence.wav", 0.0), ("speech-us.wav", 2.5)]
LONG_FORM_2MIN_SAMPLES = 120 * 16000


def long_form_audio(clip_folder, recipe=None, samples=None):
    """The clips of `recipe` (default LONG_FORM) each followed by its gap of silence, cut at `samples`."""
    parts = []
    for clip, gap in recipe or LONG_FORM:
        parts += [read_wav(os.path.join(clip_folder, clip)), np.zeros(int(gap * 16000), dtype=np.float32)]
    audio = np.concatenate(parts)
    return audio if samples is None else audio[:samples]


def long_form_2min_recipe(clip_folder):
    """LONG_FORM_2MIN_CYCLE repeated until it passes 120 s."""
    recipe, total = [], 0
    while total < LONG_FORM_2MIN_SAMPLES:
        for clip, gap in LONG_FORM_2MIN_CYCLE:
            recipe.append((clip, gap))
            total += read_wav(os.path.join(clip_folder, clip)).size + int(gap * 16000)
    return recipe


def write_wav(path, audio):
    """16-bit mono 16 kHz (the clips are 16-bit, so the joined file round-trips exactly)."""
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.round(audio * 32768).astype("<i2").tobytes())


def transcribe_reference(outdir, name, two_minutes=False):
    """openai-whisper's transcribe() at temperature 0 (sampling at higher temperatures cannot be reproduced
    outside torch) on the long-form audio, with the weights of OUTDIR/NAME.safetensors. `two_minutes`: the
    2-minute file instead (NAME.transcribe2min.json)."""
    from safetensors.torch import load_file
    from safetensors import safe_open
    with safe_open(os.path.join(outdir, name + ".safetensors"), "np") as f:
        cfg = json.loads(f.metadata()["affect.config"])
    sd = {k: v.float() for k, v in load_file(os.path.join(outdir, name + ".safetensors")).items()}
    dims = ModelDimensions(n_mels=cfg["num_mel_bins"], n_audio_ctx=cfg["max_source_positions"], n_audio_state=cfg["d_model"],
                           n_audio_head=cfg["encoder_attention_heads"], n_audio_layer=cfg["encoder_layers"],
                           n_vocab=cfg["vocab_size"], n_text_ctx=cfg["max_target_positions"], n_text_state=cfg["d_model"],
                           n_text_head=cfg["decoder_attention_heads"], n_text_layer=cfg["decoder_layers"])
    ow = whisper.model.Whisper(dims)
    ow.load_state_dict({k: sd[openai_to_hf(k)] for k in ow.state_dict()})
    ow.eval()
    clips = os.path.join(outdir, "clips")
    recipe, samples = LONG_FORM, None
    if two_minutes:
        recipe, samples = long_form_2min_recipe(clips), LONG_FORM_2MIN_SAMPLES
    audio = long_form_audio(clips, recipe, samples)
    out = {}
    for set_name, kw in {"greedy": {}, "beam5": {"beam_size": 5}}.items():
        r = whisper.transcribe(ow, audio, temperature=0.0, language="en", fp16=False, verbose=None, **kw)
        out[set_name] = {"text": r["text"], "language": r["language"],
                         "segments": [{k: s[k] for k in ("id", "seek", "start", "end", "text", "tokens", "avg_logprob",
                                                           "no_speech_prob", "compression_ratio", "temperature")}
                                      for s in r["segments"]]}
    with open(os.path.join(outdir, name + (".transcribe2min.json" if two_minutes else ".transcribe.json")), "w") as f:
        json.dump({"clips": recipe, "samples": int(audio.size), "results": out}, f, indent=1)
    print({k: len(v["segments"]) for k, v in out.items()})


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir")
    p.add_argument("--size", default="fixture", choices=sorted(SIZES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clips", type=int, default=5)
    p.add_argument("--f16", action="store_true", help="store the weight file's tensors as float16")
    p.add_argument("--logits-tokens", type=int, default=3)
    p.add_argument("--no-checkpoints", action="store_true", help="skip the .pt and Hugging Face folder (committed fixtures)")
    p.add_argument("--no-beam", action="store_true", help="skip the beam-search references (slow for large sizes)")
    p.add_argument("--transcribe-only", action="store_true",
                   help="only NAME.transcribe.json (transcribe() on the clips with silences) from an existing OUTDIR")
    p.add_argument("--transcribe-2min", action="store_true",
                   help="only NAME.transcribe2min.json (transcribe() on the 2-minute file) from an existing OUTDIR")
    p.add_argument("--no-transcribe", action="store_true", help="skip the transcribe() reference")
    args = p.parse_args()
    if args.transcribe_only or args.transcribe_2min:
        transcribe_reference(args.outdir, f"whisper_{args.size}", two_minutes=args.transcribe_2min)
        return
    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(args.outdir, exist_ok=True)
    name = f"whisper_{args.size}"
    config = hf_config(args.size)
    model = trained_looking(WhisperForConditionalGeneration(config), args.seed)
    if args.f16:
        with torch.no_grad():
            for prm in model.parameters():
                prm.copy_(prm.half().float())
    model.eval()

    # The same weights as openai-whisper's model.
    d, layers, heads, vocab = SIZES[args.size]
    dims = ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=d, n_audio_head=heads, n_audio_layer=layers,
                           n_vocab=vocab, n_text_ctx=448, n_text_state=d, n_text_head=heads, n_text_layer=layers)
    ow = whisper.model.Whisper(dims)
    hf_sd = {k[len("model."):] if k.startswith("model.") else k: v for k, v in model.state_dict().items()}
    ow_sd = {}
    for k in ow.state_dict():
        if k == "decoder.token_embedding.weight":
            ow_sd[k] = hf_sd["decoder.embed_tokens.weight"]
        elif k.endswith("positional_embedding"):
            ow_sd[k] = hf_sd[openai_to_hf(k)]
        else:
            ow_sd[k] = hf_sd[openai_to_hf(k)]
    ow.load_state_dict(ow_sd)
    ow.eval()
    if not args.no_checkpoints:
        torch.save({"dims": dims.__dict__, "model_state_dict": ow.state_dict()}, os.path.join(args.outdir, name + ".pt"))
        model.save_pretrained(os.path.join(args.outdir, name + ".hf"))

    # The Affect weight file.
    multilingual = vocab >= 51865
    asset = os.path.join(os.path.dirname(whisper.__file__), "assets", ("multilingual" if multilingual else "gpt2") + ".tiktoken")
    keys = ["vocab_size", "num_mel_bins", "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
            "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "max_source_positions",
            "max_target_positions", "activation_function", "scale_embedding", "decoder_start_token_id"]
    cfg = {k: getattr(config, k) for k in keys}
    arrays = {}
    for k, v in hf_sd.items():
        if k == "proj_out.weight":
            continue                                   # tied to decoder.embed_tokens
        a = v.detach().numpy()
        arrays[k] = np.ascontiguousarray(a.astype(np.float16 if args.f16 else np.float32))
    meta = {"affect.format": "1", "affect.arch": "whisper", "affect.config": json.dumps(cfg),
            "affect.source": f"make_whisper_reference.py --size {args.size} --seed {args.seed}",
            "affect.tiktoken": open(asset).read()}
    save_file(arrays, os.path.join(args.outdir, name + ".safetensors"), metadata=meta)

    clips = make_clips(os.path.join(args.outdir, "clips"), args.clips)
    tokenizer = whisper.tokenizer.get_tokenizer(multilingual, num_languages=ow.num_languages,
                                                language="en" if multilingual else None, task="transcribe")
    results = {"versions": {"openai-whisper": whisper.__version__, "torch": torch.__version__,
                            "transformers": transformers.__version__}, "clips": {}}
    first_tokens = None
    for path in clips:
        audio = read_wav(path)
        mel = whisper.log_mel_spectrogram(torch.from_numpy(whisper.pad_or_trim(audio)))
        entry = {}
        sets = dict(OPTION_SETS)
        if args.no_beam:
            sets = {k: v for k, v in sets.items() if "beam" not in k}
        if multilingual:
            sets["greedy_detect_language"] = dict(temperature=0.0, without_timestamps=True)
        for set_name, opts in sets.items():
            lang = None if set_name == "greedy_detect_language" else "en"
            r = whisper.decode(ow, mel, whisper.DecodingOptions(language=lang, fp16=False, **opts))
            entry[set_name] = {"options": dict(opts, language=lang), "tokens": r.tokens, "text": r.text,
                               "avg_logprob": r.avg_logprob, "no_speech_prob": r.no_speech_prob,
                               "language": r.language, "temperature": r.temperature,
                               "compression_ratio": r.compression_ratio}
        results["clips"][os.path.basename(path)] = entry
        if first_tokens is None:
            first_tokens = list(tokenizer.sot_sequence_including_notimestamps) + entry["greedy_notimestamps"]["tokens"]
            with torch.no_grad():
                ids = torch.tensor([first_tokens[:args.logits_tokens]])
                out = model(input_features=mel[None], decoder_input_ids=ids)
            save_reference(os.path.join(args.outdir, name + ".ref.safetensors"),
                           {"audio": audio[None], "decoder_input_ids": ids.numpy().astype(np.int64)},
                           {"input_features": mel[None].numpy(), "encoder_last_hidden_state": out.encoder_last_hidden_state,
                            "logits": out.logits},
                           "transformers+openai-whisper", f"transformers {transformers.__version__} openai-whisper {whisper.__version__}",
                           name)
    with open(os.path.join(args.outdir, name + ".decode.json"), "w") as f:
        json.dump(results, f, indent=1)
    for clip, entry in results["clips"].items():
        print(clip, {k: len(v["tokens"]) for k, v in entry.items()})
    if not args.no_transcribe:
        transcribe_reference(args.outdir, name)


if __name__ == "__main__":
    main()
