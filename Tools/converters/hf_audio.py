"""Hugging Face wav2vec 2.0 / HuBERT folders → one Affect weight file (arch `wav2vec2` or `hubert`).

A folder holds `config.json` (model_type `wav2vec2` or `hubert`), the weights as `model.safetensors` (or a
sharded `model.safetensors.index.json`) or `pytorch_model.bin` (read with the restricted unpickler), and
optionally `preprocessor_config.json` (sampling rate, `do_normalize`), `vocab.json` + `tokenizer_config.json`
(CTC vocabulary, word delimiter, lower-casing) for `*ForCTC` checkpoints.

Tensor names are kept as in the checkpoint (`wav2vec2.`/`hubert.` prefixes of the *ForCTC classes included).
The positional convolution's weight norm is kept too, in whichever spelling the checkpoint has
(`weight_g`/`weight_v` in hub files written by older transformers, `parametrizations.weight.original0/1` in
newer ones); the engine folds it at load. The converter checks that one complete spelling is present.
"""
import json
import os

import numpy as np

from affect_tools import unpickle
from affect_tools.io import save_weights, sha256

MODEL_TYPES = {"wav2vec2": "wav2vec2", "hubert": "hubert"}

# config.json fields the engine reads (the rest of config.json is training-only).
CONFIG_KEYS = [
    "model_type", "architectures", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_act", "layer_norm_eps", "feat_extract_norm", "feat_extract_activation", "conv_dim", "conv_kernel",
    "conv_stride", "conv_bias", "num_conv_pos_embeddings", "num_conv_pos_embedding_groups", "do_stable_layer_norm",
    "feat_proj_layer_norm", "conv_pos_batch_norm", "add_adapter", "vocab_size", "pad_token_id",
]


def _read_json(folder, name):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def detect(source):
    if not os.path.isdir(source):
        return None
    cfg = _read_json(source, "config.json")
    return MODEL_TYPES.get((cfg or {}).get("model_type"))


def read_weights(folder):
    """name -> numpy array, from whichever weight file the folder has; plus the files read."""
    st = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    from safetensors.numpy import load_file
    if os.path.exists(st):
        return load_file(st), [st]
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        out = {}
        for s in shards:
            out.update(load_file(os.path.join(folder, s)))
        return out, [os.path.join(folder, s) for s in shards]
    pt = os.path.join(folder, "pytorch_model.bin")
    if os.path.exists(pt):
        return {k: np.asarray(v) for k, v in unpickle.state_dict(pt).items()}, [pt]
    raise SystemExit(f"{folder}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def check_weight_norm(sd, folder):
    prefixes = [p for p in ("wav2vec2.", "hubert.", "") if f"{p}feature_projection.projection.weight" in sd]
    if not prefixes:
        raise SystemExit(f"{folder}: no `feature_projection.projection.weight`: not a wav2vec2/HuBERT checkpoint")
    base = f"{prefixes[0]}encoder.pos_conv_embed.conv."
    spellings = [("weight_g", "weight_v"), ("parametrizations.weight.original0", "parametrizations.weight.original1"),
                 ("weight",)]
    for names in spellings:
        if all(base + n in sd for n in names):
            return
    raise SystemExit(f"{folder}: the positional convolution has neither weight_g/weight_v nor "
                     "parametrizations.weight.original0/1 nor a plain weight")


def vocabulary(folder):
    vocab = _read_json(folder, "vocab.json")
    if vocab is None:
        return None
    # Multilingual CTC checkpoints nest one vocabulary per language; take the target language's if named.
    if vocab and all(isinstance(v, dict) for v in vocab.values()):
        tok = _read_json(folder, "tokenizer_config.json") or {}
        lang = tok.get("target_lang") or sorted(vocab)[0]
        vocab = vocab[lang]
    tokens = [None] * (max(vocab.values()) + 1)
    for t, i in vocab.items():
        tokens[i] = t
    added = _read_json(folder, "added_tokens.json") or {}
    for t, i in added.items():
        if i >= len(tokens):
            tokens.extend([None] * (i + 1 - len(tokens)))
        tokens[i] = t
    return [t if t is not None else "" for t in tokens]


def convert(source, output, arch, args):
    cfg = _read_json(source, "config.json")
    if cfg is None:
        raise SystemExit(f"{source}: config.json is missing")
    arch = arch or MODEL_TYPES.get(cfg.get("model_type"))
    sd, files = read_weights(source)
    check_weight_norm(sd, source)
    config = {k: cfg[k] for k in CONFIG_KEYS if k in cfg}

    pre = _read_json(source, "preprocessor_config.json") or {}
    preprocess = {
        "sampling_rate": pre.get("sampling_rate", 16000),
        "do_normalize": pre.get("do_normalize", True),
        "return_attention_mask": pre.get("return_attention_mask", False),
        "padding_value": pre.get("padding_value", 0.0),
        "channels": 1,
    }

    labels = None
    has_head = any(k == "lm_head.weight" for k in sd)
    if has_head:
        labels = vocabulary(source)
        if labels is None:
            raise SystemExit(f"{source}: the checkpoint has an lm_head but no vocab.json")
        n = sd["lm_head.weight"].shape[0]
        if len(labels) < n:
            labels = labels + [""] * (n - len(labels))
        labels = labels[:n]
        tok = _read_json(source, "tokenizer_config.json") or {}
        special = _read_json(source, "special_tokens_map.json") or {}

        def token(name, default):
            v = tok.get(name, special.get(name, default))
            return v.get("content", default) if isinstance(v, dict) else v
        pad = token("pad_token", "<pad>")
        config["pad_token_id"] = labels.index(pad) if pad in labels else cfg.get("pad_token_id", 0)
        config["word_delimiter_token"] = token("word_delimiter_token", "|")
        config["do_lower_case"] = bool(tok.get("do_lower_case", False))
        config["clean_up_tokenization_spaces"] = bool(tok.get("clean_up_tokenization_spaces", False))

    src = ", ".join(f"{os.path.basename(f)} sha256={sha256(f)}" for f in files)
    save_weights(output, sd, arch, config, labels=labels, preprocess=preprocess,
                 source=f"{os.path.basename(os.path.abspath(source))}: {src}")
