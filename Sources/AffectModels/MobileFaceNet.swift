import AffectKernels

/// MobileFaceNet as EmotiEffLib's `mbf_va_mtl` uses it (`emotiefflib/backbones/mobilefacenet.py`, plus `fc`).
///
/// ```
/// pixels 112×112 ─ layers.0  ConvBlock 3×3/2            (conv ─ BN ─ PReLU)
///                ─ layers.1  ConvBlock 3×3, grouped      (or a Residual stack when blocks[0] > 1)
///                ─ layers.2… DepthWise 3×3/2             (1×1 ConvBlock ─ dw 3×3/2 ConvBlock ─ 1×1 LinearBlock)
///                            Residual                     (DepthWise 3×3/1 blocks, each + its input)
///                ─ conv_sep  ConvBlock 1×1 → 512
///                ─ features  GDC: 7×7 depthwise LinearBlock ─ flatten ─ Linear(512, 512, no bias) ─ BatchNorm1d
///                                                                                          → features
///                ─ fc        Linear                                                        → logits
/// ```
/// The block kinds, widths and groups come from the tensors; strides follow the module's code: the stem and
/// every stand-alone DepthWise block stride 2, Residual blocks stride 1, 3×3 kernels pad 1. A ConvBlock is
/// conv + BN + PReLU; a LinearBlock is conv + BN. BatchNorms are folded at load.
public struct MobileFaceNet: FacialBackbone {
    public let arch = "mobilefacenet"
    public let labels: [String]
    public let inputSize: Int

    /// A conv with folded BN and an optional PReLU, and whether the block adds its input.
    struct Stage {
        var convs: [Conv2D]
        var residual: Bool
    }

    let stages: [Stage]
    let gdc: Conv2D
    let embedding: Linear
    let embeddingNorm: BatchNorm
    let classifier: Linear?

    /// Hyper-parameters from `affect.config`.
    public struct Config: ModelConfiguration {
        public var inputSize = 112
        public var bnEps: Float = 1e-5

        enum CodingKeys: String, CodingKey { case inputSize = "input_size", bnEps = "bn_eps" }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            inputSize = try c.int(.inputSize, default: 112, in: WeightFile.Limits.imageSide)
            bnEps = try c.eps(.bnEps, default: 1e-5)
        }
    }

    public init(weights w: WeightFile) throws {
        try w.require(arch: "mobilefacenet")
        labels = w.labels
        let config = try w.configuration(Config.self)
        inputSize = config.inputSize
        let eps = config.bnEps
        // The preprocessing a recognizer will apply is part of the file: checked with it.
        _ = try ImagePreprocessing(weights: w, defaultSize: inputSize)

        func bn(_ p: String, _ c: Int) throws -> BatchNorm { try w.batchNorm(p, channels: c, eps: eps) }
        /// `p.layers.0` conv, `p.layers.1` BN, `p.layers.2` PReLU if present (ConvBlock) or absent (LinearBlock).
        /// Padded kernels are odd, so stride-1 blocks keep the map's size (residual blocks add their input).
        func block(_ p: String, cin: Int, stride: Int, valid: Bool = false) throws -> Conv2D {
            let name = "\(p).layers.0.weight"
            let weight = try w.convWeight(name)
            let (o, k) = (weight.shape[0], weight.shape[2])
            let groups = try w.convGroups(name, weight: weight, cin: cin)
            guard valid || k % 2 == 1 else { throw w.problem("tensor `\(name)` has a \(k)×\(k) kernel, expected an odd side.") }
            let act: Activation = w.contains("\(p).layers.2.weight")
                ? .prelu(try w.tensor("\(p).layers.2.weight", shape: [o]).array) : .none
            return Conv2D(weight: weight, bias: nil, batchNorm: try bn("\(p).layers.1", o), stride: (stride, stride),
                          padding: valid ? .valid : .symmetric((k - 1) / 2), groups: groups, activation: act)
        }
        /// DepthWise: 1×1 ConvBlock, k×k grouped ConvBlock (the stride), 1×1 LinearBlock.
        func depthwise(_ p: String, cin: Int, stride: Int) throws -> [Conv2D] {
            let a = try block("\(p).layers.0", cin: cin, stride: 1)
            let b = try block("\(p).layers.1", cin: a.outChannels, stride: stride)
            let c = try block("\(p).layers.2", cin: b.outChannels, stride: 1)
            return [a, b, c]
        }

        var stages: [Stage] = []
        var channels = 3
        var k = 0
        while w.contains("layers.\(k).layers.0.weight") || w.contains("layers.\(k).layers.0.layers.0.weight")
                || w.contains("layers.\(k).layers.0.layers.0.layers.0.weight") {
            let p = "layers.\(k)"
            if w.contains("\(p).layers.0.weight") {                       // ConvBlock
                let c = try block(p, cin: channels, stride: k == 0 ? 2 : 1)
                stages.append(Stage(convs: [c], residual: false)); channels = c.outChannels
            } else if w.contains("\(p).layers.0.layers.0.weight") {       // DepthWise, stride 2
                let convs = try depthwise(p, cin: channels, stride: 2)
                stages.append(Stage(convs: convs, residual: false)); channels = convs[2].outChannels
            } else {                                                        // Residual stack of DepthWise
                var i = 0
                while w.contains("\(p).layers.\(i).layers.0.layers.0.weight") {
                    let convs = try depthwise("\(p).layers.\(i)", cin: channels, stride: 1)
                    guard convs[2].outChannels == channels else {
                        throw AffectError.badInput("\(w.path): residual block `\(p).layers.\(i)` changes width \(channels) → \(convs[2].outChannels).")
                    }
                    stages.append(Stage(convs: convs, residual: true))
                    i += 1
                }
            }
            k += 1
        }
        guard !stages.isEmpty else { throw AffectError.badInput("\(w.path): tensor `layers.0.layers.0.weight` is missing (arch mobilefacenet).") }
        let sep = try block("conv_sep", cin: channels, stride: 1)
        stages.append(Stage(convs: [sep], residual: false))
        self.stages = stages
        let gdc = try block("features.layers.0", cin: sep.outChannels, stride: 1, valid: true)
        self.gdc = gdc
        embedding = try w.linear("features.layers.2", in: gdc.outChannels, bias: .none)
        embeddingNorm = try bn("features.layers.3", embedding.outFeatures)
        if w.contains("fc.weight") {
            let fc = try w.linear("fc", in: embedding.outFeatures, bias: .optional)
            try w.requireLabels(count: fc.outFeatures, of: "fc.weight")
            classifier = fc
        } else {
            classifier = nil
        }
        // The GDC reads the whole last map: the input side must bring it to exactly one pixel, both the
        // config's and the one the preprocessing resizes faces to.
        for (key, side) in [("config `input_size`", inputSize),
                            ("metadata affect.preprocess `input_size`",
                             try w.preprocessInt("input_size", default: inputSize, in: WeightFile.Limits.imageSide))]
            where Self.outputSide(stages: stages, gdc: gdc, input: side) != 1 {
            throw w.problem("\(key) is \(side), which does not bring the last map to the GDC's \(gdc.kernel.h)×\(gdc.kernel.w) kernel.")
        }
    }

    public func features(nhwc x: Tensor) -> Tensor {
        var x = x
        for s in stages {
            let input = x
            for (i, c) in s.convs.enumerated() {
                // The residual's last convolution is linear (no activation): the skip is its GEMM's start value.
                let last = i == s.convs.count - 1
                x = c(x, residual: last && s.residual && c.activation == .none ? input : nil)
            }
            if s.residual, let c = s.convs.last, c.activation != Activation.none { addInPlace(x, input) }
        }
        // GDC: a 7×7 depthwise conv over the 7×7 map (valid) leaves one pixel per channel.
        x = gdc(x)
        let flat = x.reshaped([x.shape[0], x.count / x.shape[0]])
        return embeddingNorm(embedding(flat))
    }

    public func logits(features: Tensor) -> Tensor? { classifier?(features) }
    public var featureWidth: Int { embedding.outFeatures }
    public var hasClassifier: Bool { classifier != nil }

    /// Side of the GDC's output for a square `input` (1 for the sizes the model takes).
    static func outputSide(stages: [Stage], gdc: Conv2D, input: Int) -> Int {
        var side = input
        for s in stages { for c in s.convs { side = c.outputSize(height: side, width: side).h } }
        return gdc.outputSize(height: side, width: side).h
    }

    /// 2 × multiply-accumulates of the convolutions, the embedding and the classifier.
    public func flops(_ inputs: ModelInputs) -> Double? {
        guard let x = inputs.floats["pixels"], x.rank == 4 else { return nil }
        var n = FLOPCounter(height: x.shape[2], width: x.shape[3])
        for s in stages { s.convs.forEach { n.conv($0) } }
        n.conv(gdc)
        n.linear(embedding)
        if let c = classifier { n.linear(c) }
        return n.total * Double(x.shape[0])
    }

    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        let pixels = try inputs.pixels(channels: 3, sides: WeightFile.Limits.imageSide, source: source)
        // The GDC's Linear expects exactly its input width: 112×112 (→ 7×7) for the released models.
        guard Self.outputSide(stages: stages, gdc: gdc, input: pixels.shape[2]) == 1, pixels.shape[2] == pixels.shape[3] else {
            throw AffectError.badInput("\(source): `input.pixels` is \(pixels.shape[2])×\(pixels.shape[3]); MobileFaceNet needs \(inputSize)×\(inputSize).")
        }
        return outputs(pixelsNCHW: pixels)
    }
}
