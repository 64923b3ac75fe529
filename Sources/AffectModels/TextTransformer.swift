import Foundation
import AffectKernels

/// Hugging Face `BertModel` and `RobertaModel` (arch `bert` / `roberta`), optionally with
/// `RobertaForSequenceClassification`'s head.
///
/// ```
/// ids ─ word_embeddings + position_embeddings + token_type_embeddings ─ LayerNorm
///     ─ N × post-norm encoder layer (TransformerEncoderLayer: self-attention over unmasked keys, GELU FFN)
///     → last_hidden_state [B, L, H]
///     ─ pooling: token (last_hidden_state), cls (token 0), mean (attention-masked), sentence (mean, L2-normalised)
///     ─ classifier (RoBERTa): dense ─ tanh ─ out_proj on token 0 (<s>) → logits; sigmoid for multi-label
/// ```
/// RoBERTa differs from BERT in its position ids: they start at `padding_idx + 1` and padding tokens keep
/// `padding_idx` (`create_position_ids_from_input_ids`), and it has one token type. BERT counts positions
/// from 0. LayerNorm eps comes from the config (BERT 1e-12, RoBERTa 1e-5).
///
/// Tensors keep the checkpoint's names; a task model's prefix (`roberta.`, `bert.`) is found from the word
/// embedding's name.
public struct TextTransformer: InferenceModel {
    public let arch: String
    public let labels: [String]
    public let hidden: Int
    /// Longest input in tokens, special tokens included (`max_seq_length` for sentence-transformers models,
    /// else what the position table allows).
    public let maxTokens: Int
    /// Pooling the weight file recommends (`sentence` for sentence-transformers models, else `cls`).
    public let defaultPooling: Pooling
    /// Sigmoid (multi-label) or softmax scores from the classifier's logits.
    public let multiLabel: Bool

    let wordEmbeddings: Tensor
    let positionEmbeddings: Tensor
    let tokenTypeEmbeddings: Tensor?
    let embeddingNorm: LayerNorm
    let encoder: TransformerEncoder
    let classifierDense: Linear?
    let classifierOut: Linear?
    /// RoBERTa: positions are offset past the padding index.
    let paddingIndex: Int?

    /// Hyper-parameters from `affect.config`: the Hugging Face `config.json` keys, plus `max_seq_length` and
    /// `pooling` for sentence-transformers models. Sizes that are absent come from the tensors' shapes; those
    /// present must agree with them.
    public struct Config: ModelConfiguration {
        public var hiddenSize: Int?
        public var vocabSize: Int?
        public var maxPositionEmbeddings: Int?
        public var typeVocabSize: Int?
        public var heads = 12
        public var layers: Int?
        /// Absent: RoBERTa's 1e-5, BERT's 1e-12.
        public var layerNormEps: Float?
        /// Absent: RoBERTa's 1, BERT's 0.
        public var padTokenId: Int?
        public var maxSeqLength: Int?
        public var problemType = ""
        public var pooling: Pooling?

        enum CodingKeys: String, CodingKey {
            case hiddenSize = "hidden_size", vocabSize = "vocab_size", maxPositionEmbeddings = "max_position_embeddings"
            case typeVocabSize = "type_vocab_size", heads = "num_attention_heads", layers = "num_hidden_layers"
            case layerNormEps = "layer_norm_eps", padTokenId = "pad_token_id", maxSeqLength = "max_seq_length"
            case problemType = "problem_type", pooling, hiddenAct = "hidden_act"
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            func optionalInt(_ k: CodingKeys, in range: ClosedRange<Int>) throws -> Int? {
                try c.contains(k) && !c.decodeNil(forKey: k) ? try c.int(k, in: range) : nil
            }
            hiddenSize = try optionalInt(.hiddenSize, in: WeightFile.Limits.width)
            vocabSize = try optionalInt(.vocabSize, in: 1 ... Int.max)
            maxPositionEmbeddings = try optionalInt(.maxPositionEmbeddings, in: 1 ... Int.max)
            typeVocabSize = try optionalInt(.typeVocabSize, in: 1 ... Int.max)
            heads = try c.int(.heads, in: WeightFile.Limits.heads)
            layers = try optionalInt(.layers, in: WeightFile.Limits.layers)
            layerNormEps = c.contains(.layerNormEps) ? try c.eps(.layerNormEps, default: 1e-12) : nil
            padTokenId = try optionalInt(.padTokenId, in: 0 ... Int.max)
            maxSeqLength = try optionalInt(.maxSeqLength, in: 2 ... WeightFile.Limits.tokens.upperBound)
            problemType = try c.string(.problemType, default: "")
            _ = try c.string(.hiddenAct, default: "gelu", oneOf: ["gelu"])
            if c.contains(.pooling) {
                pooling = Pooling(rawValue: try c.string(.pooling, default: "", oneOf: Pooling.allCases.map(\.rawValue)))
            }
        }
    }

    public init(weights w: WeightFile) throws {
        try w.require(arch: "roberta", "bert")
        arch = w.arch
        labels = w.labels
        guard let wordName = w.file.tensors.map(\.name).filter({ $0.hasSuffix("embeddings.word_embeddings.weight") }).min(by: { $0.count < $1.count }) else {
            throw AffectError.badInput("\(w.path): tensor `embeddings.word_embeddings.weight` is missing (arch \(w.arch)).")
        }
        let prefix = String(wordName.dropLast("embeddings.word_embeddings.weight".count))
        wordEmbeddings = try w.tensor(wordName, shape: [-1, -1])
        hidden = wordEmbeddings.shape[1]
        let vocab = wordEmbeddings.shape[0]
        // Config numbers that name the tables' sizes must agree with them (a converter that mixed files up).
        let config = try w.configuration(Config.self)
        for (key, value, size, table) in [("hidden_size", config.hiddenSize, hidden, wordName), ("vocab_size", config.vocabSize, vocab, wordName)] {
            guard value == nil || value == size else { throw w.problem("config `\(key)` is \(value!) but tensor `\(table)` has \(size).") }
        }
        let positionName = "\(prefix)embeddings.position_embeddings.weight"
        positionEmbeddings = try w.tensor(positionName, shape: [-1, hidden])
        let typeName = "\(prefix)embeddings.token_type_embeddings.weight"
        tokenTypeEmbeddings = try w.optionalTensor(typeName, shape: [-1, hidden])
        for (key, value, size, table) in [("max_position_embeddings", config.maxPositionEmbeddings, positionEmbeddings.shape[0], positionName),
                                          ("type_vocab_size", config.typeVocabSize, tokenTypeEmbeddings?.shape[0] ?? 1, typeName)] {
            guard value == nil || value == size else { throw w.problem("config `\(key)` is \(value!) but tensor `\(table)` has \(size) rows.") }
        }
        let eps = config.layerNormEps ?? (w.arch == "roberta" ? 1e-5 : 1e-12)
        embeddingNorm = try w.layerNorm("\(prefix)embeddings.LayerNorm", width: hidden, eps: eps)
        guard config.heads <= hidden else { throw w.problem("config `num_attention_heads` is \(config.heads), more than the \(hidden) channels.") }
        encoder = try TransformerEncoder(weights: w, prefix: "\(prefix)encoder.layer", names: .bert, heads: config.heads, eps: eps,
                                         placement: .post, activation: .gelu, width: hidden, count: config.layers)
        // The pad id is a word id; RoBERTa also counts positions from it, so the table needs the rows after it.
        let pad = config.padTokenId ?? (w.arch == "roberta" ? 1 : 0)
        guard pad < vocab else { throw w.problem("config `pad_token_id` is \(pad), expected an integer in 0…\(vocab - 1).") }
        paddingIndex = w.arch == "roberta" ? pad : nil
        let positions = positionEmbeddings.shape[0] - (paddingIndex.map { $0 + 1 } ?? 0)
        // Two positions at least: the special tokens around a text.
        guard positions >= 2 else {
            throw w.problem("tensor `\(positionName)` has \(positionEmbeddings.shape[0]) rows, too few for config `pad_token_id` = \(pad) (positions start after it).")
        }
        maxTokens = min(config.maxSeqLength ?? positions, positions)
        if w.contains("classifier.dense.weight") {
            classifierDense = try w.linear("classifier.dense", in: hidden, out: hidden, activation: .tanh)
            let o = try w.linear("classifier.out_proj", in: hidden)
            try w.requireLabels(count: o.outFeatures, of: "classifier.out_proj.weight")
            classifierOut = o
        } else if w.contains("classifier.weight") {
            // BertForSequenceClassification: pooler (dense + tanh on [CLS]) then a linear layer.
            classifierDense = try w.linear("\(prefix)pooler.dense", in: hidden, out: hidden, activation: .tanh)
            let o = try w.linear("classifier", in: hidden)
            try w.requireLabels(count: o.outFeatures, of: "classifier.weight")
            classifierOut = o
        } else {
            classifierDense = nil; classifierOut = nil
        }
        multiLabel = config.problemType == "multi_label_classification"
        defaultPooling = config.pooling ?? (config.maxSeqLength != nil ? .sentence : .cls)
    }

    public var hasClassifier: Bool { classifierOut != nil }
    public var vocabularySize: Int { wordEmbeddings.shape[0] }

    /// How token states become one vector per text.
    public enum Pooling: String, Sendable, CaseIterable {
        /// `last_hidden_state` itself, `[B, L, H]` (what the authors' feature extraction used).
        case token
        /// Attention-masked mean over tokens.
        case mean
        /// The first token (`[CLS]` / `<s>`).
        case cls
        /// sentence-transformers: masked mean, then L2 normalisation.
        case sentence
    }

    /// `[B, L, H]` token states of a padded batch; `ids` and `mask` are row-major `[batch, length]`.
    /// - Throws: when an id is outside the vocabulary or the sequence is longer than the position table.
    public func hiddenStates(ids: [Int], mask: [Int], batch: Int, length: Int, tokenTypes: [Int]? = nil,
                             source: String) throws -> Tensor {
        guard batch > 0, length > 0 else {
            throw AffectError.badInput("\(source): a \(batch)×\(length) batch of token ids; every sequence needs at least one token.")
        }
        guard ids.count == batch * length, mask.count == batch * length else {
            throw AffectError.badInput("\(source): \(ids.count) ids and \(mask.count) mask values for a \(batch)×\(length) batch.")
        }
        let vocab = wordEmbeddings.shape[0], h = hidden
        if let bad = ids.first(where: { $0 < 0 || $0 >= vocab }) {
            throw AffectError.badInput("\(source): token id \(bad) is outside the vocabulary of \(vocab).")
        }
        // Position ids.
        var positions = [Int](repeating: 0, count: ids.count)
        for b in 0..<batch {
            var count = 0
            for j in 0..<length {
                if let pad = paddingIndex {
                    // RoBERTa: cumulative count of non-padding ids, offset by the padding index.
                    if ids[b * length + j] != pad { count += 1; positions[b * length + j] = pad + count } else { positions[b * length + j] = pad }
                } else { positions[b * length + j] = j }
            }
        }
        if let bad = positions.first(where: { $0 >= positionEmbeddings.shape[0] }) {
            throw AffectError.badInput("\(source): sequence of \(length) tokens needs position \(bad), beyond the model's \(positionEmbeddings.shape[0]) positions; truncate or window the text.")
        }
        let types = tokenTypes ?? [Int](repeating: 0, count: ids.count)
        let typeCount = tokenTypeEmbeddings?.shape[0] ?? 1
        if let bad = types.first(where: { $0 < 0 || $0 >= typeCount }) {
            throw AffectError.badInput("\(source): token type \(bad) is outside the model's \(typeCount) types.")
        }
        let x = Tensor(uninitialized: [batch, length, h])
        let we = wordEmbeddings.data, pe = positionEmbeddings.data, te = tokenTypeEmbeddings?.data
        ids.withUnsafeBufferPointer { idp in positions.withUnsafeBufferPointer { pp in types.withUnsafeBufferPointer { tp in
            parallelFor(batch * length, minChunk: 32) { r0, r1 in
                for r in r0..<r1 {
                    let o = x.data + r * h, w = we + idp[r] * h, p = pe + pp[r] * h
                    if let te {
                        let t = te + tp[r] * h
                        for k in 0..<h { o[k] = w[k] + t[k] + p[k] }
                    } else {
                        for k in 0..<h { o[k] = w[k] + p[k] }
                    }
                }
            }
        } } }
        let keyMask = mask.map { Float($0 != 0 ? 1 : 0) }
        return encoder(embeddingNorm(x), keyMask: keyMask)
    }

    /// Pools `[B, L, H]` states with `mask` (row-major `[B, L]`) → `[B, H]` (or the states for `.token`).
    public func pool(_ states: Tensor, mask: [Int], _ pooling: Pooling) -> Tensor {
        let (b, l, h) = (states.shape[0], states.shape[1], states.shape[2])
        switch pooling {
        case .token: return states
        case .cls:
            let out = Tensor(uninitialized: [b, h])
            for i in 0..<b { (out.data + i * h).update(from: states.data + i * l * h, count: h) }
            return out
        case .mean, .sentence:
            let out = Tensor.zeros([b, h])
            for i in 0..<b {
                let o = out.data + i * h
                var n: Float = 0
                for j in 0..<l where mask[i * l + j] != 0 {
                    let s = states.data + (i * l + j) * h
                    for k in 0..<h { o[k] += s[k] }
                    n += 1
                }
                // sentence-transformers divides by the mask sum clamped at 1e-9.
                let inv = 1 / max(n, 1e-9)
                for k in 0..<h { o[k] *= inv }
                if pooling == .sentence {
                    var ss: Float = 0
                    for k in 0..<h { ss += o[k] * o[k] }
                    // F.normalize: x / max(‖x‖, 1e-12).
                    let norm = max(ss.squareRoot(), 1e-12)
                    for k in 0..<h { o[k] /= norm }
                }
            }
            return out
        }
    }

    /// Classifier logits `[B, labels]` from `[B, L, H]` states (token 0), or nil without a head.
    public func logits(_ states: Tensor) -> Tensor? {
        guard let dense = classifierDense, let out = classifierOut else { return nil }
        let first = pool(states, mask: [], .cls)
        return out(dense(first))
    }

    /// Scores from logits: sigmoid for multi-label heads, softmax otherwise.
    public func scores(_ logits: Tensor) -> Tensor {
        multiLabel ? activation(logits, .sigmoid) : softmax(logits)
    }

    // MARK: InferenceModel

    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        let idsT = try inputs.int("input_ids", source: source)
        guard idsT.shape.count == 2, idsT.shape[0] > 0, idsT.shape[1] > 0 else {
            throw AffectError.badInput("\(source): `input.input_ids` has shape \(idsT.shape), expected N×L with N, L ≥ 1.")
        }
        let (b, l) = (idsT.shape[0], idsT.shape[1])
        // Activations grow with the token count: one pass takes at most 2^16 tokens (512 sequences of 128).
        guard b * l <= 1 << 16 else {
            throw AffectError.badInput("\(source): `input.input_ids` holds \(b * l) tokens, over the \(1 << 16) one pass takes.")
        }
        let vocab = Int64(vocabularySize)
        if let i = idsT.values.firstIndex(where: { $0 < 0 || $0 >= vocab }) {
            throw AffectError.badInput("\(source): `input.input_ids` holds \(idsT.values[i]) at index \(i), outside the vocabulary of \(vocab).")
        }
        let maskT = try inputs.mask(shape: idsT.shape, source: source)
        let types = inputs.ints["token_type_ids"]
        if let t = types, t.shape != idsT.shape {
            throw AffectError.badInput("\(source): `input.token_type_ids` has shape \(t.shape), expected \(idsT.shape).")
        }
        let typeCount = Int64(tokenTypeEmbeddings?.shape[0] ?? 1)
        if let t = types, let i = t.values.firstIndex(where: { $0 < 0 || $0 >= typeCount }) {
            throw AffectError.badInput("\(source): `input.token_type_ids` holds \(t.values[i]) at index \(i), outside the model's \(typeCount) types.")
        }
        let ids = idsT.values.map { Int($0) }
        let mask = maskT?.values.map { Int($0) } ?? [Int](repeating: 1, count: ids.count)
        let states = try hiddenStates(ids: ids, mask: mask, batch: b, length: l, tokenTypes: types?.values.map { Int($0) },
                                      source: source)
        var out: [String: Tensor] = ["last_hidden_state": states]
        if let lg = logits(states) {
            out["logits"] = lg
            out["probs"] = scores(lg)
        }
        if defaultPooling != .token { out["pooled"] = pool(states, mask: mask, defaultPooling) }
        return out
    }

    public func benchInputs(_ shape: BenchShape) -> ModelInputs {
        let l = min(max(shape.tokens, 2), maxTokens), b = shape.batch
        let vocab = Int64(wordEmbeddings.shape[0])
        var ids = [Int64](repeating: 0, count: b * l)
        var state: UInt64 = 12345
        for i in 0..<ids.count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            ids[i] = Int64(state >> 33) % max(vocab - 10, 1) + 5
        }
        return ModelInputs(ints: ["input_ids": IntTensor(shape: [b, l], values: ids),
                                  "attention_mask": IntTensor(shape: [b, l], values: [Int64](repeating: 1, count: b * l))])
    }

    public func flops(_ inputs: ModelInputs) -> Double? {
        guard let ids = inputs.ints["input_ids"], ids.shape.count == 2 else { return nil }
        let (b, l) = (Double(ids.shape[0]), Double(ids.shape[1]))
        let h = Double(hidden)
        let ffn = Double(encoder.layers.first?.intermediate.outFeatures ?? 4 * hidden)
        let perLayer = b * l * (4 * h * h + 2 * h * ffn) * 2 + b * 2 * l * l * h * 2
        return perLayer * Double(encoder.layers.count)
    }
}
