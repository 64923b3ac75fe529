import AffectKernels

/// EfficientNet as timm builds it (`tf_efficientnet_b0_ns`, `tf_efficientnet_b2_ns`, `efficientnet_b0`),
/// the backbone of EmotiEffLib's `enet_b0_*` / `enet_b2_*` models.
///
/// ```
/// pixels ─ conv_stem 3×3/2 ─ BN ─ SiLU
///        ─ blocks: stage 0  depthwise-separable: dw k×k ─ BN ─ SiLU ─ SE ─ pw 1×1 ─ BN (+ skip)
///                  stages 1… inverted residual: pw 1×1 ─ BN ─ SiLU ─ dw k×k/s ─ BN ─ SiLU ─ SE ─ pwl 1×1 ─ BN (+ skip)
///        ─ conv_head 1×1 ─ BN ─ SiLU ─ global average pool  → features
///        ─ classifier (Linear)                              → logits
/// ```
/// Kernel sizes, widths and depths come from the tensors' shapes; strides per stage from the config
/// (`stage_strides`, EfficientNet's [1, 2, 2, 2, 1, 2, 1] by default). `tf_` variants use TF "SAME"
/// padding and BatchNorm eps 1e-3 (`pad_type`, `bn_eps` in the config). BatchNorm is folded at load.
/// With ``Precision/int8`` the expansions and the head (1×1 convolutions reading the blocks' outputs) multiply in
/// int8 where they reduce over 64 channels or more. The projections stay float32: their inputs are SiLU outputs
/// scaled per channel by the squeeze-and-excitation, which one quantisation step per pixel serves badly
/// (EfficientNet-B0 features at cosine 0.997 to float32 with them in int8, 0.9998 without), and so do the stem,
/// the depthwise convolutions and the classifier.
public struct EfficientNet: InferenceModel {
    public let arch = "efficientnet"
    public let labels: [String]
    public let inputSize: Int

    struct Block {
        var expand: Conv2D?          // inverted residual only
        var depthwise: Conv2D
        var se: SqueezeExcite?
        var project: Conv2D
        var skip: Bool
    }

    let stem: Conv2D
    let blocks: [Block]
    let head: Conv2D
    let classifier: Linear?

    /// Hyper-parameters from `affect.config` (absent keys: timm's `tf_efficientnet_b0_ns`).
    public struct Config: ModelConfiguration {
        /// BatchNorm epsilon (1e-3 for the `tf_` ports, 1e-5 for PyTorch-native ones).
        public var bnEps: Float = 1e-3
        /// `same` (TensorFlow's asymmetric padding, the `tf_` variants) or symmetric PyTorch padding.
        public var padType = "same"
        public var inputSize = 224
        /// Stride of each stage's first block.
        public var stageStrides = [1, 2, 2, 2, 1, 2, 1]

        enum CodingKeys: String, CodingKey {
            case bnEps = "bn_eps", padType = "pad_type", inputSize = "input_size", stageStrides = "stage_strides"
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            bnEps = try c.eps(.bnEps, default: 1e-3)
            padType = try c.string(.padType, default: "same")
            inputSize = try c.int(.inputSize, default: 224, in: WeightFile.Limits.imageSide)
            stageStrides = try c.ints(.stageStrides, default: stageStrides, in: 1 ... 4)
        }
    }

    public init(weights w: WeightFile) throws {
        try w.require(arch: "efficientnet")
        labels = w.labels
        let config = try w.configuration(Config.self)
        let (eps, padType, strides) = (config.bnEps, config.padType, config.stageStrides)
        inputSize = config.inputSize
        // The preprocessing a recognizer will apply is part of the file: checked with it.
        _ = try ImagePreprocessing(weights: w, defaultSize: inputSize)

        func padding(_ k: Int, _ s: Int) -> Padding {
            padType == "same" ? .tfSame : .symmetric(((s - 1) + (k - 1)) / 2)
        }
        func bn(_ prefix: String, _ c: Int) throws -> BatchNorm { try w.batchNorm(prefix, channels: c, eps: eps) }
        /// Loads a convolution + BN, checking it consumes `cin` channels (misshapen files fail here, by name).
        func conv(_ name: String, _ bnName: String, cin: Int, stride: Int = 1, depthwise: Bool = false,
                  act: Activation, int8: Bool = false) throws -> Conv2D {
            let precision = int8 ? w.precision : .float32
            let weight = try w.convWeight("\(name).weight", out: depthwise ? cin : nil, inPerGroup: depthwise ? 1 : cin)
            let (o, k) = (weight.shape[0], weight.shape[2])
            // ONNX exports arrive with BatchNorm already folded into a conv bias.
            if !w.contains("\(bnName).running_mean"), let bias = try w.optionalTensor("\(name).bias", shape: [o]) {
                return Conv2D(weight: weight, bias: bias, stride: (stride, stride), padding: padding(k, stride),
                              groups: depthwise ? cin : 1, activation: act, precision: precision)
            }
            return Conv2D(weight: weight, bias: nil, batchNorm: try bn(bnName, o), stride: (stride, stride),
                          padding: padding(k, stride), groups: depthwise ? cin : 1, activation: act, precision: precision)
        }
        func se(_ p: String, _ c: Int) throws -> SqueezeExcite? {
            guard w.contains("\(p).se.conv_reduce.weight") else { return nil }
            let reduce = try w.convWeight("\(p).se.conv_reduce.weight", inPerGroup: c, kernel: 1)
            let r = reduce.shape[0]
            return SqueezeExcite(reduceWeight: reduce, reduceBias: try w.optionalTensor("\(p).se.conv_reduce.bias", shape: [r]),
                                 expandWeight: try w.tensor("\(p).se.conv_expand.weight", shape: [c, r, 1, 1]),
                                 expandBias: try w.optionalTensor("\(p).se.conv_expand.bias", shape: [c]))
        }

        stem = try conv("conv_stem", "bn1", cin: 3, stride: 2, act: .silu)
        var blocks: [Block] = []
        var channels = stem.outChannels
        var stage = 0
        while w.contains("blocks.\(stage).0.conv_dw.weight") {
            var i = 0
            while w.contains("blocks.\(stage).\(i).conv_dw.weight") {
                let p = "blocks.\(stage).\(i)"
                let s = i == 0 ? (stage < strides.count ? strides[stage] : 1) : 1
                if w.contains("\(p).conv_pwl.weight") || w.contains("\(p).bn3.weight") {
                    let expand = try conv("\(p).conv_pw", "\(p).bn1", cin: channels, act: .silu, int8: true)
                    let mid = expand.outChannels
                    let dw = try conv("\(p).conv_dw", "\(p).bn2", cin: mid, stride: s, depthwise: true, act: .silu)
                    let pwl = try conv("\(p).conv_pwl", "\(p).bn3", cin: mid, act: .none)
                    blocks.append(Block(expand: expand, depthwise: dw, se: try se(p, mid), project: pwl,
                                        skip: s == 1 && channels == pwl.outChannels))
                    channels = pwl.outChannels
                } else {
                    let dw = try conv("\(p).conv_dw", "\(p).bn1", cin: channels, stride: s, depthwise: true, act: .silu)
                    let pw = try conv("\(p).conv_pw", "\(p).bn2", cin: channels, act: .none)
                    blocks.append(Block(expand: nil, depthwise: dw, se: try se(p, channels), project: pw,
                                        skip: s == 1 && channels == pw.outChannels))
                    channels = pw.outChannels
                }
                i += 1
            }
            stage += 1
        }
        guard !blocks.isEmpty else { throw AffectError.badInput("\(w.path): tensor `blocks.0.0.conv_dw.weight` is missing (arch efficientnet).") }
        self.blocks = blocks
        head = try conv("conv_head", "bn2", cin: channels, act: .silu, int8: true)
        if let name = ["classifier", "classifier.0"].first(where: { w.contains("\($0).weight") }) {
            let c = try w.linear(name, in: head.outChannels, bias: .optional)
            try w.requireLabels(count: c.outFeatures, of: "\(name).weight")
            classifier = c
        } else {
            classifier = nil
        }
    }

    /// Penultimate features `[N, 1280]` (what EmotiEffLib's `extract_features` returns) from NHWC pixels.
    public func features(nhwc x: Tensor) -> Tensor { features(stem: stem(x)) }

    /// The same from NCHW pixels, which the stem reads in place.
    public func features(nchw x: Tensor) -> Tensor { features(stem: stem(nchw: x)) }

    private func features(stem x: Tensor) -> Tensor {
        var x = x
        for b in blocks {
            let input = x
            // The squeeze is summed inside the depthwise kernel (which expands its input rows itself on the
            // large early maps) and the excitation scales the projection's input tile by tile; the skip
            // connection is the projection GEMM's starting value.
            if let se = b.se {
                let (y, means) = b.depthwise.depthwiseWithMeans(x, expandedBy: b.expand)
                x = b.project(y, residual: b.skip ? input : nil, inputScale: se.scales(means: means))
            } else {
                if let e = b.expand { x = e(x) }
                x = b.project(b.depthwise(x), residual: b.skip ? input : nil)
            }
        }
        return globalAveragePool(head(x))
    }

    /// Classifier logits from features.
    public func logits(features: Tensor) -> Tensor? { classifier?(features) }
    public var featureWidth: Int { head.outChannels }
    public var hasClassifier: Bool { classifier != nil }

    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        let pixels = try inputs.pixels(channels: stem.inChannels, sides: WeightFile.Limits.imageSide, source: source)
        return outputs(pixelsNCHW: pixels)
    }

    /// 2 × multiply-accumulates of the convolutions and the classifier (SE and pooling are negligible).
    public func flops(_ inputs: ModelInputs) -> Double? {
        guard let x = inputs.floats["pixels"], x.rank == 4 else { return nil }
        var n = FLOPCounter(height: x.shape[2], width: x.shape[3])
        n.conv(stem)
        for b in blocks {
            if let e = b.expand { n.conv(e) }
            n.conv(b.depthwise); n.conv(b.project)
        }
        n.conv(head)
        if let c = classifier { n.linear(c) }
        return n.total * Double(x.shape[0])
    }
}
