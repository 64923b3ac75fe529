import Foundation
import AffectKernels
#if canImport(Glibc)
import Glibc
#endif

/// Options of one 30 s window's decoding: openai-whisper's `DecodingOptions`.
public struct WhisperDecodingOptions: Sendable {
    public enum Task: String, Sendable { case transcribe, translate }
    public var task: Task = .transcribe
    /// Language code; nil detects it (multilingual models) or means English (English-only models).
    public var language: String?
    public var temperature: Double = 0
    /// Most tokens sampled (nil: half the text context, 224).
    public var sampleLength: Int?
    /// Independent samples at temperature > 0 (the one with the best log-probability wins).
    public var bestOf: Int?
    /// Beams at temperature 0 (nil: greedy).
    public var beamSize: Int?
    /// Beam-search patience: finished candidates collected = round(beam × patience).
    public var patience: Double?
    /// Google NMT length penalty α in 0…1; nil divides by the length.
    public var lengthPenalty: Double?
    /// Previous text as tokens (after `<|startofprev|>`).
    public var prompt: [Int] = []
    /// Tokens the output is forced to start with.
    public var prefix: [Int] = []
    /// Token ids never sampled; -1 stands for the non-speech symbols.
    public var suppressTokens: [Int] = [-1]
    /// Forbids a blank (space or end) as the first sampled token.
    public var suppressBlank = true
    public var withoutTimestamps = false
    /// The first timestamp is at most this many seconds.
    public var maxInitialTimestamp: Double? = 1.0
    /// Seed of the sampler at temperature > 0 (our own generator: sampled ids do not match torch's).
    public var seed: UInt64 = 0

    public init() {}
}

/// One window's result: openai-whisper's `DecodingResult`.
public struct WhisperDecodingResult: Sendable {
    public var language: String
    public var languageProbabilities: [String: Double]?
    /// Sampled tokens (timestamps included, special start tokens and end excluded).
    public var tokens: [Int]
    public var text: String
    public var avgLogprob: Double
    public var noSpeechProb: Double
    public var temperature: Double
    public var compressionRatio: Double
}

/// `compression_ratio(text)`: UTF-8 bytes over their zlib-compressed size (level 6, as Python's `zlib.compress`).
/// zlib is the system's (`libz.so.1`, loaded by the media libraries anyway), so sizes match Python's exactly.
public enum Compression {
    typealias Compress2 = @convention(c) (UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt>?, UnsafePointer<UInt8>?, UInt, Int32) -> Int32
    typealias Bound = @convention(c) (UInt) -> UInt
    private static let zlib: (Compress2, Bound)? = {
        guard let h = dlopen("libz.so.1", RTLD_NOW) ?? dlopen("libz.so", RTLD_NOW),
              let c = dlsym(h, "compress2"), let b = dlsym(h, "compressBound") else { return nil }
        return (unsafeBitCast(c, to: Compress2.self), unsafeBitCast(b, to: Bound.self))
    }()

    /// nil when the system has no zlib.
    public static func ratio(_ text: String) -> Double? {
        guard let (compress, bound) = zlib else { return nil }
        let bytes = Array(text.utf8)
        var size = bound(UInt(bytes.count))
        var out = [UInt8](repeating: 0, count: Int(size))
        let rc = out.withUnsafeMutableBufferPointer { o in bytes.withUnsafeBufferPointer { i in
            compress(o.baseAddress, &size, i.baseAddress, UInt(bytes.count), 6)
        } }
        guard rc == 0, size > 0 else { return nil }
        return Double(bytes.count) / Double(size)
    }
}

/// openai-whisper's `decode()` on our model: greedy, sampled or beam-search decoding of one window with its logit
/// filters (blank and token suppression, timestamp rules), no-speech probability and language detection.
public struct WhisperDecoder: Sendable {
    public let model: Whisper
    public let tokenizer: WhisperTokenizer

    public init(model: Whisper, tokenizer: WhisperTokenizer) throws {
        guard tokenizer.vocabularySize == model.config.vocabularySize else {
            throw AffectError.badInput("the Whisper tokenizer has \(tokenizer.vocabularySize) tokens but the model \(model.config.vocabularySize).")
        }
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Encodes one `[mels, 3000]` window: `[1, 1500, D]`.
    public func encode(window: [Float]) throws -> Tensor {
        let (m, f) = (model.config.mels, 2 * model.config.audioPositions)
        guard window.count == m * f else { throw AffectError.badInput("a Whisper window has \(m)×\(f) values, got \(window.count).") }
        return model.encode(Tensor(shape: [1, m, f], values: window))
    }

    /// `detect_language`: probabilities of each language token after `<|startoftranscript|>`.
    public func detectLanguage(audio: Tensor) throws -> (code: String, probabilities: [String: Double]) {
        guard model.config.multilingual, !tokenizer.languages.isEmpty else {
            throw AffectError.badUsage("this Whisper model is English-only: it has no language tokens to detect a language with.")
        }
        var cache = model.makeCache(audio: audio, audioIndex: [0])
        let logits = try model.decode([tokenizer.sot], cache: &cache)
        let ids = tokenizer.languageTokens
        let values = ids.map { logits.data[$0] }
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        let top = Double(values[best])
        let sum = values.reduce(0.0) { $0 + exp(Double($1) - top) }
        var probs: [String: Double] = [:]
        for (i, code) in tokenizer.languages.enumerated() { probs[code] = exp(Double(values[i]) - top) / sum }
        return (tokenizer.languages[best], probs)
    }

    /// The tokens never sampled (`_get_suppress_tokens`).
    func suppressed(_ options: WhisperDecodingOptions) -> [Int] {
        var s = options.suppressTokens.filter { $0 >= 0 }
        if options.suppressTokens.contains(-1) { s += tokenizer.nonSpeechTokens }
        s += [tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sotPrev, tokenizer.sotLM, tokenizer.noSpeech]
        return Array(Set(s.filter { $0 < model.config.vocabularySize })).sorted()
    }

    /// Decodes one window's audio states (`[1, 1500, D]`).
    public func decode(audio: Tensor, options o: WhisperDecodingOptions) throws -> WhisperDecodingResult {
        let t = tokenizer, vocab = model.config.vocabularySize, ctx = model.config.textPositions
        if o.beamSize != nil && o.bestOf != nil { throw AffectError.badUsage("beam size and best-of cannot be given together.") }
        if let b = o.beamSize, !(1 ... 64).contains(b) { throw AffectError.badUsage("the beam size must be 1 to 64, got \(b).") }
        if let b = o.bestOf, !(1 ... 64).contains(b) { throw AffectError.badUsage("best-of must be 1 to 64, got \(b).") }
        if let p = o.patience, !(p > 0 && p <= 64) { throw AffectError.badUsage("the patience must be above 0 and at most 64, got \(p).") }
        if let a = o.lengthPenalty, !(0 ... 1).contains(a) { throw AffectError.badUsage("the length penalty must be in 0…1, got \(a).") }
        guard o.temperature.isFinite, o.temperature >= 0 else { throw AffectError.badUsage("the temperature must be at least 0.") }

        // The start sequence: <|sot|> [language, task] [<|notimestamps|>], after an optional prompt.
        var language = o.language ?? "en"
        var languageProbabilities: [String: Double]? = nil
        var sotSequence = [t.sot]
        if model.config.multilingual {
            guard let lt = t.languageToken(language) else { throw AffectError.badUsage("the model has no language `\(language)`.") }
            sotSequence += [lt, o.task == .transcribe ? t.transcribe : t.translate]
        }
        if o.withoutTimestamps { sotSequence.append(t.noTimestamps) }
        let sampleLength = o.sampleLength ?? ctx / 2
        guard (1 ... ctx).contains(sampleLength) else { throw AffectError.badUsage("the sample length must be 1 to \(ctx).") }
        var initial = sotSequence
        if !o.prefix.isEmpty { initial += o.prefix.suffix(max(0, ctx / 2 - sampleLength)) }
        if !o.prompt.isEmpty { initial = [t.sotPrev] + o.prompt.suffix(ctx / 2 - 1) + initial }
        if let bad = initial.first(where: { $0 < 0 || $0 >= vocab }) { throw AffectError.badInput("token id \(bad) in the prompt or prefix is outside the vocabulary.") }
        let sotIndex = initial.firstIndex(of: t.sot) ?? 0
        let sampleBegin = initial.count
        if o.language == nil && model.config.multilingual {
            let detected = try detectLanguage(audio: audio)
            language = detected.code
            languageProbabilities = detected.probabilities
            initial[sotIndex + 1] = t.languageToken(language) ?? initial[sotIndex + 1]
        }

        let group = o.beamSize ?? o.bestOf ?? 1
        var rows = [[Int]](repeating: initial, count: group)
        var sumLogprobs = [Float](repeating: 0, count: group)
        var cache = model.makeCache(audio: audio, audioIndex: [Int](repeating: 0, count: group))
        let suppress = o.suppressTokens.isEmpty ? [] : suppressed(o)
        let blank = t.encode(" ") + [t.eot]
        let maxInitialIndex = o.withoutTimestamps ? nil : o.maxInitialTimestamp.map { Int((($0 / 0.02)).rounded(.toNearestOrEven)) }
        var noSpeech = Double.nan
        var rng = SplitMix(seed: o.seed)
        let maxCandidates = o.beamSize.map { b in Int((Double(b) * (o.patience ?? 1)).rounded(.toNearestOrEven)) } ?? 0
        var finished: [([Int], Float)] = []       // beam search's finished candidates, in insertion order
        var logits = [Float](repeating: 0, count: vocab)

        for step in 0..<sampleLength {
            let out: Tensor
            if step == 0 {
                // Logits at the <|startoftranscript|> position (no_speech_prob) and the last one only.
                let n = initial.count
                let picked = try model.decode(rows.flatMap { $0 }, cache: &cache, logitsAt: [sotIndex, n - 1])
                // no_speech_prob: softmax at the <|startoftranscript|> position, before any filter.
                noSpeech = softmaxProbability(picked.data, vocab, t.noSpeech)
                out = Tensor(uninitialized: [group, 1, vocab])
                for r in 0..<group { (out.data + r * vocab).update(from: picked.data + (r * 2 + 1) * vocab, count: vocab) }
            } else {
                out = try model.decode(rows.map { $0.last! }, cache: &cache)
            }
            var candidates: [(row: Int, logprobs: [Float], logits: [Float])] = []
            for r in 0..<group {
                for v in 0..<vocab { logits[v] = out.data[r * vocab + v] }
                applyFilters(&logits, tokens: rows[r], sampleBegin: sampleBegin, blank: o.suppressBlank ? blank : [],
                             suppress: suppress, timestamps: !o.withoutTimestamps, maxInitialIndex: maxInitialIndex)
                candidates.append((r, logSoftmax(logits), logits))
            }
            if let beam = o.beamSize {
                // BeamSearchDecoder.update.
                var scores: [[Int]: Float] = [:], order: [[Int]] = [], sources: [[Int]: Int] = [:]
                for c in candidates {
                    for (token, lp) in topK(c.logprobs, beam + 1) {
                        let seq = rows[c.row] + [token]
                        if scores[seq] == nil { order.append(seq) }
                        scores[seq] = sumLogprobs[c.row] + lp
                        sources[seq] = c.row
                    }
                }
                let ranked = stableSortDescending(order) { scores[$0]! }
                var next: [[Int]] = [], nextSums: [Float] = [], src: [Int] = [], newlyFinished: [([Int], Float)] = []
                for seq in ranked {
                    if seq.last == t.eot {
                        newlyFinished.append((seq, scores[seq]!))
                    } else {
                        next.append(seq); nextSums.append(scores[seq]!); src.append(sources[seq]!)
                        if next.count == beam { break }
                    }
                }
                for (seq, s) in newlyFinished where finished.count < maxCandidates {
                    if let i = finished.firstIndex(where: { $0.0 == seq }) { finished[i].1 = s } else { finished.append((seq, s)) }
                }
                // Fewer than `beam` live sequences can only happen with a tiny vocabulary: keep the cache aligned.
                while next.count < beam, let last = next.last { next.append(last); nextSums.append(-.infinity); src.append(src.last!) }
                cache.reorder(src)
                rows = next; sumLogprobs = nextSums
                if finished.count >= maxCandidates || rows[0].count > ctx { break }
            } else {
                var done = true
                for c in candidates {
                    let r = c.row
                    var next: Int
                    if o.temperature == 0 { next = argmax(c.logits) } else { next = sample(c.logits, temperature: o.temperature, &rng) }
                    let lastIsEOT = rows[r].last == t.eot
                    if !lastIsEOT { sumLogprobs[r] += c.logprobs[next] }
                    if lastIsEOT { next = t.eot }
                    rows[r].append(next)
                    if next != t.eot { done = false }
                }
                if done || rows[0].count > ctx { break }
            }
        }

        // finalize + rank.
        var finals: [([Int], Float)]
        if o.beamSize != nil {
            finals = finished
            if finals.count < group {
                let order = rows.indices.sorted { sumLogprobs[$0] > sumLogprobs[$1] }
                for j in order {
                    let seq = rows[j] + [t.eot]
                    if let i = finals.firstIndex(where: { $0.0 == seq }) { finals[i].1 = sumLogprobs[j] } else { finals.append((seq, sumLogprobs[j])) }
                    if finals.count >= group { break }
                }
            }
        } else {
            finals = rows.indices.map { (rows[$0] + [t.eot], sumLogprobs[$0]) }
        }
        let trimmed: [([Int], Float)] = finals.map { seq, s in
            let body = Array(seq[sampleBegin...])
            return (Array(body.prefix(while: { $0 != t.eot })), s)
        }
        var best = 0, bestScore = -Double.infinity
        for (i, (toks, s)) in trimmed.enumerated() {
            let length = Double(toks.count)
            let penalty = o.lengthPenalty.map { pow((5 + length) / 6, $0) } ?? length
            let score = Double(s) / penalty
            if score > bestScore || i == 0 && bestScore == -.infinity { best = i; bestScore = score }
        }
        let (tokens, sum) = trimmed[best]
        let text = t.decode(tokens).trimmingCharacters(in: .whitespacesAndNewlines)
        return WhisperDecodingResult(language: language, languageProbabilities: languageProbabilities, tokens: tokens, text: text,
                                     avgLogprob: Double(sum) / Double(tokens.count + 1), noSpeechProb: noSpeech,
                                     temperature: o.temperature, compressionRatio: Compression.ratio(text) ?? .nan)
    }

    /// SuppressBlank, SuppressTokens and ApplyTimestampRules on one row's logits.
    func applyFilters(_ logits: inout [Float], tokens: [Int], sampleBegin: Int, blank: [Int], suppress: [Int],
                      timestamps: Bool, maxInitialIndex: Int?) {
        let t = tokenizer, vocab = logits.count
        if tokens.count == sampleBegin { for b in blank { logits[b] = -.infinity } }
        for s in suppress { logits[s] = -.infinity }
        guard timestamps else { return }
        let tsBegin = t.timestampBegin, eot = t.eot
        logits[t.noTimestamps] = -.infinity
        let sampled = tokens[sampleBegin...]
        let lastWasTimestamp = sampled.count >= 1 && sampled.last! >= tsBegin
        let penultimateWasTimestamp = sampled.count < 2 || sampled[sampled.endIndex - 2] >= tsBegin
        if lastWasTimestamp {
            if penultimateWasTimestamp { for v in tsBegin..<vocab { logits[v] = -.infinity } }
            else { for v in 0..<eot { logits[v] = -.infinity } }
        }
        if let lastTimestamp = sampled.last(where: { $0 >= tsBegin }) {
            let end = lastWasTimestamp && !penultimateWasTimestamp ? lastTimestamp : lastTimestamp + 1
            if end > tsBegin { for v in tsBegin..<min(end, vocab) { logits[v] = -.infinity } }
        }
        if tokens.count == sampleBegin {
            for v in 0..<tsBegin { logits[v] = -.infinity }
            if let m = maxInitialIndex, tsBegin + m + 1 < vocab { for v in (tsBegin + m + 1)..<vocab { logits[v] = -.infinity } }
        }
        // Sample a timestamp when their total probability beats every text token's.
        let lp = logSoftmax(logits)
        var top = -Float.infinity
        for v in tsBegin..<vocab { top = max(top, lp[v]) }
        var timestampLogprob = -Double.infinity
        if top > -.infinity {
            var s = 0.0
            for v in tsBegin..<vocab { s += exp(Double(lp[v] - top)) }
            timestampLogprob = Double(top) + log(s)
        }
        var maxText = -Float.infinity
        for v in 0..<tsBegin { maxText = max(maxText, lp[v]) }
        if timestampLogprob > Double(maxText) { for v in 0..<tsBegin { logits[v] = -.infinity } }
    }
}

// MARK: Helpers

/// `F.log_softmax` in float32 with a double-precision sum.
func logSoftmax(_ x: [Float]) -> [Float] {
    var m = -Float.infinity
    for v in x { m = max(m, v) }
    guard m > -.infinity else { return x }
    var s = 0.0
    for v in x where v > -.infinity { s += exp(Double(v - m)) }
    let l = Float(log(s))
    return x.map { $0 - m - l }
}

func softmaxProbability(_ p: UnsafePointer<Float>, _ n: Int, _ index: Int) -> Double {
    var m = -Float.infinity
    for i in 0..<n { m = max(m, p[i]) }
    var s = 0.0
    for i in 0..<n { s += exp(Double(p[i] - m)) }
    return exp(Double(p[index] - m)) / s
}

/// First index of the largest value (torch.argmax).
func argmax(_ x: [Float]) -> Int {
    var best = 0
    for i in x.indices where x[i] > x[best] { best = i }
    return best
}

/// The `k` largest values with their indices, largest first (ties: lower index first).
func topK(_ x: [Float], _ k: Int) -> [(Int, Float)] {
    var top: [(Int, Float)] = []
    for (i, v) in x.enumerated() {
        if top.count == k, let last = top.last, !(v > last.1) { continue }
        var at = top.count
        while at > 0 && v > top[at - 1].1 { at -= 1 }
        top.insert((i, v), at: at)
        if top.count > k { top.removeLast() }
    }
    return top
}

/// Python's `sorted(keys, key=..., reverse=True)`: descending and stable.
func stableSortDescending<T>(_ items: [T], _ key: (T) -> Float) -> [T] {
    items.enumerated().sorted { a, b in
        let (ka, kb) = (key(a.element), key(b.element))
        return ka != kb ? ka > kb : a.offset < b.offset
    }.map(\.element)
}

/// A small deterministic generator for sampling at temperature > 0.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E3779B97F4A7C15 }
    mutating func next() -> Double {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }
}

func sample(_ logits: [Float], temperature: Double, _ rng: inout SplitMix) -> Int {
    var m = -Float.infinity
    for v in logits { m = max(m, v) }
    var weights = logits.map { $0 > -.infinity ? exp(Double($0 - m) / temperature) : 0 }
    let total = weights.reduce(0, +)
    var u = rng.next() * total
    for i in weights.indices {
        u -= weights[i]
        if u <= 0 && weights[i] > 0 { return i }
    }
    weights.removeAll()
    return argmax(logits)
}
