import AffectKernels

/// One transformer encoder layer as BERT, RoBERTa and wav2vec 2.0 / HuBERT build it: multi-head
/// self-attention with biased q/k/v/output projections, residual connections, LayerNorm and a GELU feed-forward
/// block.
///
/// ```
/// post-norm (BERT, RoBERTa, wav2vec2-base):   x = LN₁(x + Attn(x));      x = LN₂(x + FFN(x))
/// pre-norm  (wav2vec2-large "stable layer norm"): x = x + Attn(LN₁(x));  x = x + FFN(LN₂(x))
/// Attn(x) = O · softmax(Q·Kᵀ/√d + mask) · V      FFN(x) = W₂ · GELU(W₁·x + b₁) + b₂
/// ```
///
/// Tensor names differ between the families and are given by ``Names`` (``Names/bert`` for
/// `BertLayer`/`RobertaLayer`, ``Names/wav2vec2`` for `Wav2Vec2EncoderLayer`); every tensor is looked up as
/// `prefix + "." + name + ".weight"` / `".bias"`.
public struct TransformerEncoderLayer: Sendable {
    /// Where the LayerNorms sit relative to the residual additions.
    public enum NormPlacement: Sendable { case post, pre }

    /// Sub-module names of one layer, relative to the layer's prefix.
    public struct Names: Sendable {
        public var query, key, value, attentionOutput: String
        /// The LayerNorm around the attention block (after it for post-norm, before it for pre-norm).
        public var attentionNorm: String
        public var intermediate, output: String
        /// The LayerNorm around the feed-forward block.
        public var outputNorm: String

        public init(query: String, key: String, value: String, attentionOutput: String, attentionNorm: String,
                    intermediate: String, output: String, outputNorm: String) {
            self.query = query; self.key = key; self.value = value; self.attentionOutput = attentionOutput
            self.attentionNorm = attentionNorm; self.intermediate = intermediate; self.output = output
            self.outputNorm = outputNorm
        }

        /// Hugging Face `BertLayer` / `RobertaLayer`.
        public static let bert = Names(query: "attention.self.query", key: "attention.self.key",
                                       value: "attention.self.value", attentionOutput: "attention.output.dense",
                                       attentionNorm: "attention.output.LayerNorm", intermediate: "intermediate.dense",
                                       output: "output.dense", outputNorm: "output.LayerNorm")
        /// Hugging Face `Wav2Vec2EncoderLayer` / `Wav2Vec2EncoderLayerStableLayerNorm` (also HuBERT).
        public static let wav2vec2 = Names(query: "attention.q_proj", key: "attention.k_proj", value: "attention.v_proj",
                                           attentionOutput: "attention.out_proj", attentionNorm: "layer_norm",
                                           intermediate: "feed_forward.intermediate_dense",
                                           output: "feed_forward.output_dense", outputNorm: "final_layer_norm")
    }

    public let hidden: Int
    public let heads: Int
    public let placement: NormPlacement
    /// q, k and v projections stacked into one `[3·hidden, hidden]` matrix: one GEMM instead of three.
    let qkv: Linear
    let attentionOutput: Linear
    let attentionNorm: LayerNorm
    let intermediate: Linear
    let output: Linear
    let outputNorm: LayerNorm

    /// Loads the layer at `prefix` (e.g. `encoder.layer.3`).
    ///
    /// - Parameters:
    ///   - eps: LayerNorm epsilon (BERT 1e-12, RoBERTa 1e-5, wav2vec2 1e-5).
    ///   - activation: the feed-forward non-linearity (HF `hidden_act`; `gelu` is the exact erf form).
    /// - Throws: ``AffectError/badInput(_:)`` naming the file and tensor when one is missing or mis-shaped.
    public init(weights w: WeightFile, prefix: String, names: Names = .bert, heads: Int, eps: Float,
                placement: NormPlacement = .post, activation: Activation = .gelu) throws {
        let q = try w.tensor("\(prefix).\(names.query).weight", shape: [-1, -1])
        let h = q.shape[0]
        guard q.shape[1] == h else {
            throw AffectError.badInput("\(w.path): tensor `\(prefix).\(names.query).weight` has shape \(q.shape), expected a square matrix.")
        }
        guard heads > 0, h % heads == 0 else {
            throw AffectError.badInput("\(w.path): hidden size \(h) of `\(prefix)` is not divisible by \(heads) attention heads (config `num_attention_heads`).")
        }
        hidden = h; self.heads = heads; self.placement = placement
        func linear(_ name: String, inFeatures: Int, outFeatures: Int? = nil, act: Activation = .none) throws -> Linear {
            try w.linear("\(prefix).\(name)", in: inFeatures, out: outFeatures, activation: act, precision: w.precision)
        }
        func norm(_ name: String) throws -> LayerNorm { try w.layerNorm("\(prefix).\(name)", width: h, eps: eps) }
        func tensors(_ name: String) throws -> (weight: Tensor, bias: Tensor) {
            (try w.tensor("\(prefix).\(name).weight", shape: [h, h]), try w.tensor("\(prefix).\(name).bias", shape: [h]))
        }
        let parts = [try tensors(names.query), try tensors(names.key), try tensors(names.value)]
        let weight = Tensor(uninitialized: [3 * h, h], arena: Arena()), bias = Tensor(uninitialized: [3 * h], arena: Arena())
        for (i, p) in parts.enumerated() {
            (weight.data + i * h * h).update(from: p.weight.data, count: h * h)
            (bias.data + i * h).update(from: p.bias.data, count: h)
        }
        qkv = Linear(weight: weight, bias: bias, precision: w.precision)
        attentionOutput = try linear(names.attentionOutput, inFeatures: h, outFeatures: h)
        attentionNorm = try norm(names.attentionNorm)
        intermediate = try linear(names.intermediate, inFeatures: h, act: activation)
        output = try linear(names.output, inFeatures: intermediate.outFeatures, outFeatures: h)
        outputNorm = try norm(names.outputNorm)
    }

    /// `x + Attn(x)` for `[B, L, H]`; the residual is added in the output projection's epilogue. Heads of 64
    /// channels (BERT, RoBERTa, wav2vec 2.0, HuBERT) take ``longAttention(qkv:heads:keyMask:scale:)``, the others
    /// ``attention(qkv:heads:keyMask:scale:)``.
    func selfAttention(_ x: Tensor, residual: Tensor, keyMask: [Float]?) -> Tensor {
        attentionOutput(longAttention(qkv: qkv(x), heads: heads, keyMask: keyMask), adding: residual)
    }

    /// `residual + FFN(x)` (the activation runs in the intermediate Linear's epilogue, the residual in the
    /// output Linear's).
    func feedForward(_ x: Tensor, residual: Tensor) -> Tensor { output(intermediate(x), adding: residual) }

    /// `x`: `[B, L, hidden]`; `keyMask`: `[B·L]`, 1 = token, 0 = padding (padding keys get no attention).
    public func callAsFunction(_ x: Tensor, keyMask: [Float]? = nil) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] == hidden, "encoder layer of width \(hidden) got \(x.shape)")
        switch placement {
        case .post:
            let y = attentionNorm(selfAttention(x, residual: x, keyMask: keyMask))
            return outputNorm(feedForward(y, residual: y))
        case .pre:
            let a = selfAttention(attentionNorm(x), residual: x, keyMask: keyMask)
            return feedForward(outputNorm(a), residual: a)
        }
    }
}

/// A stack of ``TransformerEncoderLayer``s, loaded from `prefix.0`, `prefix.1`, … while they exist.
public struct TransformerEncoder: Sendable {
    public let layers: [TransformerEncoderLayer]

    /// - Parameters:
    ///   - prefix: e.g. `encoder.layer` (BERT) or `encoder.layers` (wav2vec2).
    ///   - width: the width every layer must have (the embeddings'); `nil` takes the first layer's.
    ///   - count: the number of layers expected (HF `num_hidden_layers`); `nil` loads every layer present. A file
    ///     with more layers than `count` is rejected.
    public init(weights w: WeightFile, prefix: String, names: TransformerEncoderLayer.Names = .bert, heads: Int,
                eps: Float, placement: TransformerEncoderLayer.NormPlacement = .post, activation: Activation = .gelu,
                width: Int? = nil, count: Int? = nil) throws {
        var layers: [TransformerEncoderLayer] = []
        while count.map({ layers.count < $0 }) ?? w.contains("\(prefix).\(layers.count).\(names.query).weight") {
            let name = "\(prefix).\(layers.count).\(names.query).weight"
            // Each layer's input is the previous one's output: all share one width.
            if let h = width ?? layers.first?.hidden, let s = w.shape(name), s != [h, h] {
                throw w.problem("tensor `\(name)` has shape \(s), expected [\(h), \(h)] (the width of the \(width == nil ? "first layer" : "embeddings")).")
            }
            layers.append(try TransformerEncoderLayer(weights: w, prefix: "\(prefix).\(layers.count)", names: names,
                                                      heads: heads, eps: eps, placement: placement, activation: activation))
        }
        guard !layers.isEmpty else {
            throw AffectError.badInput("\(w.path): tensor `\(prefix).0.\(names.query).weight` is missing (arch \(w.arch)).")
        }
        if let count, w.contains("\(prefix).\(count).\(names.query).weight") {
            throw w.problem("the file has more encoder layers than config `num_hidden_layers` = \(count) (tensor `\(prefix).\(count).\(names.query).weight`).")
        }
        self.layers = layers
    }

    public init(layers: [TransformerEncoderLayer]) { self.layers = layers }

    /// Runs every layer. `hiddenStates`, when given, receives each layer's output with its index (0-based).
    public func callAsFunction(_ x: Tensor, keyMask: [Float]? = nil,
                               hiddenStates: ((Int, Tensor) -> Void)? = nil) -> Tensor {
        var x = x
        for (i, layer) in layers.enumerated() {
            x = layer(x, keyMask: keyMask)
            hiddenStates?(i, x)
        }
        return x
    }
}
