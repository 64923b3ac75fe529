import Foundation
import AffectKernels

/// Whisper's tokenizer as openai-whisper builds it on `tiktoken`: byte-level BPE over GPT-2's split pattern
/// (`gpt2.tiktoken` for English-only models, `multilingual.tiktoken` otherwise), followed by the special tokens
///
/// ```
/// <|endoftext|> <|startoftranscript|> <|en|> … (one per language) <|translate|> <|transcribe|> <|startoflm|>
/// <|startofprev|> <|nospeech|> <|notimestamps|> <|0.00|> <|0.02|> … <|30.00|>
/// ```
/// numbered from the first id after the mergeable tokens. Read from an openai-whisper `.tiktoken` asset (lines
/// `base64(token bytes) rank`) or from a Hugging Face `tokenizer.json` / `vocab.json` (tokens spelled with GPT-2's
/// byte-to-character table; added tokens checked against the layout above).
///
/// Every file is untrusted: sizes are bounded, ranks must be the ids `0..<n` each once, and bad input throws
/// one sentence naming the source.
public struct WhisperTokenizer: Sendable {
    /// openai-whisper's `LANGUAGES` codes, in token order.
    public static let languageCodes = ["en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue"]

    /// Largest tokenizer file read (the real assets are under 1 MB, tokenizer.json about 2.5 MB).
    public static let maxFileBytes = 32 << 20
    /// Most mergeable tokens accepted.
    public static let maxTokens = 1 << 20
    /// Longest token in bytes.
    public static let maxTokenBytes = 1024

    /// Bytes of each mergeable token, by id.
    let tokenBytes: [[UInt8]]
    let ranks: [[UInt8]: Int]
    /// Special token name → id.
    public let specials: [String: Int]
    let specialNames: [Int: String]
    /// Languages this vocabulary has tokens for (openai-whisper's `num_languages`).
    public let languages: [String]

    public var eot: Int { specials["<|endoftext|>"]! }
    public var sot: Int { specials["<|startoftranscript|>"]! }
    public var translate: Int { specials["<|translate|>"]! }
    public var transcribe: Int { specials["<|transcribe|>"]! }
    public var sotLM: Int { specials["<|startoflm|>"]! }
    public var sotPrev: Int { specials["<|startofprev|>"]! }
    public var noSpeech: Int { specials["<|nospeech|>"]! }
    public var noTimestamps: Int { specials["<|notimestamps|>"]! }
    public var timestampBegin: Int { specials["<|0.00|>"]! }
    /// One more than the largest id (the last timestamp).
    public var vocabularySize: Int { tokenBytes.count + specials.count }
    /// Language token ids in `languages` order.
    public var languageTokens: [Int] { languages.map { specials["<|\($0)|>"]! } }

    /// The language's token, if the vocabulary has one.
    public func languageToken(_ code: String) -> Int? {
        languages.contains(code) ? specials["<|\(code)|>"] : nil
    }

    /// openai-whisper's special-token layout after `base` mergeable tokens.
    static func specialLayout(base: Int, languages: Int) -> [String] {
        var names = ["<|endoftext|>", "<|startoftranscript|>"]
        names += languageCodes.prefix(languages).map { "<|\($0)|>" }
        names += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
        names += (0...1500).map { String(format: "<|%.2f|>", Double($0) * 0.02) }
        return names
    }

    init(tokens: [[UInt8]], languages: Int, source: String) throws {
        guard (0 ... Self.languageCodes.count).contains(languages) else {
            throw AffectError.badInput("\(source): a Whisper vocabulary with \(languages) languages; openai-whisper knows \(Self.languageCodes.count).")
        }
        guard !tokens.isEmpty else { throw AffectError.badInput("\(source): the tokenizer has no tokens.") }
        var ranks: [[UInt8]: Int] = [:]
        ranks.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            guard ranks.updateValue(i, forKey: t) == nil else {
                throw AffectError.badInput("\(source): token \(i) repeats the bytes of an earlier token.")
            }
        }
        // Byte-level BPE must be able to spell every byte.
        for b in 0...255 where ranks[[UInt8(b)]] == nil {
            throw AffectError.badInput("\(source): the tokenizer has no token for the byte \(b), so it cannot spell every text.")
        }
        tokenBytes = tokens
        self.ranks = ranks
        var specials: [String: Int] = [:], names: [Int: String] = [:]
        for (i, name) in Self.specialLayout(base: tokens.count, languages: languages).enumerated() {
            specials[name] = tokens.count + i; names[tokens.count + i] = name
        }
        self.specials = specials
        specialNames = names
        self.languages = Array(Self.languageCodes.prefix(languages))
    }

    /// An openai-whisper `.tiktoken` asset: one `base64 rank` line per token, ranks `0..<n` in order.
    public init(tiktoken text: String, languages: Int, source: String) throws {
        guard text.utf8.count <= Self.maxFileBytes else {
            throw AffectError.badInput("\(source): the tokenizer is over \(Self.maxFileBytes >> 20) MB.")
        }
        var tokens: [[UInt8]] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let parts = line.split(separator: " ")
            // multilingual.tiktoken spells one token as `=`: the empty string, as Python's b64decode reads it.
            guard parts.count == 2, let bytes = parts[0] == "=" ? Data() : Data(base64Encoded: String(parts[0])), let rank = Int(parts[1]) else {
                throw AffectError.badInput("\(source): line \(n + 1) is not `base64 rank`.")
            }
            guard rank == tokens.count else {
                throw AffectError.badInput("\(source): line \(n + 1) has rank \(rank), expected \(tokens.count) (ranks must count up from 0).")
            }
            guard bytes.count <= Self.maxTokenBytes, tokens.count < Self.maxTokens else {
                throw AffectError.badInput("\(source): line \(n + 1) holds an over-long token, or too many tokens.")
            }
            tokens.append([UInt8](bytes))
        }
        try self.init(tokens: tokens, languages: languages, source: source)
    }

    /// A Hugging Face `tokenizer.json` (its `model.vocab` and `added_tokens`) or a `vocab.json` object, with the
    /// added tokens of `added_tokens.json` / `tokenizer_config.json` when given.
    public init(huggingFace data: Data, addedTokens: [String: Int] = [:], languages: Int, source: String) throws {
        guard data.count <= Self.maxFileBytes else { throw AffectError.badInput("\(source): the tokenizer is over \(Self.maxFileBytes >> 20) MB.") }
        guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw AffectError.badInput("\(source): the tokenizer is not a JSON object.")
        }
        var vocabAny: Any? = root
        var added = addedTokens
        if let model = root["model"] as? [String: Any] {
            guard (model["type"] as? String) == "BPE" else { throw AffectError.badInput("\(source): the tokenizer model is not BPE.") }
            vocabAny = model["vocab"]
            for item in root["added_tokens"] as? [[String: Any]] ?? [] {
                guard let content = item["content"] as? String else { throw AffectError.badInput("\(source): an added token has no `content`.") }
                added[content] = try Tokenizer.tokenId(item["id"], "added token `\(content.prefix(40))`", source: source)
            }
        }
        let vocab = try Tokenizer.vocabulary(vocabAny, "BPE", source: source)
        // Special tokens may sit in the vocabulary itself (GPT-2's <|endoftext|>): they are not mergeable.
        let layout = Set(Self.specialLayout(base: 0, languages: Self.languageCodes.count))
        for (token, id) in vocab where layout.contains(token) { added[token] = id }
        let mergeable = vocab.filter { !layout.contains($0.key) }
        guard mergeable.count <= Self.maxTokens else { throw AffectError.badInput("\(source): the tokenizer has over \(Self.maxTokens) tokens.") }
        var decode: [UInt32: UInt8] = [:]
        for (b, c) in byteLevelTable.enumerated() { decode[c.value] = UInt8(b) }
        var tokens = [[UInt8]?](repeating: nil, count: mergeable.count)
        for (token, id) in mergeable {
            guard id < mergeable.count else {
                throw AffectError.badInput("\(source): token `\(token.prefix(40))` has id \(id), but the \(mergeable.count) mergeable tokens must have ids 0..<\(mergeable.count).")
            }
            var bytes: [UInt8] = []
            for s in token.unicodeScalars {
                guard let b = decode[s.value] else {
                    throw AffectError.badInput("\(source): token `\(token.prefix(40))` is not spelled in GPT-2's byte-level alphabet.")
                }
                bytes.append(b)
            }
            guard bytes.count <= Self.maxTokenBytes, tokens[id] == nil else {
                throw AffectError.badInput("\(source): token id \(id) is over-long or given twice.")
            }
            tokens[id] = bytes
        }
        try self.init(tokens: tokens.map { $0! }, languages: languages, source: source)
        // Added tokens must agree with openai-whisper's layout (older exports stop before the timestamps).
        for (name, id) in added where layout.contains(name) || specials[name] != nil {
            guard specials[name] == id else {
                throw AffectError.badInput("\(source): special token \(name) has id \(id), but Whisper's layout puts it at \(specials[name].map(String.init) ?? "no id") for \(languages) languages.")
            }
        }
    }

    /// The tokenizer a converted weight file carries: `affect.tiktoken` (openai-whisper asset) or
    /// `affect.tokenizer` (Hugging Face tokenizer.json), for a model of `vocabularySize` tokens.
    public init(weights w: WeightFile, vocabularySize: Int) throws {
        let languages = max(0, vocabularySize - 51765 - (vocabularySize >= 51865 ? 1 : 0))
        let source: String
        if let text = w.file.metadata["affect.tiktoken"] {
            source = "\(w.path) (affect.tiktoken)"
            try self.init(tiktoken: text, languages: languages, source: source)
        } else if let json = w.file.metadata["affect.tokenizer"] {
            source = "\(w.path) (affect.tokenizer)"
            try self.init(huggingFace: Data(json.utf8), languages: languages, source: source)
        } else {
            throw AffectError.badInput("\(w.path): metadata `affect.tiktoken` / `affect.tokenizer` is missing; convert the model with its tokenizer.")
        }
        guard self.vocabularySize == vocabularySize else {
            throw AffectError.badInput("\(source): the tokenizer has \(self.vocabularySize) tokens with Whisper's special tokens, but the model has \(vocabularySize).")
        }
    }

    // MARK: Encoding

    /// `encoding.encode(text)`: GPT-2 split, then tiktoken's byte-pair merging (the adjacent pair whose bytes
    /// form the lowest-ranked token merges first). Special-token text is encoded as plain text.
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        for piece in gpt2Split(Array(text.unicodeScalars)) {
            var bytes: [UInt8] = []
            for c in piece { bytes += Array(String(Character(c)).utf8) }
            if let id = ranks[bytes] { ids.append(id); continue }
            // Parts as byte ranges; merge the best pair until none is a token.
            var parts = bytes.indices.map { $0 ..< $0 + 1 }
            while parts.count > 1 {
                var best = Int.max, at = -1
                for i in 0 ..< parts.count - 1 {
                    if let r = ranks[Array(bytes[parts[i].lowerBound ..< parts[i + 1].upperBound])], r < best { best = r; at = i }
                }
                if at < 0 { break }
                parts[at] = parts[at].lowerBound ..< parts[at + 1].upperBound
                parts.remove(at: at + 1)
            }
            for p in parts { ids.append(ranks[Array(bytes[p])]!) }
        }
        return ids
    }

    // MARK: Decoding

    /// The bytes of `ids` (special tokens as their names), invalid ids skipped.
    func bytes(_ ids: [Int]) -> [UInt8] {
        var out: [UInt8] = []
        for id in ids {
            if id >= 0 && id < tokenBytes.count { out += tokenBytes[id] } else if let name = specialNames[id] { out += Array(name.utf8) }
        }
        return out
    }

    /// `tokenizer.decode(ids)`: timestamp tokens dropped, bytes decoded as UTF-8 with replacement characters.
    public func decode(_ ids: [Int]) -> String {
        String(decoding: bytes(ids.filter { $0 < timestampBegin }), as: UTF8.self)
    }

    /// `decode_with_timestamps`: timestamps shown as `<|1.08|>`.
    public func decodeWithTimestamps(_ ids: [Int]) -> String { String(decoding: bytes(ids), as: UTF8.self) }

    /// openai-whisper's `non_speech_tokens`: speaker tags, brackets and music symbols never sampled when
    /// `suppress_tokens` is -1.
    public var nonSpeechTokens: [Int] {
        var symbols = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』".map(String.init)
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split(separator: " ").map(String.init)
        let miscellaneous = "♩♪♫♬♭♮♯".map(String.init)
        var result = Set([encode(" -")[0], encode(" '")[0]])
        for symbol in symbols + miscellaneous {
            for tokens in [encode(symbol), encode(" " + symbol)] where tokens.count == 1 || miscellaneous.contains(symbol) {
                result.insert(tokens[0])
            }
        }
        return result.sorted()
    }
}
