import Foundation
import AffectKernels

/// One tokenized text: token ids with the model's special tokens, as Hugging Face `tokenizers` produces them.
public struct Encoding: Sendable, Equatable {
    public var ids: [Int]
    public var tokens: [String]
    public init(ids: [Int], tokens: [String]) { self.ids = ids; self.tokens = tokens }
}

/// A padded batch: `[count, length]` ids and attention mask (1 = token, 0 = padding), row-major.
public struct TokenBatch: Sendable {
    public var ids: [Int]
    public var mask: [Int]
    public var count: Int
    public var length: Int
}

/// A Hugging Face tokenizer read from `tokenizer.json` (or from `vocab.json` + `merges.txt` / `vocab.txt`),
/// reproducing the `tokenizers` library token for token for the two families the text models use:
///
/// - **RoBERTa**: byte-level BPE (GPT-2 split pattern, bytes mapped to printable characters, ranked merges),
///   `<s> … </s>`.
/// - **BERT**: `BertNormalizer` (clean control characters, isolate CJK characters, strip accents, lower-case),
///   `BertPreTokenizer` (whitespace and punctuation), greedy longest-match WordPiece with `##`, `[CLS] … [SEP]`.
///
/// Added tokens (`<mask>`, `[SEP]`, …) written in the text are recognised as themselves before any of this,
/// as the library does. The pipeline is: added-token split → normalizer → pre-tokenizer → model →
/// post-processor (special tokens).
public struct Tokenizer: Sendable {
    enum Model {
        case bpe(BPE)
        case wordPiece(WordPiece)
    }

    let model: Model
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let added: AddedTokens
    /// Ids put before and after the sequence (`[CLS]` / `[SEP]`, `<s>` / `</s>`).
    public let prefixIds: [Int]
    public let suffixIds: [Int]
    /// Padding id (`[PAD]` 0 for BERT, `<pad>` 1 for RoBERTa).
    public let padId: Int
    /// id → token, for display.
    let vocabulary: [Int: String]
    /// One more than the largest id.
    public let vocabularySize: Int

    /// The largest token id accepted: ids are stored as 32-bit integers in the merge table and model inputs.
    public static let maxTokenId = Int(Int32.max)

    /// `value` as a token id: an integer in `0...maxTokenId` (JSON numbers arrive as NSNumber, possibly a
    /// fraction or 1e300, which must not reach `Int(_:)` unchecked). Throws naming `source` and `what`.
    static func tokenId(_ value: Any?, _ what: String, source: String) throws -> Int {
        guard let n = value as? NSNumber else { throw AffectError.badInput("\(source): \(what) has no numeric id.") }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), d >= 0, d <= Double(maxTokenId) else {
            throw AffectError.badInput("\(source): \(what) has id \(n), outside 0...\(maxTokenId).")
        }
        return Int(d)
    }

    static func vocabulary(_ any: Any?, _ model: String, source: String) throws -> [String: Int] {
        guard let v = any as? [String: Any] else { throw AffectError.badInput("\(source): the \(model) tokenizer has no `model.vocab`.") }
        var out: [String: Int] = [:]
        out.reserveCapacity(v.count)
        for (token, id) in v { out[token] = try tokenId(id, "token `\(token.prefix(40))`", source: source) }
        return out
    }

    /// Parses a `tokenizer.json` document. `source` names it in errors.
    public init(json data: Data, source: String) throws {
        func bad(_ what: String) -> AffectError { .badInput("\(source): \(what)") }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw bad("the tokenizer is not a JSON object (expected a Hugging Face tokenizer.json).")
        }
        guard let m = root["model"] as? [String: Any], let type = m["type"] as? String else {
            throw bad("the tokenizer has no `model.type`.")
        }
        var vocab: [String: Int] = [:]
        switch type {
        case "BPE":
            vocab = try Tokenizer.vocabulary(m["vocab"], "BPE", source: source)
            var merges: [(String, String)] = []
            for item in m["merges"] as? [Any] ?? [] {
                if let s = item as? String {
                    let parts = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                    guard parts.count == 2 else { throw bad("BPE merge `\(s)` is not two tokens separated by a space.") }
                    merges.append((String(parts[0]), String(parts[1])))
                } else if let p = item as? [String], p.count == 2 {
                    merges.append((p[0], p[1]))
                } else { throw bad("a BPE merge is neither \"a b\" nor [a, b].") }
            }
            model = .bpe(try BPE(vocab: vocab, merges: merges, unk: m["unk_token"] as? String,
                                 ignoreMerges: (m["ignore_merges"] as? Bool) ?? false, source: source))
        case "WordPiece":
            vocab = try Tokenizer.vocabulary(m["vocab"], "WordPiece", source: source)
            var maxChars = 100
            if let x = m["max_input_chars_per_word"] {
                guard let n = x as? NSNumber, n.doubleValue >= 0, n.doubleValue == n.doubleValue.rounded() else {
                    throw bad("`max_input_chars_per_word` must be a non-negative integer.")
                }
                maxChars = n.doubleValue >= 1e15 ? Int.max : Int(n.doubleValue)
            }
            model = .wordPiece(try WordPiece(vocab: vocab, unk: m["unk_token"] as? String ?? "[UNK]",
                                             prefix: m["continuing_subword_prefix"] as? String ?? "##",
                                             maxChars: maxChars, source: source))
        default:
            throw bad("tokenizer model `\(type)` is not supported (BPE and WordPiece are).")
        }
        normalizer = try Normalizer.parse(root["normalizer"], source: source)
        preTokenizer = try PreTokenizer.parse(root["pre_tokenizer"], source: source)

        var specs: [AddedTokens.Token] = []
        for item in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let content = item["content"] as? String, item["id"] != nil else {
                throw bad("an added token has no `content` or `id`.")
            }
            let id = try Tokenizer.tokenId(item["id"], "added token `\(content.prefix(40))`", source: source)
            vocab[content] = id
            specs.append(.init(content: content, id: id, normalized: (item["normalized"] as? Bool) ?? true,
                               lstrip: (item["lstrip"] as? Bool) ?? false, rstrip: (item["rstrip"] as? Bool) ?? false))
        }
        added = AddedTokens(specs)

        // Post-processor: which special tokens surround a single sequence.
        var prefix: [Int] = [], suffix: [Int] = []
        if let post = root["post_processor"] as? [String: Any] {
            (prefix, suffix) = try Tokenizer.template(post, source: source)
        }
        prefixIds = prefix; suffixIds = suffix
        var pad: Int?
        if let p = root["padding"] as? [String: Any], p["pad_id"] != nil {
            pad = try Tokenizer.tokenId(p["pad_id"], "the padding token", source: source)
        }
        padId = pad ?? vocab["<pad>"] ?? vocab["[PAD]"] ?? 0
        // A dictionary, not an array indexed by id: a file may name id 2^31 − 1 with a handful of tokens.
        var names: [Int: String] = [:]
        names.reserveCapacity(vocab.count)
        for (t, i) in vocab { names[i] = t }
        vocabulary = names
        vocabularySize = ([padId] + prefix + suffix + Array(vocab.values)).max().map { $0 + 1 } ?? 0
    }

    static func template(_ post: [String: Any], source: String) throws -> ([Int], [Int]) {
        let type = post["type"] as? String ?? ""
        switch type {
        case "RobertaProcessing", "BertProcessing":
            guard let cls = post["cls"] as? [Any], let sep = post["sep"] as? [Any], cls.last is NSNumber, sep.last is NSNumber else {
                throw AffectError.badInput("\(source): \(type) has no `cls`/`sep` tokens.")
            }
            return ([try tokenId(cls.last, "the post-processor's cls token", source: source)],
                    [try tokenId(sep.last, "the post-processor's sep token", source: source)])
        case "TemplateProcessing":
            let specials = post["special_tokens"] as? [String: [String: Any]] ?? [:]
            var prefix: [Int] = [], suffix: [Int] = [], seenSequence = false
            for piece in post["single"] as? [[String: Any]] ?? [] {
                if piece["Sequence"] != nil { seenSequence = true; continue }
                guard let sp = piece["SpecialToken"] as? [String: Any], let name = sp["id"] as? String,
                      let list = specials[name]?["ids"] as? [Any] else {
                    throw AffectError.badInput("\(source): the post-processor template names an unknown special token.")
                }
                let ids = try list.map { try tokenId($0, "special token `\(name.prefix(40))`", source: source) }
                if seenSequence { suffix += ids } else { prefix += ids }
            }
            return (prefix, suffix)
        case "Sequence":
            var prefix: [Int] = [], suffix: [Int] = []
            for p in post["processors"] as? [[String: Any]] ?? [] {
                let (a, b) = try template(p, source: source)
                prefix += a; suffix += b
            }
            return (prefix, suffix)
        case "ByteLevel":
            return ([], [])   // only adjusts offsets
        default:
            throw AffectError.badInput("\(source): post-processor `\(type)` is not supported.")
        }
    }

    /// Reads `tokenizer.json`, or the classic files of a folder (`vocab.json` + `merges.txt` for RoBERTa,
    /// `vocab.txt` for BERT) when that is what a checkpoint has.
    public init(path: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw AffectError.badInput("\(path): no such file or folder.")
        }
        let fm = FileManager.default
        if isDir.boolValue {
            let dir = URL(fileURLWithPath: path)
            if fm.fileExists(atPath: dir.appendingPathComponent("tokenizer.json").path) {
                try self.init(path: dir.appendingPathComponent("tokenizer.json").path); return
            }
            if fm.fileExists(atPath: dir.appendingPathComponent("merges.txt").path) {
                try self.init(vocabJSON: dir.appendingPathComponent("vocab.json").path,
                              merges: dir.appendingPathComponent("merges.txt").path); return
            }
            if fm.fileExists(atPath: dir.appendingPathComponent("vocab.txt").path) {
                try self.init(vocabTxt: dir.appendingPathComponent("vocab.txt").path); return
            }
            throw AffectError.badInput("\(path): no tokenizer.json, vocab.json + merges.txt or vocab.txt in this folder.")
        }
        if path.hasSuffix(".txt") { try self.init(vocabTxt: path); return }
        guard let data = fm.contents(atPath: path) else { throw AffectError.badInput("\(path): cannot read the file.") }
        try self.init(json: data, source: path)
    }

    /// RoBERTa's classic files: `vocab.json` and `merges.txt` (first line a `#version` comment), with
    /// roberta-base's special tokens as its `tokenizer.json` has them: `<s> … </s>`, and `<mask>` taking the
    /// space before it (transformers 5's `RobertaTokenizer` built from these two files alone keeps that space
    /// as a token; `Tools/convert.py` embeds whatever the library builds, so converted files follow it).
    public init(vocabJSON: String, merges: String) throws {
        guard let v = FileManager.default.contents(atPath: vocabJSON),
              let vocab = (try? JSONSerialization.jsonObject(with: v)) as? [String: NSNumber] else {
            throw AffectError.badInput("\(vocabJSON): not a JSON object of token ids.")
        }
        guard let m = FileManager.default.contents(atPath: merges), let text = String(data: m, encoding: .utf8) else {
            throw AffectError.badInput("\(merges): cannot read it as UTF-8 text.")
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true).filter { !$0.hasPrefix("#version") }
        let json: [String: Any] = [
            "model": ["type": "BPE", "vocab": vocab, "merges": lines.map(String.init)],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false],
            "post_processor": ["type": "RobertaProcessing", "cls": ["<s>", vocab["<s>"] ?? 0], "sep": ["</s>", vocab["</s>"] ?? 2]],
            "added_tokens": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"].compactMap { t in
                vocab[t].map { ["content": t, "id": $0, "normalized": t != "<mask>", "lstrip": t == "<mask>"] as [String: Any] }
            },
        ]
        try self.init(json: try JSONSerialization.data(withJSONObject: json), source: merges)
    }

    /// BERT's `vocab.txt` (one token per line, id = line number) with `BertTokenizer`'s uncased defaults.
    public init(vocabTxt: String, lowercase: Bool = true) throws {
        guard let d = FileManager.default.contents(atPath: vocabTxt), let text = String(data: d, encoding: .utf8) else {
            throw AffectError.badInput("\(vocabTxt): cannot read it as UTF-8 text.")
        }
        var vocab: [String: Int] = [:]
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            vocab[String(line.hasSuffix("\r") ? line.dropLast() : line)] = i
        }
        let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        let json: [String: Any] = [
            "model": ["type": "WordPiece", "vocab": vocab, "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 100],
            "normalizer": ["type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "lowercase": lowercase],
            "pre_tokenizer": ["type": "BertPreTokenizer"],
            "post_processor": ["type": "BertProcessing", "cls": ["[CLS]", vocab["[CLS]"] ?? 101], "sep": ["[SEP]", vocab["[SEP]"] ?? 102]],
            "added_tokens": specials.compactMap { t in vocab[t].map { ["content": t, "id": $0, "normalized": false] as [String: Any] } },
        ]
        try self.init(json: try JSONSerialization.data(withJSONObject: json), source: vocabTxt)
    }

    /// The tokenizer embedded in a text model's weight file (`affect.tokenizer`).
    public init(weights w: WeightFile) throws {
        guard let text = w.file.metadata["affect.tokenizer"] else {
            throw AffectError.badInput("\(w.path): metadata `affect.tokenizer` is missing; convert the model with its tokenizer.json.")
        }
        try self.init(json: Data(text.utf8), source: "\(w.path) (affect.tokenizer)")
    }

    /// The token string of `id` (empty for ids outside the vocabulary).
    public func token(_ id: Int) -> String { vocabulary[id] ?? "" }

    /// Token ids of `text` without special tokens and without truncation.
    public func tokenize(_ text: String) -> [Int] {
        var ids: [Int] = []
        for piece in added.split(Array(text.unicodeScalars), normalizedStage: false) {
            switch piece {
            case .token(let id): ids.append(id)
            case .text(let raw):
                let normalized = normalizer?.apply(raw) ?? raw
                for p2 in added.split(normalized, normalizedStage: true) {
                    switch p2 {
                    case .token(let id): ids.append(id)
                    case .text(let t):
                        for word in preTokenizer?.split(t) ?? [t] where !word.isEmpty {
                            switch model {
                            case .bpe(let bpe): bpe.encode(word, into: &ids)
                            case .wordPiece(let wp): wp.encode(word, into: &ids)
                            }
                        }
                    }
                }
            }
        }
        return ids
    }

    /// `text` with special tokens, truncated (keeping the start) so it has at most `maxLength` ids when given.
    public func encode(_ text: String, maxLength: Int? = nil) -> Encoding {
        var body = tokenize(text)
        if let m = maxLength { body = Array(body.prefix(max(0, m - prefixIds.count - suffixIds.count))) }
        let ids = prefixIds + body + suffixIds
        return Encoding(ids: ids, tokens: ids.map(token))
    }

    /// Encodes and right-pads a batch to its longest member (each truncated to `maxLength` first).
    public func encodeBatch(_ texts: [String], maxLength: Int? = nil) -> TokenBatch {
        pad(texts.map { encode($0, maxLength: maxLength).ids })
    }

    /// Right-pads id sequences into a batch with its attention mask.
    public func pad(_ sequences: [[Int]]) -> TokenBatch {
        let length = sequences.map(\.count).max() ?? 0
        var ids = [Int](repeating: padId, count: sequences.count * length)
        var mask = [Int](repeating: 0, count: sequences.count * length)
        for (i, s) in sequences.enumerated() {
            for (j, t) in s.enumerated() { ids[i * length + j] = t; mask[i * length + j] = 1 }
        }
        return TokenBatch(ids: ids, mask: mask, count: sequences.count, length: length)
    }
}

/// Added tokens (special tokens and user additions) recognised verbatim in the text, leftmost-longest, before
/// the normalizer (`normalized: false`) or after it (`normalized: true`), as `tokenizers`' AddedVocabulary.
struct AddedTokens {
    struct Token { var content: String; var id: Int; var normalized: Bool; var lstrip: Bool; var rstrip: Bool }
    enum Piece { case text([Unicode.Scalar]), token(Int) }

    let raw: [(scalars: [Unicode.Scalar], token: Token)]
    let normalized: [(scalars: [Unicode.Scalar], token: Token)]

    init(_ tokens: [Token]) {
        let all = tokens.filter { !$0.content.isEmpty }.map { (scalars: Array($0.content.unicodeScalars), token: $0) }
        raw = all.filter { !$0.token.normalized }
        normalized = all.filter { $0.token.normalized }
    }

    func split(_ text: [Unicode.Scalar], normalizedStage: Bool) -> [Piece] {
        let list = normalizedStage ? normalized : raw
        if list.isEmpty || text.isEmpty { return [.text(text)] }
        var pieces: [Piece] = []
        var start = 0, i = 0
        while i < text.count {
            // Longest added token starting here.
            var best: (len: Int, token: Token)?
            for (s, t) in list where s.count > (best?.len ?? 0) && i + s.count <= text.count {
                if s[0] == text[i] && text[i..<i + s.count].elementsEqual(s) { best = (s.count, t) }
            }
            guard let (len, tok) = best else { i += 1; continue }
            var left = i, right = i + len
            if tok.lstrip { while left > start && text[left - 1].properties.isWhitespace { left -= 1 } }
            if tok.rstrip { while right < text.count && text[right].properties.isWhitespace { right += 1 } }
            if left > start { pieces.append(.text(Array(text[start..<left]))) }
            pieces.append(.token(tok.id))
            start = right; i = right
        }
        if start < text.count { pieces.append(.text(Array(text[start...]))) }
        return pieces
    }
}
