import Foundation
import AffectKernels

/// wav2vec 2.0 and HuBERT as Hugging Face transformers builds them (`Wav2Vec2Model`, `HubertModel`, and the
/// encoder of `Wav2Vec2ForCTC` / `HubertForCTC` with its `lm_head`).
///
/// ```
/// input_values [N, T] (16 kHz, normalised by the processor)
///   ─ feature encoder: 7 × conv1d (512 ch; kernels 10,3,3,3,3,2,2; strides 5,2,2,2,2,2,2)
///       "group" (base):  conv ─ GroupNorm(512 groups, first layer only) ─ GELU      (no conv bias)
///       "layer" (large): conv ─ LayerNorm over channels ─ GELU, every layer           (conv bias)
///   ─ feature projection: LayerNorm(512) ─ Linear 512 → H              [N, T', H], T' ≈ T / 320 (50 Hz)
///   ─ padded frames set to 0, then x + GELU(pos_conv(x)): conv k 128, 16 groups, padding 64, weight norm
///     over dim 2 (folded at load), last frame dropped
///   post-norm (base):           LayerNorm ─ L × [x = LN(x + attn(x)); x = LN(x + FFN(x))]
///   stable-layer-norm (large):  L × [x = x + attn(LN(x)); x = x + FFN(LN(x))] ─ LayerNorm
///   ─ last_hidden_state;  lm_head (CTC) → logits over the vocabulary
/// ```
/// `hidden_states.k` are the encoder's per-layer states as transformers 5 returns them with
/// `output_hidden_states=True`: k < L is the input of layer k, k = L the output of the last layer. In the
/// stable-layer-norm variant that is the state *before* the final LayerNorm (transformers 4 returned it after).
///
/// An `attention_mask` (1 = sample, 0 = padding) is turned into a frame mask exactly as transformers does:
/// item i keeps the first `frames(Σ mask_i)` frames; the others are zeroed before the positional convolution and
/// never attended to. All computation is channels-last `[N, frames, channels]`; the feature encoder's strided
/// convolutions read the input in place (``StridedConv1D``).
public struct Wav2Vec2: InferenceModel {
    public let arch: String

    /// Hyper-parameters from the weight file's `affect.config` (Hugging Face `config.json` names; absent keys take
    /// wav2vec2-base's values).
    public struct Config: ModelConfiguration {
        public var hiddenSize = 768
        public var heads = 12
        public var layers = 12
        public var intermediateSize = 3072
        public var convDims = [512, 512, 512, 512, 512, 512, 512]
        public var convKernels = [10, 3, 3, 3, 3, 2, 2]
        public var convStrides = [5, 2, 2, 2, 2, 2, 2]
        /// `group` or `layer`.
        public var featureNorm = "group"
        public var stableLayerNorm = false
        public var layerNormEps: Float = 1e-5
        public var positionalKernel = 128
        public var positionalGroups = 16
        /// CTC decoding: the blank (pad) token id, the word delimiter, lower-casing, tokenizer space clean-up.
        public var padTokenId = 0
        public var wordDelimiterToken = "|"
        public var doLowerCase = false
        public var cleanUpTokenizationSpaces = false
        /// Whether `intermediate_size` was given (the encoder's feed-forward width is checked against it then).
        public var declaresIntermediateSize = false
        /// The processor's `do_normalize`: zero mean, unit variance per utterance (`affect.preprocess`).
        public var normalizeInput = true
        /// The rate audio is resampled to before the model (`affect.preprocess` `sampling_rate`).
        public var sampleRate = 16000

        enum CodingKeys: String, CodingKey {
            case hiddenSize = "hidden_size", heads = "num_attention_heads", layers = "num_hidden_layers"
            case intermediateSize = "intermediate_size", convDims = "conv_dim", convKernels = "conv_kernel"
            case convStrides = "conv_stride", featureNorm = "feat_extract_norm", stableLayerNorm = "do_stable_layer_norm"
            case layerNormEps = "layer_norm_eps", positionalKernel = "num_conv_pos_embeddings"
            case positionalGroups = "num_conv_pos_embedding_groups", hiddenAct = "hidden_act"
            case featureActivation = "feat_extract_activation", positionalBatchNorm = "conv_pos_batch_norm", adapter = "add_adapter"
            case padTokenId = "pad_token_id", wordDelimiterToken = "word_delimiter_token", doLowerCase = "do_lower_case"
            case cleanUpTokenizationSpaces = "clean_up_tokenization_spaces"
        }

        public init() {}

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            hiddenSize = try c.int(.hiddenSize, default: 768, in: WeightFile.Limits.width)
            heads = try c.int(.heads, default: 12, in: WeightFile.Limits.heads)
            layers = try c.int(.layers, default: 12, in: WeightFile.Limits.layers)
            intermediateSize = try c.int(.intermediateSize, default: 3072, in: WeightFile.Limits.width)
            declaresIntermediateSize = c.contains(.intermediateSize)
            convDims = try c.ints(.convDims, default: convDims, in: WeightFile.Limits.width, count: 1 ... 32)
            convKernels = try c.ints(.convKernels, default: convKernels, in: WeightFile.Limits.kernel, count: 1 ... 32)
            convStrides = try c.ints(.convStrides, default: convStrides, in: WeightFile.Limits.stride, count: 1 ... 32)
            featureNorm = try c.string(.featureNorm, default: "group", oneOf: ["group", "layer"])
            for key in [CodingKeys.hiddenAct, .featureActivation] { _ = try c.string(key, default: "gelu", oneOf: ["gelu"]) }
            for key in [CodingKeys.positionalBatchNorm, .adapter] where try c.bool(key, default: false) {
                throw ConfigurationError("`\(key.stringValue)` = true is not supported.")
            }
            stableLayerNorm = try c.bool(.stableLayerNorm, default: false)
            layerNormEps = try c.eps(.layerNormEps, default: 1e-5)
            positionalKernel = try c.int(.positionalKernel, default: 128, in: WeightFile.Limits.kernel)
            positionalGroups = try c.int(.positionalGroups, default: 16, in: 1 ... hiddenSize)
            padTokenId = try c.int(.padTokenId, default: 0, in: 0 ... Int.max)
            wordDelimiterToken = try c.string(.wordDelimiterToken, default: "|")
            doLowerCase = try c.bool(.doLowerCase, default: false)
            cleanUpTokenizationSpaces = try c.bool(.cleanUpTokenizationSpaces, default: false)
        }

        public func validate() throws(ConfigurationError) {
            guard hiddenSize % heads == 0 else { throw ConfigurationError("hidden_size \(hiddenSize) is not divisible by num_attention_heads \(heads).") }
            guard hiddenSize % positionalGroups == 0 else {
                throw ConfigurationError("hidden_size \(hiddenSize) is not divisible by num_conv_pos_embedding_groups \(positionalGroups).")
            }
            guard convDims.count == convKernels.count, convDims.count == convStrides.count else {
                throw ConfigurationError("conv_dim, conv_kernel and conv_stride must be lists of equal length.")
            }
            // The hop (samples per frame) and receptive field stay small: frame arithmetic never overflows.
            var hop = 1, field = 1
            for (k, s) in zip(convKernels, convStrides).reversed() {
                hop *= s; field = (field - 1) * s + k
                guard hop <= 1 << 16, field <= 1 << 20 else {
                    throw ConfigurationError("conv_kernel \(convKernels) and conv_stride \(convStrides) give an absurd hop or receptive field.")
                }
            }
        }

        /// Samples per output frame (320 for the standard encoder: 20 ms at 16 kHz).
        public var hop: Int { convStrides.reduce(1, *) }
        /// Samples one output frame sees (400: 25 ms).
        public var receptiveField: Int {
            var r = 1
            for (k, s) in zip(convKernels, convStrides).reversed() { r = (r - 1) * s + k }
            return r
        }
    }

    public let config: Config
    /// CTC vocabulary (`affect.labels`, token strings in id order), empty without an `lm_head`.
    public let vocabulary: [String]
    /// CTC settings from `affect.config`: blank (pad) token id, word delimiter, lower-casing.
    public let ctc: CTCDecoder?

    struct FeatureLayer {
        var conv: StridedConv1D
        /// GroupNorm with one group per channel (first layer of the "group" encoder).
        var groupNorm: GroupNorm?
        /// Per-frame LayerNorm over channels ("layer" encoder).
        var layerNorm: LayerNorm?
    }

    let featureLayers: [FeatureLayer]
    let projectionNorm: LayerNorm?
    let projection: Linear
    let positional: GroupedConv1D
    let encoderNorm: LayerNorm
    /// The shared BERT-style layer (``TransformerEncoderLayer``) with wav2vec2's tensor names.
    let encoder: TransformerEncoder
    let lmHead: Linear?

    public init(weights w: WeightFile) throws {
        try w.require(arch: "wav2vec2", "hubert")
        arch = w.arch
        func bad(_ m: String) -> AffectError { .badInput("\(w.path): \(m)") }
        var config = try w.configuration(Config.self)
        config.normalizeInput = (w.preprocess["do_normalize"] as? NSNumber)?.boolValue ?? true
        // The rate audio is resampled to before the model: checked here, where the file is named.
        config.sampleRate = try w.preprocessInt("sampling_rate", default: 16000, in: WeightFile.Limits.sampleRate)
        self.config = config
        let (hidden, heads, eps) = (config.hiddenSize, config.heads, config.layerNormEps)
        let (convDims, convKernels, convStrides, featureNorm) = (config.convDims, config.convKernels, config.convStrides, config.featureNorm)

        // Checkpoints of the *ForCTC classes nest the encoder under `wav2vec2.` / `hubert.`.
        let prefix = [arch + ".", "wav2vec2.", "hubert.", ""].first { w.contains("\($0)feature_projection.projection.weight") } ?? ""
        func t(_ name: String, _ shape: [Int]) throws -> Tensor { try w.tensor(prefix + name, shape: shape) }
        func opt(_ name: String, _ shape: [Int]) throws -> Tensor? { try w.optionalTensor(prefix + name, shape: shape) }
        func layerNorm(_ name: String, _ c: Int, eps: Float) throws -> LayerNorm {
            LayerNorm(weight: try t("\(name).weight", [c]), bias: try t("\(name).bias", [c]), eps: eps)
        }
        func linear(_ name: String, _ cin: Int, _ cout: Int, act: Activation = .none) throws -> Linear {
            try w.linear(prefix + name, in: cin, out: cout, activation: act)
        }

        // Feature encoder. nn.GroupNorm / nn.LayerNorm here use PyTorch's default eps (1e-5), not layer_norm_eps.
        var layers: [FeatureLayer] = []
        var cin = 1
        for (i, dim) in convDims.enumerated() {
            let p = "feature_extractor.conv_layers.\(i)"
            let weight = try t("\(p).conv.weight", [dim, cin, convKernels[i]])
            let bias = try opt("\(p).conv.bias", [dim])
            // Group-norm encoders (base) apply GELU right after layers 1…: in the GEMM's epilogue.
            let fusedGELU = featureNorm != "layer" && i > 0
            var layer = FeatureLayer(conv: StridedConv1D(weight: weight, bias: bias, stride: convStrides[i],
                                                         activation: fusedGELU ? .gelu : .none),
                                     groupNorm: nil, layerNorm: nil)
            if featureNorm == "layer" {
                layer.layerNorm = try layerNorm("\(p).layer_norm", dim, eps: 1e-5)
            } else if i == 0 {
                layer.groupNorm = GroupNorm(groups: dim, weight: try t("\(p).layer_norm.weight", [dim]),
                                            bias: try t("\(p).layer_norm.bias", [dim]), eps: 1e-5)
            }
            layers.append(layer)
            cin = dim
        }
        featureLayers = layers
        // HuBERT's `feat_proj_layer_norm` (default true) may drop this LayerNorm.
        projectionNorm = w.contains(prefix + "feature_projection.layer_norm.weight")
            ? try layerNorm("feature_projection.layer_norm", cin, eps: eps) : nil
        projection = try linear("feature_projection.projection", cin, hidden)

        // Positional convolution with weight norm over dim 2: w = g · v / ‖v‖, the norm taken over dims 0 and 1
        // separately for every kernel tap. Folded here, in Double.
        let (k, groups) = (config.positionalKernel, config.positionalGroups)
        let pc = "encoder.pos_conv_embed.conv"
        let shape = [hidden, hidden / groups, k]
        let folded: Tensor
        if let v = try opt("\(pc).weight_v", shape) ?? opt("\(pc).parametrizations.weight.original1", shape) {
            guard let g = try opt("\(pc).weight_g", [1, 1, k]) ?? opt("\(pc).parametrizations.weight.original0", [1, 1, k]) else {
                throw bad("tensor `\(prefix)\(pc).weight_g` (or `parametrizations.weight.original0`) is missing (arch \(arch)).")
            }
            folded = Tensor(uninitialized: shape)
            let per = hidden * (hidden / groups)
            var norms = [Double](repeating: 0, count: k)
            for r in 0..<per { for j in 0..<k { let x = Double(v.data[r * k + j]); norms[j] += x * x } }
            for j in 0..<k { norms[j] = norms[j].squareRoot() }
            for r in 0..<per { for j in 0..<k {
                folded.data[r * k + j] = norms[j] > 0 ? Float(Double(g.data[j]) * Double(v.data[r * k + j]) / norms[j]) : 0
            } }
        } else if let plain = try opt("\(pc).weight", shape) {
            folded = plain
        } else {
            throw bad("tensor `\(prefix)\(pc).weight_v` (or `parametrizations.weight.original1`) is missing (arch \(arch)).")
        }
        positional = GroupedConv1D(weight: folded, bias: try t("\(pc).bias", [hidden]), padding: k / 2, groups: groups, activation: .gelu)
        encoderNorm = try layerNorm("encoder.layer_norm", hidden, eps: eps)

        encoder = try TransformerEncoder(weights: w, prefix: prefix + "encoder.layers", names: .wav2vec2, heads: heads, eps: eps,
                                         placement: config.stableLayerNorm ? .pre : .post, width: hidden, count: config.layers)
        if config.declaresIntermediateSize, let ffn = encoder.layers.first?.intermediate.outFeatures, ffn != config.intermediateSize {
            throw bad("config intermediate_size is \(config.intermediateSize) but the encoder's feed-forward layers are \(ffn) wide.")
        }

        if w.contains("lm_head.weight") {
            let head = try w.linear("lm_head", in: hidden, bias: .optional)
            try w.requireLabels(count: head.outFeatures, of: "lm_head.weight")
            lmHead = head
            vocabulary = w.labels
            if !vocabulary.isEmpty && config.padTokenId >= vocabulary.count {
                throw bad("config `pad_token_id` is \(config.padTokenId), expected an integer in 0…\(vocabulary.count - 1).")
            }
            ctc = vocabulary.isEmpty ? nil : try CTCDecoder(vocabulary: vocabulary, blank: config.padTokenId,
                                                             wordDelimiter: config.wordDelimiterToken, lowercase: config.doLowerCase,
                                                             secondsPerFrame: Double(config.hop) / Double(config.sampleRate),
                                                             cleanUpSpaces: config.cleanUpTokenizationSpaces)
        } else {
            lmHead = nil; vocabulary = []; ctc = nil
        }
    }

    /// Output frames for `samples` input samples (transformers' `_get_feat_extract_output_lengths`).
    public func frameCount(samples: Int) -> Int {
        var n = samples
        for (k, s) in zip(config.convKernels, config.convStrides) { n = n < k ? 0 : (n - k) / s + 1 }
        return n
    }

    /// Statistics that replace the first layer's GroupNorm statistics (per channel), so that windows of a long
    /// input are normalised like the whole input (see ``LongAudio``).
    public struct FeatureStatistics: Sendable {
        public var mean: [Float]
        public var variance: [Float]
        public init(mean: [Float], variance: [Float]) { self.mean = mean; self.variance = variance }
    }

    /// What one forward pass produced.
    public struct Output {
        /// `[N, frames, hidden]`.
        public var lastHiddenState: Tensor
        /// `hidden_states.k` for the requested k.
        public var hiddenStates: [Int: Tensor]
        /// `[N, frames, vocabulary]` when the model has an `lm_head` and logits were requested.
        public var logits: Tensor?
        /// Valid frames per item.
        public var frames: [Int]
    }

    /// Which hidden states to keep: none, all (`0...layers`), or some.
    public enum HiddenStates: Sendable { case none, all, only(Set<Int>) }

    /// The forward pass.
    /// - Parameters:
    ///   - input: `[N, T]` input values, already normalised as the processor does.
    ///   - lengths: valid samples per item (from an attention mask); nil = every item is T samples long.
    ///   - featureStatistics: fixed statistics for the first GroupNorm (windows of long audio).
    public func forward(_ input: Tensor, lengths: [Int]? = nil, hiddenStates: HiddenStates = .none, logits: Bool = true,
                        featureStatistics: FeatureStatistics? = nil) -> Output {
        let (n, samples) = (input.shape[0], input.shape[1])
        func keep(_ k: Int) -> Bool {
            switch hiddenStates { case .none: return false; case .all: return true; case .only(let s): return s.contains(k) }
        }

        // Feature encoder, [N, T, 1] → [N, T', 512].
        var x = input.reshaped([n, samples, 1])
        for layer in featureLayers {
            if let ln = layer.layerNorm {
                // LayerNorm and GELU in one pass, in place. A first layer with one input channel is too cheap
                // a product to thread on its own: its 65 MB output (10 s) is normalised block by block from L2.
                x = layer.conv.inChannels == 1
                    ? layer.conv(x, blockFrames: 64) { rows, frames in ln.normalize(rows: frames, rows, rows, activation: .gelu) }
                    : ln(layer.conv(x), activation: .gelu, inPlace: true)
                continue
            }
            x = layer.conv(x)
            if let gn = layer.groupNorm {
                if let s = featureStatistics {
                    let stats = BatchNorm(gamma: gn.weight, beta: gn.bias, mean: Tensor(shape: [s.mean.count], values: s.mean),
                                          variance: Tensor(shape: [s.variance.count], values: s.variance), eps: gn.eps)
                    x = stats(x, activation: .gelu)
                } else {
                    x = gn(x, activation: .gelu, inPlace: true)   // x is the conv output just made
                }
            }
        }
        let frames = x.shape[1]
        let valid = (lengths ?? Array(repeating: samples, count: n)).map { min(frameCount(samples: $0), frames) }

        if let norm = projectionNorm { x = norm(x) }
        x = projection(x)

        // Padded frames are zeroed before the positional convolution (transformers does the same).
        let hidden = config.hiddenSize
        var keyMask: [Float]? = nil
        if valid.contains(where: { $0 < frames }) {
            var mask = [Float](repeating: 0, count: n * frames)
            for i in 0..<n {
                for f in 0..<valid[i] { mask[i * frames + f] = 1 }
                if valid[i] < frames { (x.data + (i * frames + valid[i]) * hidden).initialize(repeating: 0, count: (frames - valid[i]) * hidden) }
            }
            keyMask = mask
        }
        // An even kernel gives frames + 1 outputs; transformers drops the last, so it is never computed.
        let pos = positional(x, frames: frames)
        addInPlace(pos, x)
        x = pos

        var states: [Int: Tensor] = [:]
        if !config.stableLayerNorm { x = encoderNorm(x) }
        if keep(0) { states[0] = x }
        // hidden_states.k (k ≥ 1) is the output of layer k − 1.
        x = encoder(x, keyMask: keyMask, hiddenStates: { i, h in if keep(i + 1) { states[i + 1] = h } })
        if config.stableLayerNorm { x = encoderNorm(x) }
        let out = logits ? lmHead.map { $0(x) } : nil
        return Output(lastHiddenState: x, hiddenStates: states, logits: out, frames: valid)
    }

    // MARK: InferenceModel

    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        let x = try inputs.finiteFloat("input_values", rank: 2, expected: "N×T", source: source)
        // One pass holds the feature encoder's first map (~100 floats per sample): bounded to 2 minutes of audio.
        let maxSamples = 120 * config.sampleRate
        guard x.count <= maxSamples else {
            throw AffectError.badInput("\(source): `input.input_values` holds \(x.count) samples, over the \(maxSamples) (2 minutes) one pass takes; longer audio goes through windows (affect transcribe, analyze).")
        }
        guard frameCount(samples: x.shape[1]) > 0 else {
            throw AffectError.badInput("\(source): `input.input_values` has \(x.shape[1]) samples; at least \(config.receptiveField) are needed for one frame.")
        }
        var lengths: [Int]? = nil
        // Values 0 or 1 only: each item's length is its mask's sum, at most T.
        if let m = try inputs.mask(shape: x.shape, source: source) {
            let t = x.shape[1]
            lengths = (0..<x.shape[0]).map { i in m.values[(i * t)..<((i + 1) * t)].reduce(0) { $0 + Int($1) } }
        }
        let out = forward(x, lengths: lengths, hiddenStates: .all)
        var result = ["last_hidden_state": out.lastHiddenState]
        for (k, h) in out.hiddenStates { result["hidden_states.\(k)"] = h }
        if let l = out.logits { result["logits"] = l }
        return result
    }

    public func benchInputs(_ shape: BenchShape) -> ModelInputs {
        // Seconds outside 0…1 hour (or NaN) give the shortest input rather than trapping in Int(_:).
        let seconds = shape.audioSeconds.isFinite ? min(max(shape.audioSeconds, 0), 3600) : 0
        let samples = max(config.receptiveField, Int(seconds * Double(config.sampleRate)))
        var values = [Float](repeating: 0, count: shape.batch * samples)
        var seed: UInt64 = 0x9E3779B97F4A7C15
        for i in values.indices {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            values[i] = Float(Int64(bitPattern: seed >> 11) % 2000) / 1000 - 1
        }
        return ModelInputs(floats: ["input_values": Tensor(shape: [shape.batch, samples], values: values)])
    }

    public func flops(_ inputs: ModelInputs) -> Double? {
        guard let x = inputs.floats["input_values"], x.rank == 2 else { return nil }
        let n = Double(x.shape[0])
        var t = x.shape[1], cin = 1, macs = 0.0
        for layer in featureLayers {
            t = layer.conv.outputLength(t)
            macs += Double(t * layer.conv.kernel * cin * layer.conv.outChannels)
            cin = layer.conv.outChannels
        }
        let (f, h) = (Double(t), Double(config.hiddenSize))
        macs += f * Double(cin) * h                                                    // projection
        macs += f * h * (h / Double(config.positionalGroups)) * Double(config.positionalKernel)
        let perLayer = 4 * f * h * h + 2 * f * h * Double(config.intermediateSize) + 2 * f * f * h
        macs += Double(encoder.layers.count) * perLayer
        if let head = lmHead { macs += f * h * Double(head.outFeatures) }
        return 2 * macs * n
    }
}
