"""Hugging Face text encoders (arch `roberta` / `bert`): RobertaModel, BertModel, RobertaForSequenceClassification,
BertForSequenceClassification, and sentence-transformers folders around a BertModel (all-MiniLM-L6-v2).

SOURCE is a model folder with `config.json` and `model.safetensors` (or `pytorch_model.bin`, read with the
restricted unpickler), plus its tokenizer: `tokenizer.json`, or `vocab.json` + `merges.txt` / `vocab.txt`
(turned into a `tokenizer.json` by the `tokenizers` library). The tokenizer is embedded as
`affect.tokenizer` with truncation and padding removed (the engine truncates to the model's maximum and
pads batches itself). A sentence-transformers folder (`modules.json`) adds `max_seq_length` and
`pooling: sentence` (masked mean, L2 normalisation) to the config.

Tensor names are kept (`roberta.encoder.layer.0...` for task models); `embeddings.position_ids` buffers are
dropped.
"""
import json
import os

from affect_tools import unpickle
from affect_tools.io import save_weights, sha256

CONFIG_KEYS = ["model_type", "hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size",
               "hidden_act", "layer_norm_eps", "max_position_embeddings", "type_vocab_size", "vocab_size",
               "pad_token_id", "bos_token_id", "eos_token_id", "position_embedding_type", "problem_type"]


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def detect(source):
    if not os.path.isdir(source):
        return None
    cfg = os.path.join(source, "config.json")
    if not os.path.exists(cfg):
        return None
    t = _read_json(cfg).get("model_type")
    return t if t in ("roberta", "bert") else None


def _state_dict(source):
    st = os.path.join(source, "model.safetensors")
    if os.path.exists(st):
        from safetensors.numpy import load_file
        return load_file(st), st
    pt = os.path.join(source, "pytorch_model.bin")
    if os.path.exists(pt):
        return unpickle.state_dict(pt), pt
    raise SystemExit(f"{source}: no model.safetensors or pytorch_model.bin")


def tokenizer_json(source):
    """The folder's tokenizer as tokenizer.json text, without truncation or padding."""
    path = os.path.join(source, "tokenizer.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            tok = json.load(f)
    else:
        from transformers import AutoTokenizer
        fast = AutoTokenizer.from_pretrained(source, use_fast=True)
        tok = json.loads(fast.backend_tokenizer.to_str())
    tok["truncation"] = None
    tok["padding"] = None
    return json.dumps(tok, ensure_ascii=False)


def convert(source, output, arch, args):
    cfg = _read_json(os.path.join(source, "config.json"))
    arch = arch or cfg.get("model_type")
    if arch not in ("roberta", "bert"):
        raise SystemExit(f"{source}: model_type {cfg.get('model_type')!r} is not roberta or bert")
    sd, weights_path = _state_dict(source)
    tensors = {k: v for k, v in sd.items() if not k.endswith("position_ids")}
    config = {k: cfg[k] for k in CONFIG_KEYS if k in cfg}
    config["model_type"] = arch
    labels = None
    if any(k.startswith("classifier.") for k in tensors):
        id2label = cfg.get("id2label") or {}
        labels = [id2label.get(str(i), id2label.get(i, f"LABEL_{i}")) for i in range(len(id2label))] or None
        config["pooling"] = "cls"
    if args.labels:
        labels = args.labels.split(",")
    modules = os.path.join(source, "modules.json")
    if os.path.exists(modules):
        st_cfg = os.path.join(source, "sentence_bert_config.json")
        if os.path.exists(st_cfg):
            config["max_seq_length"] = _read_json(st_cfg).get("max_seq_length", 256)
        pool_cfg = os.path.join(source, "1_Pooling", "config.json")
        if os.path.exists(pool_cfg) and not _read_json(pool_cfg).get("pooling_mode_mean_tokens", True):
            raise SystemExit(f"{pool_cfg}: only mean pooling is supported for sentence-transformers models")
        normalize = any(m.get("type", "").endswith("Normalize") for m in _read_json(modules))
        config["pooling"] = "sentence" if normalize else "mean"
    tok = args.tokenizer and open(args.tokenizer, encoding="utf-8").read() or tokenizer_json(source)
    save_weights(output, tensors, arch, config, labels=labels, preprocess={},
                 source=f"{os.path.basename(os.path.abspath(source))}/{os.path.basename(weights_path)} sha256 {sha256(weights_path)}",
                 tokenizer=tok)
