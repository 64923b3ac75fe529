"""References for wav2vec 2.0 / HuBERT, built with Hugging Face transformers.

No checkpoint can be downloaded here, so each model is `Wav2Vec2ForCTC(config)` / `HubertForCTC(config)` /
`Wav2Vec2Model(config)` with the hub checkpoint's config values written out below, given trained-looking random
weights (SPEC 5: norm weights and every bias drawn away from identity/zero, the positional convolution's
weight-norm gains rescaled so folding is not a no-op, sharper query/key projections than the initialiser's),
and saved as the hub folder users have (`config.json`, weights, `preprocessor_config.json`, `vocab.json`,
`tokenizer_config.json`). Half the models write the weight norm as `weight_g`/`weight_v` in a
`pytorch_model.bin` (as the hub files do), the others as `parametrizations.weight.original0/1` in
`model.safetensors` (as transformers 5 writes it), so the converter sees both spellings.

Inputs are real speech (../shared/data/speech-16k.wav) normalised by `Wav2Vec2FeatureExtractor`; batch sizes
above 1 are padded batches with an attention mask (item i is shorter by i·2.7 s). Outputs: last_hidden_state,
every hidden_states.k, logits for CTC models. CTC models also get `MODEL.bN.transcript.json`: the tokenizer's
greedy decode (`batch_decode(argmax, output_word_offsets=True)`) of each item's valid frames, and
`MODEL.speech.wav` + `MODEL.speech.transcript.json` for checking `affect transcribe` end to end.
"""
import json
import os
import wave

import numpy as np
import torch
import transformers
from transformers import (HubertConfig, HubertForCTC, Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor,
                          Wav2Vec2ForCTC, Wav2Vec2Model)

from affect_tools.io import save_reference
from affect_tools.random_weights import make_trained_looking
from references.common import TOOLS, convert, versions

SPEECH = os.path.join(os.path.dirname(TOOLS), "..", "shared", "data", "speech-16k.wav")

# facebook/wav2vec2-base-960h's vocab.json.
VOCAB_960H = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R", "D", "L", "U", "M",
              "W", "C", "F", "G", "Y", "P", "B", "V", "K", "'", "X", "J", "Q", "Z"]

CONV = dict(conv_dim=[512] * 7, conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2])

# config.json values of the hub checkpoints (those that shape the forward pass).
BASE_960H = dict(CONV, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 hidden_act="gelu", feat_extract_norm="group", feat_extract_activation="gelu", conv_bias=False,
                 do_stable_layer_norm=False, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
                 layer_norm_eps=1e-5, vocab_size=32, pad_token_id=0, bos_token_id=1, eos_token_id=2)
LARGE = dict(CONV, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
             hidden_act="gelu", feat_extract_norm="layer", feat_extract_activation="gelu", conv_bias=True,
             do_stable_layer_norm=True, num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
             layer_norm_eps=1e-5, vocab_size=32, pad_token_id=0, bos_token_id=1, eos_token_id=2)
# Tiny configurations of both families for the committed test fixtures.
TINY_GROUP = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, hidden_act="gelu",
                  feat_extract_norm="group", conv_bias=False, do_stable_layer_norm=False, conv_dim=[16] * 7,
                  conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2], num_conv_pos_embeddings=16,
                  num_conv_pos_embedding_groups=4, layer_norm_eps=1e-5, vocab_size=32, pad_token_id=0)
TINY_LAYER = dict(TINY_GROUP, feat_extract_norm="layer", conv_bias=True, do_stable_layer_norm=True)

PREPROCESS_BASE = {"do_normalize": True, "feature_size": 1, "padding_side": "right", "padding_value": 0.0,
                   "return_attention_mask": False, "sampling_rate": 16000,
                   "feature_extractor_type": "Wav2Vec2FeatureExtractor"}
PREPROCESS_LARGE = dict(PREPROCESS_BASE, return_attention_mask=True)
TOKENIZER_960H = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                  "word_delimiter_token": "|", "do_lower_case": False, "tokenizer_class": "Wav2Vec2CTCTokenizer"}


def speech():
    """speech-16k.wav as float32 in [-1, 1] (a synthetic chirp-and-noise signal when ../shared is absent)."""
    if os.path.exists(SPEECH):
        with wave.open(SPEECH) as w:
            assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    t = np.arange(12 * 16000) / 16000
    g = np.random.default_rng(5)
    return (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (1 + np.sin(3 * t)) + 0.02 * g.standard_normal(t.size)).astype(np.float32)


@torch.no_grad()
def trained_looking(model, seed):
    g = torch.Generator().manual_seed(seed + 17)
    make_trained_looking(model, seed=seed)
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        if name.endswith(("q_proj.weight", "k_proj.weight")):
            p.mul_(2.5)       # trained attention is sharper than the initialiser's near-uniform one
        if name.endswith(("parametrizations.weight.original0", "weight_g")):
            p.mul_(torch.rand(p.shape, generator=g) + 0.5)
    return model.eval()


@torch.no_grad()
def calibrate_ctc_head(model, x):
    """A trained CTC head emits the blank on most frames and the word delimiter between words. Shift the blank's
    and the delimiter's biases so that on `x` about half the frames are blank and one in eight non-blank frames
    is a delimiter: the transcript then has words, gaps and repeats, like a real one."""
    logits = model(x).logits[0]
    margin = logits.max(-1).values - logits[:, 0]
    model.lm_head.bias[0] += margin.median() + 1e-3
    logits = model(x).logits[0]
    rest = logits[logits.argmax(-1) != 0]
    margin = rest.max(-1).values - rest[:, 4]
    model.lm_head.bias[4] += torch.quantile(margin, 0.125) + 1e-3


def save_folder(model, folder, fmt, preprocess, tokenizer):
    """Writes the hub folder: `fmt` = "bin" (weight_g/weight_v in pytorch_model.bin, as hub files) or
    "safetensors" (parametrizations.weight.original0/1, as transformers 5 saves)."""
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)
    if fmt == "bin":
        from safetensors.torch import load_file
        st = os.path.join(folder, "model.safetensors")
        sd = load_file(st)
        sd = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
              for k, v in sd.items()}
        torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
        os.remove(st)
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump(preprocess, f, indent=2)
    if tokenizer is not None:
        with open(os.path.join(folder, "vocab.json"), "w") as f:
            json.dump({t: i for i, t in enumerate(VOCAB_960H)}, f)
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump(tokenizer, f, indent=2)


def batch_inputs(audio, b, seconds, extractor, shorter=2.7):
    """Item i: `seconds` − `shorter`·i seconds of speech from offset 0.5·i s, normalised by the extractor (padded)."""
    items = []
    for i in range(b):
        n = int((seconds - shorter * i) * 16000)
        start = int(0.5 * i * 16000)
        clip = audio[start:start + n]
        if clip.size < n:
            clip = np.pad(clip, (0, n - clip.size))
        items.append(clip)
    feats = extractor(items, sampling_rate=16000, padding=True, return_attention_mask=b > 1, return_tensors="pt")
    return feats["input_values"].float(), feats.get("attention_mask")


def word_offsets(tokenizer, logits, valid, seconds_per_frame):
    ids = logits.argmax(-1)
    out = []
    for i in range(ids.shape[0]):
        d = tokenizer.decode(ids[i, :valid[i]].tolist(), output_word_offsets=True)
        out.append({"text": d.text, "frame_ids": ids[i, :valid[i]].tolist(),
                    "words": [{"word": w["word"], "start": w["start_offset"] * seconds_per_frame,
                               "end": w["end_offset"] * seconds_per_frame} for w in d.word_offsets]})
    return out


def audio_reference(name, cls, config, preprocess, tokenizer, seconds, fmt, arch_model, shorter=2.7, speech_file=True):
    def build(outdir, batches, args):
        torch.manual_seed(args.seed)
        cfg_cls = HubertConfig if arch_model == "hubert" else Wav2Vec2Config
        model = trained_looking(cls(cfg_cls(**config)), args.seed)
        extractor = Wav2Vec2FeatureExtractor(**{k: v for k, v in preprocess.items() if k != "feature_extractor_type"})
        audio = speech()
        if hasattr(model, "lm_head"):
            calibrate_ctc_head(model, batch_inputs(audio, 1, seconds, extractor, shorter)[0])
        folder = os.path.join(outdir, f"{name}.hf")
        save_folder(model, folder, fmt, preprocess, tokenizer)
        convert(folder, os.path.join(outdir, f"{name}.safetensors"))
        tok = Wav2Vec2CTCTokenizer.from_pretrained(folder) if tokenizer is not None else None
        base = getattr(model, arch_model, model)
        spf = model.config.inputs_to_logits_ratio / 16000
        for b in batches:
            x, mask = batch_inputs(audio, b, seconds, extractor, shorter)
            with torch.no_grad():
                out = base(x, attention_mask=mask, output_hidden_states=True)
                outputs = {"last_hidden_state": out.last_hidden_state}
                for k, h in enumerate(out.hidden_states):
                    outputs[f"hidden_states.{k}"] = h
                if hasattr(model, "lm_head"):
                    outputs["logits"] = model(x, attention_mask=mask).logits
            inputs = {"input_values": x}
            if mask is not None:
                inputs["attention_mask"] = mask.long()
            save_reference(os.path.join(outdir, f"{name}.b{b}.ref.safetensors"), inputs, outputs, "pytorch",
                           versions(torch, transformers), f"{cls.__name__}({arch_model} config of {name})")
            if tok is not None:
                frames = out.last_hidden_state.shape[1]
                valid = [frames] * b if mask is None else base._get_feat_extract_output_lengths(mask.sum(-1)).tolist()
                with open(os.path.join(outdir, f"{name}.b{b}.transcript.json"), "w") as f:
                    json.dump(word_offsets(tok, outputs["logits"], valid, spf), f, indent=1)
        if tok is not None and speech_file:
            # End to end: the whole speech file through the extractor and the model, as `affect transcribe` runs it.
            with wave.open(os.path.join(outdir, f"{name}.speech.wav"), "wb") as w:
                w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
                w.writeframes((np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes())
            x = extractor(audio, sampling_rate=16000, return_tensors="pt")["input_values"].float()
            with torch.no_grad():
                logits = model(x).logits
            with open(os.path.join(outdir, f"{name}.speech.transcript.json"), "w") as f:
                json.dump(word_offsets(tok, logits, [logits.shape[1]], spf)[0], f, indent=1)
    return build


MODELS = {
    # facebook/wav2vec2-base-960h: Wav2Vec2ForCTC, group-norm feature encoder, post-norm encoder; 10 s.
    "wav2vec2_base": audio_reference("wav2vec2_base", Wav2Vec2ForCTC, BASE_960H, PREPROCESS_BASE, TOKENIZER_960H,
                                     10.0, "bin", "wav2vec2"),
    # facebook/hubert-large-ls960-ft: HubertForCTC, layer-norm feature encoder, stable-layer-norm encoder; 4 s.
    "hubert_large": audio_reference("hubert_large", HubertForCTC, LARGE, PREPROCESS_LARGE, TOKENIZER_960H,
                                    4.0, "safetensors", "hubert"),
    # facebook/wav2vec2-large-lv60: Wav2Vec2Model (no head); 4 s.
    "wav2vec2_large": audio_reference("wav2vec2_large", Wav2Vec2Model, LARGE, PREPROCESS_LARGE, None,
                                      4.0, "bin", "wav2vec2"),
    # HuBERT base (facebook/hubert-base-ls960 shape: group norm, post-norm) for the speed table.
    "hubert_base": audio_reference("hubert_base", HubertForCTC, dict(BASE_960H), PREPROCESS_BASE, TOKENIZER_960H,
                                   10.0, "safetensors", "hubert"),
    # Tiny configurations of both families (committed under Tests/Fixtures/audio).
    "wav2vec2_tiny": audio_reference("wav2vec2_tiny", Wav2Vec2ForCTC, TINY_GROUP, PREPROCESS_BASE, TOKENIZER_960H,
                                     0.8, "bin", "wav2vec2", shorter=0.3, speech_file=False),
    "hubert_tiny": audio_reference("hubert_tiny", HubertForCTC, TINY_LAYER, PREPROCESS_LARGE, TOKENIZER_960H,
                                   0.8, "safetensors", "hubert", shorter=0.3, speech_file=False),
}
