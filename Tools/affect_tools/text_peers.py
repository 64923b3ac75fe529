"""Peer builders for Tools/bench_peers.py: the same RoBERTa / BERT weight file as a transformers module
(`RobertaModel`, `BertModel`, or `RobertaForSequenceClassification` when it has a head), fed random ids of
`tokens` length (bench_peers' SHAPE.tokens when it has one, else 128) with a full attention mask, as
`affect bench --tokens` does."""
import json
import sys

import torch


def _tokens():
    shape = getattr(sys.modules.get("__main__"), "SHAPE", None)
    return int(getattr(shape, "tokens", 128))


def text_peer(weights, meta, batch):
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaForSequenceClassification, RobertaModel
    arch = meta["affect.arch"]
    cfg = json.loads(meta["affect.config"])
    sd = load_file(weights)
    fields = {k: v for k, v in cfg.items() if k not in ("pooling", "max_seq_length", "model_type")}
    hf = (RobertaConfig if arch == "roberta" else BertConfig)(**fields)
    if "classifier.out_proj.weight" in sd:
        hf.num_labels = sd["classifier.out_proj.weight"].shape[0]
        model = RobertaForSequenceClassification(hf)
    else:
        model = (RobertaModel if arch == "roberta" else BertModel)(hf, add_pooling_layer=False)
        prefix = arch + "."
        sd = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}
    model.load_state_dict(sd, strict=False)
    model.eval()
    tokens = min(_tokens(), cfg.get("max_seq_length", hf.max_position_embeddings - (2 if arch == "roberta" else 0)))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, hf.vocab_size - 1, (batch, tokens), generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.int64)

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            out = self.m(input_ids=input_ids, attention_mask=attention_mask)
            return out.logits if hasattr(out, "logits") else out.last_hidden_state

    return Wrapped(model), [ids, mask], ["input_ids", "attention_mask"]


PEERS = {"roberta": text_peer, "bert": text_peer}
