import Foundation
import AffectKernels

/// Hugging Face text encoders (arch `roberta` / `bert`) and sentence-transformers folders, as
/// Tools/converters/text.py.
enum TextConverter {
    static let configKeys = ["model_type", "hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size",
                             "hidden_act", "layer_norm_eps", "max_position_embeddings", "type_vocab_size", "vocab_size",
                             "pad_token_id", "bos_token_id", "eos_token_id", "position_embedding_type", "problem_type"]
    /// More classes than any classifier has; a larger `id2label` is a malformed config.
    static let maxLabels = 1 << 20

    static func detect(_ source: String) -> String? {
        guard isDirectory(source), let t = HFFolder.modelType(source) else { return nil }
        return ["roberta", "bert"].contains(t) ? t : nil
    }

    static func convert(_ source: String, arch: String?, labels override: [String]?, tokenizerFile: String?) throws(AffectError) -> ConvertedModel {
        guard let cfg = try HFFolder.object(source, "config.json") else { throw .badInput("\(source): config.json is missing.") }
        let type = cfg["model_type"]?.stringValue
        guard let arch = arch ?? type, ["roberta", "bert"].contains(arch) else {
            throw .badInput("\(source): model_type \(cfg["model_type"]?.serialized() ?? "None") is not roberta or bert.")
        }
        let (sd, files) = try readHFWeights(source, sharded: false)
        let tensors = sd.filter { !$0.hasSuffix("position_ids") }
        var config = pick(cfg, configKeys)
        config.set("model_type", .string(arch))
        var labels: [String]?
        if tensors.names.contains(where: { $0.hasPrefix("classifier.") }) {
            let id2label = cfg["id2label"]
            let members = id2label?.objectValue ?? []
            guard members.count <= maxLabels else { throw .badInput("\(HFFolder.path(source, "config.json")): id2label is absurdly large.") }
            var l: [String] = []
            for i in 0..<members.count {
                let v = id2label?[String(i)] ?? .string("LABEL_\(i)")
                guard let s = v.stringValue else {
                    throw .badInput("\(HFFolder.path(source, "config.json")): id2label[\(i)] is not a string.")
                }
                l.append(s)
            }
            labels = l.isEmpty ? nil : l
            config.set("pooling", .string("cls"))
        }
        if let override { labels = override }
        if HFFolder.exists(HFFolder.path(source, "modules.json")) {
            if let st = try HFFolder.object(source, "sentence_bert_config.json") {
                config.set("max_seq_length", st["max_seq_length"] ?? .int(256))
            }
            let poolPath = HFFolder.path(HFFolder.path(source, "1_Pooling"), "config.json")
            if HFFolder.exists(poolPath) {
                let pool = try JSON.read(poolPath)
                guard case .object = pool else { throw .badInput("\(poolPath): not a JSON object.") }
                if let mean = pool["pooling_mode_mean_tokens"], !truthy(mean) {
                    throw .badInput("\(poolPath): only mean pooling is supported for sentence-transformers models.")
                }
            }
            let modulesPath = HFFolder.path(source, "modules.json")
            guard let modules = try JSON.read(modulesPath).arrayValue else { throw .badInput("\(modulesPath): not a JSON array.") }
            let normalize = modules.contains { ($0["type"]?.stringValue ?? "").hasSuffix("Normalize") }
            config.set("pooling", .string(normalize ? "sentence" : "mean"))
        }
        let tokenizer: String
        if let tokenizerFile {
            // Embedded as given, as text.py does with --tokenizer.
            guard let s = String(data: try readFile(tokenizerFile, limit: 1 << 30), encoding: .utf8) else {
                throw .badInput("\(tokenizerFile): not UTF-8 text.")
            }
            tokenizer = s
        } else {
            tokenizer = try tokenizerJSON(source, arch: arch).serialized(asciiOnly: false)
        }
        let weights = files[0]
        return ConvertedModel(arch: arch, tensors: tensors, config: config, labels: labels, preprocess: .object([]),
                              source: "\(basename(source))/\(basename(weights)) sha256 \(try SHA256.file(weights))",
                              tokenizer: tokenizer)
    }

    /// The folder's tokenizer as tokenizer.json, without truncation or padding: `tokenizer.json` itself, or the
    /// one transformers' fast tokenizer builds from `vocab.json` + `merges.txt` (byte-level BPE, RoBERTa) or
    /// `vocab.txt` (WordPiece, BERT).
    static func tokenizerJSON(_ source: String, arch: String) throws(AffectError) -> JSON {
        var tok: JSON
        let path = HFFolder.path(source, "tokenizer.json")
        if HFFolder.exists(path) {
            tok = try JSON.read(path)
            guard case .object = tok else { throw .badInput("\(path): not a JSON object.") }
        } else {
            tok = try TokenizerSynthesis.build(source, arch: arch)
        }
        tok.set("truncation", .null)
        tok.set("padding", .null)
        return tok
    }
}

/// What transformers 5's `RobertaTokenizer` / `BertTokenizer` serialise when built from the slow files.
enum TokenizerSynthesis {
    static let maxVocabulary = 1 << 24

    static func build(_ source: String, arch: String) throws(AffectError) -> JSON {
        let tc = try HFFolder.object(source, "tokenizer_config.json") ?? .object([])
        let stm = try HFFolder.object(source, "special_tokens_map.json") ?? .object([])
        func special(_ name: String, _ fallback: String) -> String {
            let v = tc[name] ?? stm[name]
            if let s = v?.stringValue { return s }
            if let s = v?["content"]?.stringValue { return s }
            return fallback
        }
        func flag(_ name: String, _ fallback: Bool) -> Bool { tc[name]?.boolValue ?? fallback }
        let bpe = HFFolder.exists(HFFolder.path(source, "vocab.json")) && HFFolder.exists(HFFolder.path(source, "merges.txt"))
        let wordpiece = HFFolder.exists(HFFolder.path(source, "vocab.txt"))
        if bpe, arch == "roberta" || !wordpiece {
            var vocab = try bpeVocabulary(HFFolder.path(source, "vocab.json"))
            let merges = try bpeMerges(HFFolder.path(source, "merges.txt"))
            let (bos, eos, sep, cls) = (special("bos_token", "<s>"), special("eos_token", "</s>"),
                                        special("sep_token", "</s>"), special("cls_token", "<s>"))
            let (unk, pad, mask) = (special("unk_token", "<unk>"), special("pad_token", "<pad>"), special("mask_token", "<mask>"))
            let added = addedTokens([bos, eos, unk, sep, pad, cls, mask], &vocab)
            let aps = flag("add_prefix_space", false), trim = flag("trim_offsets", true)
            return .object([
                ("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", added),
                ("normalizer", .null),
                ("pre_tokenizer", .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(aps)),
                                           ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])),
                ("post_processor", .object([("type", .string("RobertaProcessing")),
                                            ("sep", .array([.string(sep), .int(vocab.id(sep))])),
                                            ("cls", .array([.string(cls), .int(vocab.id(cls))])),
                                            ("trim_offsets", .bool(trim)), ("add_prefix_space", .bool(aps))])),
                ("decoder", .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(true)),
                                     ("trim_offsets", .bool(true)), ("use_regex", .bool(true))])),
                ("model", .object([("type", .string("BPE")), ("dropout", .null), ("unk_token", .null),
                                   ("continuing_subword_prefix", .string("")), ("end_of_word_suffix", .string("")),
                                   ("fuse_unk", .bool(false)), ("byte_fallback", .bool(false)), ("ignore_merges", .bool(false)),
                                   ("vocab", vocab.json), ("merges", .array(merges.map { .array([.string($0), .string($1)]) }))])),
            ])
        }
        if wordpiece {
            var vocab = try wordPieceVocabulary(HFFolder.path(source, "vocab.txt"))
            let (unk, sep, pad, cls, mask) = (special("unk_token", "[UNK]"), special("sep_token", "[SEP]"),
                                              special("pad_token", "[PAD]"), special("cls_token", "[CLS]"),
                                              special("mask_token", "[MASK]"))
            let added = addedTokens([unk, sep, pad, cls, mask], &vocab)
            let stripAccents: JSON = tc["strip_accents"].flatMap { $0.boolValue.map(JSON.bool) } ?? .null
            func piece(_ kind: String, _ id: String, _ type: Int) -> JSON {
                .object([(kind, .object([("id", .string(id)), ("type_id", .int(type))]))])
            }
            func entry(_ t: String) -> (String, JSON) {
                (t, .object([("id", .string(t)), ("ids", .array([.int(vocab.id(t))])), ("tokens", .array([.string(t)]))]))
            }
            return .object([
                ("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", added),
                ("normalizer", .object([("type", .string("BertNormalizer")), ("clean_text", .bool(true)),
                                        ("handle_chinese_chars", .bool(flag("tokenize_chinese_chars", true))),
                                        ("strip_accents", stripAccents), ("lowercase", .bool(flag("do_lower_case", true)))])),
                ("pre_tokenizer", .object([("type", .string("BertPreTokenizer"))])),
                ("post_processor", .object([
                    ("type", .string("TemplateProcessing")),
                    ("single", .array([piece("SpecialToken", cls, 0), piece("Sequence", "A", 0), piece("SpecialToken", sep, 0)])),
                    ("pair", .array([piece("SpecialToken", cls, 0), piece("Sequence", "A", 0), piece("SpecialToken", sep, 0),
                                     piece("Sequence", "B", 1), piece("SpecialToken", sep, 1)])),
                    ("special_tokens", .object(cls == sep ? [entry(cls)] : [entry(cls), entry(sep)])),
                ])),
                ("decoder", .object([("type", .string("WordPiece")), ("prefix", .string("##")), ("cleanup", .bool(true))])),
                ("model", .object([("type", .string("WordPiece")), ("unk_token", .string(unk)),
                                   ("continuing_subword_prefix", .string("##")), ("max_input_chars_per_word", .int(100)),
                                   ("vocab", vocab.json)])),
            ])
        }
        throw .badInput("\(source): no tokenizer.json, vocab.json + merges.txt or vocab.txt; give a tokenizer file explicitly.")
    }

    /// token -> id with the file's order kept (a later duplicate takes the id, as a Python dict does).
    struct Vocabulary {
        var ids: [String: Int] = [:]
        var next = 0
        mutating func add(_ t: String, _ id: Int) { ids[t] = id; next = max(next, id + 1) }
        func id(_ t: String) -> Int { ids[t] ?? 0 }
        /// Ordered by id, as the tokenizers library writes it.
        var json: JSON { .object(ids.sorted { ($0.value, $0.key) < ($1.value, $1.key) }.map { ($0.key, .int($0.value)) }) }
    }

    /// The special tokens as `added_tokens`, each once, by id; tokens missing from the vocabulary get new ids.
    static func addedTokens(_ specials: [String], _ vocab: inout Vocabulary) -> JSON {
        var seen = Set<String>()
        for t in specials where seen.insert(t).inserted && vocab.ids[t] == nil { vocab.add(t, vocab.next) }
        let entries = seen.map { ($0, vocab.id($0)) }.sorted { $0.1 < $1.1 }
        return .array(entries.map { t, id in
            .object([("id", .int(id)), ("content", .string(t)), ("single_word", .bool(false)), ("lstrip", .bool(false)),
                     ("rstrip", .bool(false)), ("normalized", .bool(false)), ("special", .bool(true))])
        })
    }

    static func bpeVocabulary(_ path: String) throws(AffectError) -> Vocabulary {
        guard let members = try JSON.read(path).objectValue else { throw .badInput("\(path): not a JSON object.") }
        var v = Vocabulary()
        for (t, id) in members {
            guard let i = id.intValue, i >= 0, i < maxVocabulary else {
                throw .badInput("\(path): token `\(t)` has id \(id.serialized()), not an integer in 0..<\(maxVocabulary).")
            }
            v.add(t, i)
        }
        return v
    }

    /// merges.txt as transformers reads it: stripped lines, `#` lines skipped, pairs only.
    static func bpeMerges(_ path: String) throws(AffectError) -> [(String, String)] {
        guard let text = String(data: try readFile(path, limit: 1 << 30), encoding: .utf8) else {
            throw .badInput("\(path): not UTF-8 text.")
        }
        var out: [(String, String)] = []
        for line in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }) {
            let l = line.trimmingCharacters(in: .whitespaces)
            guard !l.isEmpty, !l.hasPrefix("#") else { continue }
            let parts = l.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if parts.count == 2 { out.append((String(parts[0]), String(parts[1]))) }
        }
        return out
    }

    /// vocab.txt: one token per line, its id the line number.
    static func wordPieceVocabulary(_ path: String) throws(AffectError) -> Vocabulary {
        guard let text = String(data: try readFile(path, limit: 1 << 30), encoding: .utf8) else {
            throw .badInput("\(path): not UTF-8 text.")
        }
        var v = Vocabulary()
        // Python's universal newlines: \r\n and \r end lines too; a final newline does not start a token.
        var lines = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
            .split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        for (i, l) in lines.enumerated() { v.add(String(l), i) }
        return v
    }
}
