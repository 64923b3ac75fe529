#!/usr/bin/env python3
"""Builds the sources `affect convert` is tested on and their Tools/convert.py outputs.

    Tools/make_convert_fixtures.py [OUTDIR]            (default Tests/Fixtures/convert)
    Tools/make_convert_fixtures.py --vision [OUTDIR]   (only the MobileFaceNet / MobileViT / EfficientNet-B2 set)

Each source is a tiny model of the reference framework, saved the way users have it: Hugging Face folders
(wav2vec2 / HuBERT with and without a CTC head, one sharded; RoBERTa / BERT with and without a classifier,
with a `tokenizer.json`, with `vocab.json` + `merges.txt`, with `vocab.txt`; a sentence-transformers folder),
a tiny EfficientNet as an ONNX export, a whole pickled module and a state dict; and facenet-pytorch's legacy
(pre-zip) `pnet.pt` with its state dict as Tools/affect_tools/unpickle.py reads it (`pnet_state_dict.safetensors`). Every source SRC is converted
with Tools/convert.py into SRC.safetensors beside it; the Swift tests convert the same sources and compare.
Weights are random (seeded); only names, shapes, values and metadata matter here, not what the models compute,
except for EmotiEffLib's other backbones (`mobilefacenet`, `mobilevit`, `efficientnet_b2`: .pt, state dict and
EmotiEffLib's ONNX export), which also get `NAME.ref.safetensors`, what the framework computes, since their
ONNX exports (BatchNorm folded) are checked by running the converted model; the ONNX conversions of MobileFaceNet
and MobileViT are also proven here against those references (`check_onnx_conversions`).

    Tools/make_convert_fixtures.py --check-onnx [OUTDIR]   (only convert the committed MobileFaceNet / MobileViT ONNX
                                                           exports and check them against the references)
"""
import json
import os
import shutil
import subprocess
import sys

import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)

VOCAB_CTC = ["<pad>", "<s>", "</s>", "<unk>", "|", "E", "T", "A", "O", "N", "I", "H", "S", "R", "D", "L"]
TINY_AUDIO = dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=12, conv_dim=[4] * 3,
                  conv_kernel=[10, 3, 2], conv_stride=[5, 2, 2], num_conv_pos_embeddings=4,
                  num_conv_pos_embedding_groups=2, vocab_size=len(VOCAB_CTC), pad_token_id=0, layer_norm_eps=1e-5)
TINY_TEXT = dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=12,
                 max_position_embeddings=40)
CORPUS = ["I am so happy today!", "This is terrible, I hate it.", "What a surprise.", "We're fine, thanks.",
          "Nothing ever changes here", "Don't worry; be happy."]


def convert(src, out):
    subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), src, out], check=True)


def seeded(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval()


def audio_folder(folder, cls, config_cls, seed, ctc, fmt, stable=False):
    cfg = config_cls(**TINY_AUDIO, feat_extract_norm="layer" if stable else "group", conv_bias=stable,
                     do_stable_layer_norm=stable)
    model = seeded(cls(cfg), seed)
    os.makedirs(folder, exist_ok=True)
    if fmt == "sharded":
        model.save_pretrained(folder, max_shard_size="3KB")
    else:
        model.save_pretrained(folder)
    if fmt == "bin":
        from safetensors.torch import load_file
        st = os.path.join(folder, "model.safetensors")
        sd = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
              for k, v in load_file(st).items()}
        torch.save(sd, os.path.join(folder, "pytorch_model.bin"))
        os.remove(st)
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump({"do_normalize": True, "feature_size": 1, "padding_side": "right", "padding_value": 0.0,
                   "return_attention_mask": stable, "sampling_rate": 16000,
                   "feature_extractor_type": "Wav2Vec2FeatureExtractor"}, f, indent=2)
    if ctc:
        with open(os.path.join(folder, "vocab.json"), "w") as f:
            json.dump({t: i for i, t in enumerate(VOCAB_CTC)}, f)
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump({"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>",
                       "word_delimiter_token": "|", "do_lower_case": False,
                       "tokenizer_class": "Wav2Vec2CTCTokenizer"}, f)


def save_model(model, folder, fmt):
    """`fmt` "bin": the state dict in pytorch_model.bin (older hub folders), else model.safetensors."""
    model.save_pretrained(folder)
    if fmt == "bin":
        st = os.path.join(folder, "model.safetensors")
        from safetensors.torch import load_file
        torch.save(load_file(st), os.path.join(folder, "pytorch_model.bin"))
        os.remove(st)


def bpe_files(folder):
    """A tiny byte-level BPE trained on CORPUS: vocab.json + merges.txt."""
    from tokenizers import ByteLevelBPETokenizer
    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(CORPUS * 4, vocab_size=300, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    os.makedirs(folder, exist_ok=True)
    tok.save_model(folder)
    return len(tok.get_vocab())


def wordpiece_file(folder):
    words = sorted({w.strip(".,!;?'").lower() for s in CORPUS for w in s.split()} - {""})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", ";", "'"] + words + ["##s", "##ing"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    return len(vocab)


def roberta_folder(folder, seed, classifier, tokenizer_json, fmt="safetensors"):
    from transformers import AutoTokenizer, RobertaConfig, RobertaForSequenceClassification, RobertaModel
    n = bpe_files(folder)
    labels = {"0": "joy", "1": "anger", "2": "neutral"} if classifier else None
    cfg = RobertaConfig(**TINY_TEXT, vocab_size=n, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                        type_vocab_size=1, **({"id2label": labels, "label2id": {v: int(k) for k, v in labels.items()},
                                               "problem_type": "multi_label_classification"} if classifier else {}))
    model = seeded((RobertaForSequenceClassification if classifier else RobertaModel)(cfg), seed)
    save_model(model, folder, fmt)
    if tokenizer_json:
        fast = AutoTokenizer.from_pretrained(folder)
        fast.backend_tokenizer.save(os.path.join(folder, "tokenizer.json"))
        os.remove(os.path.join(folder, "vocab.json"))
        os.remove(os.path.join(folder, "merges.txt"))


def bert_folder(folder, seed, classifier, sentence, fmt="safetensors"):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel
    n = wordpiece_file(folder)
    labels = {"0": "negative", "1": "positive"} if classifier else None
    cfg = BertConfig(**TINY_TEXT, vocab_size=n, pad_token_id=0, type_vocab_size=2,
                     **({"id2label": labels, "label2id": {v: int(k) for k, v in labels.items()}} if classifier else {}))
    model = seeded((BertForSequenceClassification if classifier else BertModel)(cfg), seed)
    save_model(model, folder, fmt)
    if sentence:
        # all-MiniLM-L6-v2's layout: tokenizer.json, modules.json, sentence_bert_config.json, 1_Pooling.
        fast = AutoTokenizer.from_pretrained(folder)
        fast.backend_tokenizer.save(os.path.join(folder, "tokenizer.json"))
        with open(os.path.join(folder, "modules.json"), "w") as f:
            json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                       {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                       {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
                      f, indent=2)
        with open(os.path.join(folder, "sentence_bert_config.json"), "w") as f:
            json.dump({"max_seq_length": 32, "do_lower_case": False}, f)
        os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
        with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
            json.dump({"word_embedding_dimension": 8, "pooling_mode_cls_token": False,
                       "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False}, f)


def efficientnet(outdir):
    """A smaller EfficientNet than the model fixture (width 0.1): ONNX export, whole module, state dict."""
    from timm.models.efficientnet import _gen_efficientnet
    from affect_tools.random_weights import make_trained_looking
    from references.common import save_checkpoint, image_batch
    torch.manual_seed(11)
    m = _gen_efficientnet("tf_efficientnet_b0", channel_multiplier=0.1, depth_multiplier=0.2, pretrained=False,
                          num_classes=8, bn_eps=1e-3, pad_type="same")
    m = make_trained_looking(m, seed=11, calibration_input=image_batch(2, 32, 11))
    for fmt, name in (("onnx", "efficientnet.onnx"), ("pt", "efficientnet.pt"), ("state_dict", "efficientnet.state_dict.pt")):
        save_checkpoint(m, os.path.join(outdir, name), fmt, example=image_batch(1, 32, 11))


def aliases_and_renames(path):
    """(Identity nodes whose input is an initializer, initializers named by the exporter `onnx::…`)."""
    import onnx
    g = onnx.load(path).graph
    inits = {i.name for i in g.initializer}
    alias = sum(1 for n in g.node if n.op_type == "Identity" and n.input[0] in inits)
    renamed = sum(1 for i in g.initializer if i.name.startswith("onnx::"))
    return alias, renamed


def facial_fixture(outdir, name, model, size, run, label, seed):
    """Saves `model` (trained-looking weights) the three ways EmotiEffLib's files exist: a whole pickled module
    (`NAME.pt`), a state dict (`NAME.state_dict.pt`) and EmotiEffLib's ONNX export
    (training_and_examples/convert_pt_to_onnx.py: opset 11, constant folding, so BatchNorm is folded, most
    initializers renamed and equal ones aliased through Identity nodes); then `NAME.ref.safetensors`: two
    face-like inputs and the features / logits the framework computes from them."""
    import timm
    from affect_tools.io import save_reference
    from references.common import image_batch, save_checkpoint, versions
    model.eval()
    save_checkpoint(model, os.path.join(outdir, f"{name}.pt"), "pt")
    save_checkpoint(model, os.path.join(outdir, f"{name}.state_dict.pt"), "state_dict")
    onnx_path = os.path.join(outdir, f"{name}.onnx")
    save_checkpoint(model, onnx_path, "onnx", example=image_batch(1, size, seed))
    alias, renamed = aliases_and_renames(onnx_path)
    if alias == 0 or renamed == 0:
        raise SystemExit(f"{onnx_path}: the export has {alias} Identity-aliased and {renamed} renamed initializers; "
                         "EmotiEffLib's files have both")
    x = image_batch(1, size, seed + 1)
    with torch.no_grad():
        feats, logits = run(model, x)
    save_reference(os.path.join(outdir, f"{name}.ref.safetensors"), {"pixels": x},
                   {"features": feats, "logits": logits}, "pytorch", versions(torch, timm), label)


def tiny_mobilefacenet():
    """EmotiEffLib's MobileFaceNet (its own module classes, `mbf_va_mtl` layout: ConvBlock, ConvBlock grouped,
    then DepthWise / Residual stages, conv_sep, GDC, `fc`) at narrow widths. Its forward ends with `fc`, as the
    module EmotiEffLib exported did (its ONNX recognizer strips a final Gemm)."""
    from emotiefflib.backbones.mobilefacenet import (GDC, ConvBlock, DepthWise, LinearBlock, MobileFaceNet,
                                                    Residual)
    m = MobileFaceNet(False, 16, blocks=(1, 1, 1, 1), scale=1)
    k3, s2, p1 = (3, 3), (2, 2), (1, 1)
    m.layers = torch.nn.ModuleList([
        ConvBlock(3, 16, kernel=k3, stride=s2, padding=p1),
        ConvBlock(16, 16, kernel=k3, stride=(1, 1), padding=p1, groups=16),
        DepthWise(16, 16, kernel=k3, stride=s2, padding=p1, groups=24),
        Residual(16, num_block=2, groups=24, kernel=k3, stride=(1, 1), padding=p1),
        DepthWise(16, 24, kernel=k3, stride=s2, padding=p1, groups=32),
        Residual(24, num_block=1, groups=32, kernel=k3, stride=(1, 1), padding=p1),
        DepthWise(24, 24, kernel=k3, stride=s2, padding=p1, groups=32),
        Residual(24, num_block=1, groups=32, kernel=k3, stride=(1, 1), padding=p1),
    ])
    m.conv_sep = ConvBlock(24, 32, kernel=(1, 1), stride=(1, 1), padding=(0, 0))
    gdc = GDC(16)
    gdc.layers = torch.nn.Sequential(LinearBlock(32, 32, groups=32, kernel=(7, 7), stride=(1, 1), padding=(0, 0)),
                                     gdc.layers[1], torch.nn.Linear(32, 16, bias=False), torch.nn.BatchNorm1d(16))
    m.features = gdc
    m.fc = torch.nn.Linear(16, 10)
    return m


def tiny_mobilevit():
    """timm's MobileViT-v1 blocks at narrow widths (xxs layout, fewer channels and layers), 10 outputs."""
    from timm.models.byobnet import ByobNet, ByoModelCfg
    from timm.models.mobilevit import _inverted_residual_block, _mobilevit_block
    cfg = ByoModelCfg(blocks=(_inverted_residual_block(d=1, c=8, s=1, br=2.0),
                              _inverted_residual_block(d=2, c=12, s=2, br=2.0),
                              _mobilevit_block(d=1, c=16, s=2, transformer_dim=16, transformer_depth=2, patch_size=2, br=2.0),
                              _mobilevit_block(d=1, c=16, s=2, transformer_dim=16, transformer_depth=1, patch_size=2, br=2.0)),
                      stem_chs=8, stem_type="3x3", stem_pool="", downsample="", act_layer="silu", num_features=32)
    mvit = ByobNet(cfg, num_classes=10)
    for mod in mvit.modules():
        if hasattr(mod, "fused_attn"):
            mod.fused_attn = False  # opset 11 has no fused attention: the exporter of EmotiEffLib's time wrote MatMuls
    return mvit


def vision_fixtures(outdir):
    """EmotiEffLib's other backbones, small: MobileFaceNet (`mbf_va_mtl`), MobileViT (`mobilevit_va_mtl`) and
    EfficientNet-B2 (`enet_b2_8`), each as .pt, state dict and ONNX, with a framework reference."""
    import types

    import timm
    from timm.models.efficientnet import _gen_efficientnet
    from affect_tools.random_weights import make_trained_looking
    from references.common import image_batch
    from references.vision import timm_run

    # MobileFaceNet: forward ends with fc (10 outputs: 8 expressions, valence, arousal).
    torch.manual_seed(21)
    mbf = make_trained_looking(tiny_mobilefacenet(), seed=21, calibration_input=image_batch(4, 112, 21))
    with torch.no_grad():
        # Untrained PReLUs keep their 0.25: equal tensors, which the exporter aliases (as in the real files).
        for prelu in (mbf.layers[0].layers[2], mbf.layers[1].layers[2]):
            prelu.weight.fill_(0.25)
    from emotiefflib.backbones.mobilefacenet import MobileFaceNet
    mbf.forward = types.MethodType(lambda self, x: self.fc(MobileFaceNet.forward(self, x)), mbf)

    def mbf_run(model, x):
        feats = MobileFaceNet.forward(model, x)
        return feats, model.fc(feats)
    facial_fixture(outdir, "mobilefacenet", mbf, 112, mbf_run, "emotiefflib MobileFaceNet (narrow)", 21)

    # MobileViT: timm's MobileViT-v1 blocks at narrow widths (xxs layout, fewer channels and layers).
    torch.manual_seed(22)
    mvit = make_trained_looking(tiny_mobilevit(), seed=22, calibration_input=image_batch(4, 64, 22))
    facial_fixture(outdir, "mobilevit", mvit, 64, timm_run, "timm MobileViT (narrow mobilevit_xxs layout)", 22)

    # EfficientNet-B2 (tf_ variant: "same" padding, BN eps 1e-3), narrow and shallow, 8 expression classes.
    # Widths stay distinct from stage to stage (divisor 4): ONNX name recovery tells stages apart by stride and
    # width, as in the full-size models; at divisor 8 a narrow net collapses several stages to width 8.
    torch.manual_seed(23)
    b2 = _gen_efficientnet("tf_efficientnet_b2", channel_multiplier=0.12, depth_multiplier=0.24, channel_divisor=4, pretrained=False,
                           num_classes=8, bn_eps=1e-3, pad_type="same")
    b2 = make_trained_looking(b2, seed=23, calibration_input=image_batch(4, 64, 23))
    facial_fixture(outdir, "efficientnet_b2", b2, 64, timm_run, "timm tf_efficientnet_b2 (narrow)", 23)


def legacy_pnet(outdir):
    """facenet-pytorch's pnet.pt (a legacy pre-zip torch.save file) and its state dict as Python reads it."""
    import facenet_pytorch
    import numpy as np
    from safetensors.numpy import save_file
    from affect_tools import unpickle
    src = os.path.join(os.path.dirname(facenet_pytorch.__file__), "data", "pnet.pt")
    shutil.copy(src, os.path.join(outdir, "pnet.pt"))
    sd = unpickle.state_dict(src)
    save_file({k: np.ascontiguousarray(v) for k, v in sd.items()}, os.path.join(outdir, "pnet_state_dict.safetensors"))


def legacy_module(outdir):
    """A whole pickled module in the legacy (pre-zip) format, which names each module class by a ('module',
    class, source file, source) persistent id, and its state dict as torch itself gives it."""
    import numpy as np
    import torch
    from safetensors.numpy import save_file
    torch.manual_seed(31)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.PReLU(4),
                            torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
    torch.save(m, os.path.join(outdir, "legacy_module.pt"), _use_new_zipfile_serialization=False)
    save_file({k: np.ascontiguousarray(v.numpy()) for k, v in m.state_dict().items()},
              os.path.join(outdir, "legacy_module_state_dict.safetensors"))


ONNX_VISION = ("mobilefacenet.onnx", "mobilevit.onnx")


def convert_vision(outdir, names=("mobilefacenet.pt", "mobilefacenet.state_dict.pt", "mobilevit.pt", "mobilevit.state_dict.pt",
                                  "efficientnet_b2.pt", "efficientnet_b2.state_dict.pt", "efficientnet_b2.onnx") + ONNX_VISION):
    for name in names:
        convert(os.path.join(outdir, name), os.path.join(outdir, name.replace(".", "_") + ".safetensors"))
    check_onnx_conversions(outdir)


def check_onnx_conversions(outdir):
    """Proves the ONNX conversions of MobileFaceNet and MobileViT (names recovered from the graph, folded
    BatchNorms written as identity ones carrying the folded bias): the converted tensors, loaded into the pickled
    module rebuilt, compute `NAME.ref.safetensors` within 1e-4 (max abs error / max abs reference)."""
    from safetensors.torch import load_file
    from emotiefflib.backbones.mobilefacenet import MobileFaceNet
    from references.vision import timm_run

    def mbf_run(model, x):
        feats = MobileFaceNet.forward(model, x)
        return feats, model.fc(feats)

    for name, make, run in (("mobilefacenet", tiny_mobilefacenet, mbf_run), ("mobilevit", tiny_mobilevit, timm_run)):
        model = make().eval()
        sd = load_file(os.path.join(outdir, f"{name}_onnx.safetensors"))
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if unexpected or any(not m.endswith("num_batches_tracked") for m in missing):
            raise SystemExit(f"{name}_onnx.safetensors: unexpected {unexpected}, missing {missing}")
        ref = load_file(os.path.join(outdir, f"{name}.ref.safetensors"))
        with torch.no_grad():
            got = dict(zip(("features", "logits"), run(model, ref["input.pixels"])))
        for k, v in got.items():
            want = ref[f"output.{k}"]
            rel = float((v - want).abs().max() / want.abs().max())
            print(f"{name}.onnx converted: {k} max rel {rel:.2e}")
            if not rel <= 1e-4:
                raise SystemExit(f"{name}_onnx.safetensors computes {k} with relative error {rel}")


def main():
    args = [a for a in sys.argv[1:] if a not in ("--vision", "--check-onnx")]
    outdir = args[0] if args else os.path.join(os.path.dirname(TOOLS), "Tests", "Fixtures", "convert")
    if "--check-onnx" in sys.argv:
        convert_vision(outdir, ONNX_VISION)
        return
    if "--vision" in sys.argv:
        # Only the MobileFaceNet / MobileViT / EfficientNet-B2 sources, references and conversions.
        vision_fixtures(outdir)
        convert_vision(outdir)
        return
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    from transformers import HubertConfig, HubertForCTC, HubertModel, Wav2Vec2Config, Wav2Vec2ForCTC, Wav2Vec2Model
    audio_folder(os.path.join(outdir, "wav2vec2_ctc"), Wav2Vec2ForCTC, Wav2Vec2Config, 1, ctc=True, fmt="safetensors")
    audio_folder(os.path.join(outdir, "wav2vec2_bin"), Wav2Vec2ForCTC, Wav2Vec2Config, 2, ctc=True, fmt="bin")
    audio_folder(os.path.join(outdir, "wav2vec2_base"), Wav2Vec2Model, Wav2Vec2Config, 3, ctc=False, fmt="safetensors")
    audio_folder(os.path.join(outdir, "hubert_ctc"), HubertForCTC, HubertConfig, 4, ctc=True, fmt="safetensors",
                 stable=True)
    audio_folder(os.path.join(outdir, "hubert_sharded"), HubertModel, HubertConfig, 5, ctc=False, fmt="sharded",
                 stable=True)
    roberta_folder(os.path.join(outdir, "roberta_cls"), 6, classifier=True, tokenizer_json=True)
    roberta_folder(os.path.join(outdir, "roberta_bpe"), 7, classifier=False, tokenizer_json=False)
    roberta_folder(os.path.join(outdir, "roberta_bin"), 8, classifier=True, tokenizer_json=True, fmt="bin")
    bert_folder(os.path.join(outdir, "bert_cls"), 9, classifier=True, sentence=False)
    bert_folder(os.path.join(outdir, "bert_sentence"), 10, classifier=False, sentence=True)
    efficientnet(outdir)
    for name in sorted(os.listdir(outdir)):
        if name.startswith(("mobilefacenet", "mobilevit", "efficientnet_b2")):
            continue
        src = os.path.join(outdir, name)
        if name.endswith(".safetensors"):
            continue
        convert(src, os.path.join(outdir, name.replace(".", "_") + ".safetensors"))
    legacy_pnet(outdir)
    legacy_module(outdir)
    vision_fixtures(outdir)
    convert_vision(outdir)


if __name__ == "__main__":
    main()
