"""Text model references (arch roberta / bert): registered in Tools/make_reference.py."""
from references import text_corpus

MODELS = {
    "tokenizer_corpus": text_corpus.build,
}
