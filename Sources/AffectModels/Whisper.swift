import Foundation
import AffectKernels

/// OpenAI's Whisper as Hugging Face transformers builds it (`WhisperForConditionalGeneration`; openai-whisper's
/// `.pt` checkpoints are converted to the same names).
///
/// ```
/// log-Mel [mels, 3000] (WhisperAudio, 30 s)
///   encoder: conv1d(mels→D, k3, p1) ─ GELU ─ conv1d(D→D, k3, s2, p1) ─ GELU ─ + sinusoidal positions [1500, D]
///            ─ L × pre-LN block [x += SelfAttn(LN(x)); x += FC2(GELU(FC1(LN(x))))] ─ LayerNorm   → audio [1500, D]
///   decoder: token embedding + learned positions
///            ─ L × pre-LN block [x += CausalSelfAttn(LN(x)) (KV cache); x += CrossAttn(LN(x), audio);
///                               x += FFN(LN(x))] ─ LayerNorm ─ · embed_tokensᵀ (tied)       → logits [V]
/// ```
/// Attention scales queries by 1/√(head width); key projections have no bias. Cross-attention keys and values
/// depend only on the audio, so ``DecoderCache`` computes them once per window.
public struct Whisper: InferenceModel, Sendable {
    public let arch: String

    /// Hyper-parameters (Hugging Face `WhisperConfig` names in `affect.config`).
    public struct Config: Sendable {
        /// `num_mel_bins`: 80, or 128 for large-v3.
        public var mels: Int
        /// `d_model`.
        public var width: Int
        public var encoderLayers: Int
        public var encoderHeads: Int
        public var encoderFFN: Int
        public var decoderLayers: Int
        public var decoderHeads: Int
        public var decoderFFN: Int
        /// `max_source_positions`: 1500 encoder positions for a 30 s window.
        public var audioPositions: Int
        /// `max_target_positions`: the longest token sequence (448).
        public var textPositions: Int
        public var vocabularySize: Int
        /// openai-whisper's rule: multilingual vocabularies have at least 51865 tokens.
        public var multilingual: Bool { vocabularySize >= 51865 }
        /// openai-whisper's `num_languages`: 99 for 51865 tokens, 100 for large-v3's 51866.
        public var languages: Int { vocabularySize - 51765 - (multilingual ? 1 : 0) }
    }

    public let config: Config

    struct EncoderLayer {
        let norm1: LayerNorm
        /// q, k, v stacked (`[3D, D]`; k has no bias, so its third of the bias is zero).
        let qkv: Linear
        let out: Linear
        let norm2: LayerNorm
        let fc1: Linear
        let fc2: Linear
    }

    struct DecoderLayer {
        let selfNorm: LayerNorm
        let selfQKV: Linear
        let selfOut: Linear
        let crossNorm: LayerNorm
        let crossQuery: Linear
        let crossKey: Linear
        let crossValue: Linear
        let crossOut: Linear
        let ffnNorm: LayerNorm
        let fc1: Linear
        let fc2: Linear
    }

    let conv1: StridedConv1D
    let conv2: StridedConv1D
    /// `[1500, D]`.
    let audioPositions: Tensor
    let encoderLayers: [EncoderLayer]
    let encoderNorm: LayerNorm
    /// `[V, D]`.
    let tokenEmbedding: Tensor
    /// `[448, D]`.
    let textPositions: Tensor
    let decoderLayers: [DecoderLayer]
    let decoderNorm: LayerNorm
    /// The output projection: the token embedding (tied), or `proj_out` when the file has its own.
    let output: Linear

    public init(weights w: WeightFile) throws {
        try w.require(arch: "whisper")
        arch = w.arch
        let L = WeightFile.Limits.self
        let width = try w.configInt("d_model", in: L.width)
        config = Config(mels: try w.configInt("num_mel_bins", default: 80, in: 1 ... 1024), width: width,
                        encoderLayers: try w.configInt("encoder_layers", in: L.layers),
                        encoderHeads: try w.configInt("encoder_attention_heads", in: L.heads),
                        encoderFFN: try w.configInt("encoder_ffn_dim", in: L.width),
                        decoderLayers: try w.configInt("decoder_layers", in: L.layers),
                        decoderHeads: try w.configInt("decoder_attention_heads", in: L.heads),
                        decoderFFN: try w.configInt("decoder_ffn_dim", in: L.width),
                        audioPositions: try w.configInt("max_source_positions", default: 1500, in: 1500 ... 1500),
                        textPositions: try w.configInt("max_target_positions", default: 448, in: 1 ... 4096),
                        vocabularySize: try w.configInt("vocab_size", in: 1 ... 1 << 20))
        for (key, heads) in [("encoder_attention_heads", config.encoderHeads), ("decoder_attention_heads", config.decoderHeads)]
        where width % heads != 0 {
            throw w.problem("config `d_model` \(width) is not divisible by `\(key)` \(heads).")
        }
        for key in ["activation_function"] {
            let act = try w.configString(key, default: "gelu")
            guard act == "gelu" else { throw w.problem("config `\(key)` is `\(act)`; Whisper uses gelu.") }
        }
        if w.configBool("scale_embedding", default: false) { throw w.problem("config `scale_embedding` = true is not supported (Whisper does not scale).") }

        // Hugging Face nests everything under `model.`; the converters strip it, but both spellings load.
        let p = w.contains("model.encoder.conv1.weight") ? "model." : ""
        let d = width, mels = config.mels
        func t(_ name: String, _ shape: [Int]) throws -> Tensor { try w.tensor(p + name, shape: shape) }
        func norm(_ name: String) throws -> LayerNorm { try w.layerNorm(p + name, width: d, eps: 1e-5) }
        func linear(_ name: String, _ cin: Int, _ cout: Int, bias: WeightFile.BiasRule = .required, act: Activation = .none) throws -> Linear {
            try w.linear(p + name, in: cin, out: cout, bias: bias, activation: act, precision: w.precision)
        }
        /// q, k (no bias) and v of one attention block stacked into one `[3D, D]` layer.
        func stacked(_ prefix: String) throws -> Linear {
            let q = try t("\(prefix).q_proj.weight", [d, d]), qb = try t("\(prefix).q_proj.bias", [d])
            let k = try t("\(prefix).k_proj.weight", [d, d])
            if w.contains(p + "\(prefix).k_proj.bias") { throw w.problem("tensor `\(p)\(prefix).k_proj.bias` is present; Whisper's key projections have no bias.") }
            let v = try t("\(prefix).v_proj.weight", [d, d]), vb = try t("\(prefix).v_proj.bias", [d])
            let weight = Tensor(uninitialized: [3 * d, d], arena: Arena()), bias = Tensor.zeros([3 * d], arena: Arena())
            for (i, m) in [q, k, v].enumerated() { (weight.data + i * d * d).update(from: m.data, count: d * d) }
            bias.data.update(from: qb.data, count: d)
            (bias.data + 2 * d).update(from: vb.data, count: d)
            return Linear(weight: weight, bias: bias, precision: w.precision)
        }

        conv1 = StridedConv1D(weight: try t("encoder.conv1.weight", [d, mels, 3]), bias: try t("encoder.conv1.bias", [d]),
                              stride: 1, activation: .gelu)
        conv2 = StridedConv1D(weight: try t("encoder.conv2.weight", [d, d, 3]), bias: try t("encoder.conv2.bias", [d]),
                              stride: 2, activation: .gelu)
        audioPositions = try w.optionalTensor(p + "encoder.embed_positions.weight", shape: [config.audioPositions, d])
            ?? Whisper.sinusoids(length: config.audioPositions, channels: d)
        var enc: [EncoderLayer] = []
        for i in 0..<config.encoderLayers {
            let l = "encoder.layers.\(i)"
            enc.append(EncoderLayer(norm1: try norm("\(l).self_attn_layer_norm"), qkv: try stacked("\(l).self_attn"),
                                    out: try linear("\(l).self_attn.out_proj", d, d), norm2: try norm("\(l).final_layer_norm"),
                                    fc1: try linear("\(l).fc1", d, config.encoderFFN, act: .gelu),
                                    fc2: try linear("\(l).fc2", config.encoderFFN, d)))
        }
        if w.contains(p + "encoder.layers.\(config.encoderLayers).fc1.weight") {
            throw w.problem("the file has more encoder layers than config `encoder_layers` = \(config.encoderLayers).")
        }
        encoderLayers = enc
        encoderNorm = try norm("encoder.layer_norm")

        tokenEmbedding = try t("decoder.embed_tokens.weight", [config.vocabularySize, d])
        textPositions = try t("decoder.embed_positions.weight", [config.textPositions, d])
        var dec: [DecoderLayer] = []
        for i in 0..<config.decoderLayers {
            let l = "decoder.layers.\(i)"
            dec.append(DecoderLayer(selfNorm: try norm("\(l).self_attn_layer_norm"), selfQKV: try stacked("\(l).self_attn"),
                                    selfOut: try linear("\(l).self_attn.out_proj", d, d),
                                    crossNorm: try norm("\(l).encoder_attn_layer_norm"),
                                    crossQuery: try linear("\(l).encoder_attn.q_proj", d, d),
                                    crossKey: try linear("\(l).encoder_attn.k_proj", d, d, bias: .none),
                                    crossValue: try linear("\(l).encoder_attn.v_proj", d, d),
                                    crossOut: try linear("\(l).encoder_attn.out_proj", d, d),
                                    ffnNorm: try norm("\(l).final_layer_norm"),
                                    fc1: try linear("\(l).fc1", d, config.decoderFFN, act: .gelu),
                                    fc2: try linear("\(l).fc2", config.decoderFFN, d)))
            if w.contains(p + "\(l).encoder_attn.k_proj.bias") { throw w.problem("tensor `\(p)\(l).encoder_attn.k_proj.bias` is present; Whisper's key projections have no bias.") }
        }
        if w.contains(p + "decoder.layers.\(config.decoderLayers).fc1.weight") {
            throw w.problem("the file has more decoder layers than config `decoder_layers` = \(config.decoderLayers).")
        }
        decoderLayers = dec
        decoderNorm = try norm("decoder.layer_norm")
        // The embedding is read again for lookups after packing: packing only hands mapped pages back.
        let outWeight = try w.optionalTensor("proj_out.weight", shape: [config.vocabularySize, d])
            ?? t("decoder.embed_tokens.weight", [config.vocabularySize, d])
        output = Linear(weight: outWeight, bias: nil)
    }

    /// openai-whisper's `sinusoids(length, channels)`: sin of position × timescale in the first half, cos in the
    /// second, timescales from 1 to 1/10000 (computed in float32 as torch does, the sines in double).
    public static func sinusoids(length: Int, channels: Int) -> Tensor {
        let half = channels / 2
        let out = Tensor.zeros([length, channels])
        let increment = Float(log(10000.0)) / Float(max(half - 1, 1))
        for i in 0..<half {
            let inv = Float(exp(Double(-increment * Float(i))))
            for t in 0..<length {
                let x = Double(Float(t) * inv)
                out.data[t * channels + i] = Float(sin(x))
                out.data[t * channels + half + i] = Float(cos(x))
            }
        }
        return out
    }

    // MARK: Encoder

    /// `[N, 1500, D]` audio states from log-Mel windows `[N, mels, 3000]`.
    public func encode(_ mel: Tensor) -> Tensor {
        precondition(mel.rank == 3 && mel.shape[1] == config.mels && mel.shape[2] == 2 * config.audioPositions,
                     "Whisper encoder expects [N, \(config.mels), \(2 * config.audioPositions)], got \(mel.shape)")
        let (n, mels, frames) = (mel.shape[0], config.mels, mel.shape[2])
        let d = config.width
        // Channels last with one zero frame each side: the convolutions' padding of 1.
        let x = Tensor.zeros([n, frames + 2, mels])
        for item in 0..<n {
            let src = mel.data + item * mels * frames, dst = x.data + item * (frames + 2) * mels + mels
            for m in 0..<mels { for t in 0..<frames { dst[t * mels + m] = src[m * frames + t] } }
        }
        let h1 = conv1(x)                                       // [N, 3000, D]
        let x2 = Tensor.zeros([n, frames + 2, d])
        for item in 0..<n { (x2.data + (item * (frames + 2) + 1) * d).update(from: h1.data + item * frames * d, count: frames * d) }
        var h = conv2(x2)                                       // [N, 1500, D]
        let positions = h.shape[1]
        for item in 0..<n {
            let o = h.data + item * positions * d
            for i in 0..<positions * d { o[i] += audioPositions.data[i] }
        }
        for layer in encoderLayers {
            let a = layer.out(longAttention(qkv: layer.qkv(layer.norm1(h)), heads: config.encoderHeads), adding: h)
            h = layer.fc2(layer.fc1(layer.norm2(a)), adding: a)
        }
        return encoderNorm(h)
    }

    // MARK: Decoder

    /// Decoder state of a batch of token sequences over encoded audio: per layer, the self-attention keys and
    /// values of every token so far (up to the model's 448 positions), and the cross-attention keys and values of
    /// the audio, computed once.
    public struct DecoderCache: Sendable {
        /// Rows (sequences) in the batch.
        public internal(set) var rows: Int
        /// Tokens each row has seen.
        public internal(set) var length: Int
        /// Which audio item each row attends to.
        public internal(set) var audioIndex: [Int]
        var selfKeys: [Tensor]
        var selfValues: [Tensor]
        let crossKeys: [Tensor]
        let crossValues: [Tensor]
        let capacity: Int

        /// Keeps rows `source` (row i of the new cache is row `source[i]` of this one): beam search's reorder.
        public mutating func reorder(_ source: [Int]) {
            precondition(source.allSatisfy { (0..<rows).contains($0) })
            let d = selfKeys.first.map { $0.shape[2] } ?? 0
            let per = capacity * d
            for l in selfKeys.indices {
                for (name, t) in [("k", selfKeys[l]), ("v", selfValues[l])] {
                    let copy = Tensor(uninitialized: [source.count, capacity, d])
                    for (i, s) in source.enumerated() { (copy.data + i * per).update(from: t.data + s * per, count: length * d) }
                    if name == "k" { selfKeys[l] = copy } else { selfValues[l] = copy }
                }
            }
            audioIndex = source.map { audioIndex[$0] }
            rows = source.count
        }

        /// Forgets every token (a new prompt over the same audio).
        public mutating func reset() { length = 0 }
    }

    /// A fresh cache over `audio` (`[N, 1500, D]` from ``encode(_:)``); row i attends to audio item `audioIndex[i]`.
    public func makeCache(audio: Tensor, audioIndex: [Int]) -> DecoderCache {
        precondition(audio.rank == 3 && audio.shape[2] == config.width && audioIndex.allSatisfy { (0..<audio.shape[0]).contains($0) })
        let d = config.width
        return DecoderCache(rows: audioIndex.count, length: 0, audioIndex: audioIndex,
                            selfKeys: decoderLayers.map { _ in Tensor(uninitialized: [audioIndex.count, config.textPositions, d]) },
                            selfValues: decoderLayers.map { _ in Tensor(uninitialized: [audioIndex.count, config.textPositions, d]) },
                            crossKeys: decoderLayers.map { $0.crossKey(audio) }, crossValues: decoderLayers.map { $0.crossValue(audio) },
                            capacity: config.textPositions)
    }

    /// Runs `tokens` (`rows × n`, row-major, the same count for each row) through the decoder after the tokens the
    /// cache has seen, and returns the logits `[rows, n, V]` (`allPositions`) or of the last token only `[rows, 1, V]`.
    /// - Throws: when a token is outside the vocabulary or the sequence would pass the model's positions.
    public func decode(_ tokens: [Int], cache: inout DecoderCache, allPositions: Bool = false) throws -> Tensor {
        let n = cache.rows > 0 ? tokens.count / cache.rows : 0
        return try decode(tokens, cache: &cache, logitsAt: allPositions ? Array(0..<n) : [max(n - 1, 0)])
    }

    /// As ``decode(_:cache:allPositions:)``, with the logits `[rows, positions.count, V]` of the new tokens at
    /// `positions` only (0-based among the new tokens): a prompt of hundreds of tokens needs the vocabulary
    /// projection at two of them, not at all.
    public func decode(_ tokens: [Int], cache: inout DecoderCache, logitsAt positions: [Int]) throws -> Tensor {
        let rows = cache.rows, d = config.width
        guard rows > 0, tokens.count % rows == 0, tokens.count > 0 else {
            throw AffectError.badInput("Whisper decoder: \(tokens.count) tokens do not split into \(rows) rows.")
        }
        let n = tokens.count / rows, offset = cache.length
        guard offset + n <= config.textPositions else {
            throw AffectError.badInput("Whisper decoder: \(offset + n) tokens exceed the model's \(config.textPositions) positions.")
        }
        if let bad = tokens.first(where: { $0 < 0 || $0 >= config.vocabularySize }) {
            throw AffectError.badInput("Whisper decoder: token id \(bad) is outside the vocabulary of \(config.vocabularySize).")
        }
        guard !positions.isEmpty, positions.allSatisfy({ (0..<n).contains($0) }) else {
            throw AffectError.badInput("Whisper decoder: logits asked at \(positions) of \(n) new tokens.")
        }
        var x = Tensor(uninitialized: [rows, n, d])
        for r in 0..<rows {
            for j in 0..<n {
                let o = x.data + (r * n + j) * d, e = tokenEmbedding.data + tokens[r * n + j] * d
                let pos = textPositions.data + (offset + j) * d
                for c in 0..<d { o[c] = e[c] + pos[c] }
            }
        }
        let heads = config.decoderHeads
        let audioLength = cache.crossKeys.first?.shape[1] ?? 0
        for (l, layer) in decoderLayers.enumerated() {
            // Causal self-attention over the cache plus the new tokens.
            let qkv = layer.selfQKV(layer.selfNorm(x))           // [rows, n, 3D]
            let keys = cache.selfKeys[l], values = cache.selfValues[l]
            for r in 0..<rows {
                for j in 0..<n {
                    let src = qkv.data + (r * n + j) * 3 * d
                    let slot = (r * cache.capacity + offset + j) * d
                    (keys.data + slot).update(from: src + d, count: d)
                    (values.data + slot).update(from: src + 2 * d, count: d)
                }
            }
            let a = Tensor(uninitialized: [rows, n, d])
            Whisper.attend(rows: rows, queries: n, heads: heads, width: d, query: { qkv.data + $0 * n * 3 * d }, ldq: 3 * d,
                           keys: { keys.data + $0 * cache.capacity * d }, values: { values.data + $0 * cache.capacity * d },
                           ldk: d, keyCount: offset + n, causalOffset: offset, out: a.data)
            x = layer.selfOut(a, adding: x)
            // Cross-attention over the audio.
            let q = layer.crossQuery(layer.crossNorm(x))
            let c = Tensor(uninitialized: [rows, n, d])
            let ck = cache.crossKeys[l], cv = cache.crossValues[l], index = cache.audioIndex
            Whisper.attend(rows: rows, queries: n, heads: heads, width: d, query: { q.data + $0 * n * d }, ldq: d,
                           keys: { ck.data + index[$0] * audioLength * d }, values: { cv.data + index[$0] * audioLength * d },
                           ldk: d, keyCount: audioLength, causalOffset: nil, out: c.data)
            x = layer.crossOut(c, adding: x)
            x = layer.fc2(layer.fc1(layer.ffnNorm(x)), adding: x)
        }
        cache.length = offset + n
        if positions == Array(0..<n) { return output(decoderNorm(x)) }
        let picked = Tensor(uninitialized: [rows, positions.count, d])
        for r in 0..<rows {
            for (i, j) in positions.enumerated() { (picked.data + (r * positions.count + i) * d).update(from: x.data + (r * n + j) * d, count: d) }
        }
        return output(decoderNorm(picked))
    }

    /// Multi-head attention of `queries` new tokens per row against `keyCount` keys (queries `ldq` floats apart,
    /// keys and values `ldk` apart), causal when `causalOffset` is given (query j sees keys up to offset + j).
    /// Writes `[rows, queries, width]` to `out`.
    static func attend(rows: Int, queries: Int, heads: Int, width: Int, query: (Int) -> UnsafeMutablePointer<Float>, ldq: Int,
                       keys: (Int) -> UnsafeMutablePointer<Float>, values: (Int) -> UnsafeMutablePointer<Float>, ldk: Int,
                       keyCount: Int, causalOffset: Int?, out: UnsafeMutablePointer<Float>) {
        let hd = width / heads
        let scale = 1 / Float(hd).squareRoot()
        let qs = (0..<rows).map(query), ks = (0..<rows).map(keys), vs = (0..<rows).map(values)
        parallelFor(rows * heads, minChunk: 1) { p0, p1 in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: queries * keyCount)
            defer { scores.deallocate() }
            for p in p0..<p1 {
                let (r, h) = (p / heads, p % heads)
                sgemmBlock(m: queries, n: keyCount, k: hd, a: qs[r] + h * hd, lda: ldq, b: ks[r] + h * hd, ldb: ldk,
                           bTransposed: true, c: scores, ldc: keyCount, alpha: scale)
                for i in 0..<queries {
                    let row = scores + i * keyCount
                    var visible = keyCount
                    if let off = causalOffset {
                        visible = min(keyCount, off + i + 1)
                        for j in visible..<keyCount { row[j] = -.infinity }
                    }
                    softmaxRow(row, keyCount)
                }
                sgemmBlock(m: queries, n: hd, k: keyCount, a: scores, lda: keyCount, b: vs[r] + h * hd, ldb: ldk,
                           bTransposed: false, c: out + r * queries * width + h * hd, ldc: width)
            }
        }
    }

    // MARK: InferenceModel

    /// Inputs: `input_features` `[N, mels, 3000]` (or `audio` `[N, samples]` at 16 kHz, turned into them by
    /// ``WhisperAudio/logMel(_:mels:padding:)`` after `pad_or_trim`) and optionally `decoder_input_ids` `[N, L]`.
    /// Outputs: `input_features` (from audio), `encoder_last_hidden_state`, and `logits` `[N, L, V]`.
    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        let mels = config.mels, frames = 2 * config.audioPositions
        let features: Tensor
        if inputs.floats["input_features"] == nil, inputs.floats["audio"] != nil {
            let audio = try inputs.finiteFloat("audio", rank: 2, expected: "N×samples", source: source)
            guard audio.shape[0] <= 64 else { throw AffectError.badInput("\(source): `input.audio` holds \(audio.shape[0]) clips; one pass takes at most 64.") }
            let n = audio.shape[0], s = audio.shape[1]
            features = Tensor(uninitialized: [n, mels, frames])
            for i in 0..<n {
                let clip = WhisperAudio.padOrTrim(Array(UnsafeBufferPointer(start: audio.data + i * s, count: s)))
                let spec = try WhisperAudio.logMel(clip, mels: mels)
                (features.data + i * mels * frames).update(from: spec.window(start: 0, count: frames), count: mels * frames)
            }
            result["input_features"] = features
        } else {
            features = try inputs.finiteFloat("input_features", rank: 3, expected: "N×\(mels)×\(frames)", source: source)
            guard features.shape[1] == mels, features.shape[2] == frames, features.shape[0] <= 64 else {
                throw AffectError.badInput("\(source): `input.input_features` has shape \(features.shape), expected N×\(mels)×\(frames) with N ≤ 64.")
            }
        }
        let audio = encode(features)
        result["encoder_last_hidden_state"] = audio
        if let ids = inputs.ints["decoder_input_ids"] {
            let n = features.shape[0]
            guard ids.shape.count == 2, ids.shape[0] == n, (1 ... config.textPositions).contains(ids.shape[1]) else {
                throw AffectError.badInput("\(source): `input.decoder_input_ids` has shape \(ids.shape), expected \(n)×L with L in 1…\(config.textPositions).")
            }
            if let i = ids.values.firstIndex(where: { $0 < 0 || $0 >= Int64(config.vocabularySize) }) {
                throw AffectError.badInput("\(source): `input.decoder_input_ids` holds \(ids.values[i]) at index \(i), outside the vocabulary of \(config.vocabularySize).")
            }
            var cache = makeCache(audio: audio, audioIndex: Array(0..<n))
            result["logits"] = try decode(ids.values.map { Int($0) }, cache: &cache, allPositions: true)
        }
        return result
    }

    public func benchInputs(_ shape: BenchShape) -> ModelInputs {
        let count = shape.batch * config.mels * 2 * config.audioPositions
        var values = [Float](repeating: 0, count: count)
        var seed: UInt64 = 0x9E3779B97F4A7C15
        for i in values.indices {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            values[i] = Float(Int64(bitPattern: seed >> 11) % 2000) / 1000 - 1
        }
        return ModelInputs(floats: ["input_features": Tensor(shape: [shape.batch, config.mels, 2 * config.audioPositions], values: values)])
    }

    public func flops(_ inputs: ModelInputs) -> Double? {
        guard let x = inputs.floats["input_features"], x.rank == 3 else { return nil }
        let (n, t, d) = (Double(x.shape[0]), Double(config.audioPositions), Double(config.width))
        var macs = 2 * t * 3 * Double(config.mels) * d + t * 3 * d * d
        macs += Double(config.encoderLayers) * (4 * t * d * d + 2 * t * d * Double(config.encoderFFN) + 2 * t * t * d)
        return 2 * macs * n
    }
}
