import AffectKernels

/// MobileViT as timm builds it (`mobilevit_xxs`, `mobilevit_xs`, `mobilevit_s`; EmotiEffLib's
/// `mobilevit_va_mtl`).
///
/// ```
/// pixels ─ stem 3×3/2 ─ BN ─ SiLU
///        ─ stages: bottleneck (MobileNetV2 inverted residual): 1×1 ─ BN ─ SiLU ─ dw 3×3/s ─ BN ─ SiLU ─ 1×1 ─ BN (+ x)
///                  MobileViT block: 3×3 ─ BN ─ SiLU ─ 1×1 (no BN) ─ unfold 2×2 patches
///                                   ─ L × [x + attn(LN(x)); x + MLP_SiLU(LN(x))] ─ LN ─ fold
///                                   ─ 1×1 ─ BN ─ SiLU ─ concat(block input, ·) ─ 3×3 ─ BN ─ SiLU
///        ─ final_conv 1×1 ─ BN ─ SiLU ─ global average pool → features ─ head.fc → logits
/// ```
/// Unfolding puts pixel (2·i + a, 2·j + b) of each 2×2 patch into sequence a·2 + b, token i·W/2 + j, so
/// attention runs within each of the 4 patch positions across the whole map (timm's layout).
public struct MobileViT: FacialBackbone {
    public let arch = "mobilevit"
    public let labels: [String]
    public let inputSize: Int
    /// Smallest image side it takes.
    static let minInputSide = 32

    struct Bottleneck { var expand: Conv2D, depthwise: Conv2D, project: Conv2D, shortcut: Bool }
    struct Layer {
        var norm1: LayerNorm, qkv: Linear, proj: Linear
        var norm2: LayerNorm, fc1: Linear, fc2: Linear
    }
    struct VitBlock {
        var local: Conv2D, toTokens: Linear
        var layers: [Layer]
        var norm: LayerNorm
        var project: Conv2D, fusion: Conv2D
    }
    enum Block { case bottleneck(Bottleneck), vit(VitBlock) }

    let stem: Conv2D
    let blocks: [Block]
    let finalConv: Conv2D
    let classifier: Linear?
    let heads: Int
    let patch: Int

    /// Hyper-parameters from `affect.config` (absent keys: timm's `mobilevit_s`).
    public struct Config: ModelConfiguration {
        public var inputSize = 224
        /// Attention heads of the transformer blocks.
        public var heads = 4
        /// Side of the patches the transformer blocks unfold maps into.
        public var patchSize = 2
        public var bnEps: Float = 1e-5
        public var lnEps: Float = 1e-5
        /// Stride of each stage's first block.
        public var stageStrides = [1, 2, 2, 2, 2]

        enum CodingKeys: String, CodingKey {
            case inputSize = "input_size", heads = "num_heads", patchSize = "patch_size", bnEps = "bn_eps", lnEps = "ln_eps"
            case stageStrides = "stage_strides"
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            inputSize = try c.int(.inputSize, default: 224, in: MobileViT.minInputSide ... WeightFile.Limits.imageSide.upperBound)
            heads = try c.int(.heads, default: 4, in: WeightFile.Limits.heads)
            patchSize = try c.int(.patchSize, default: 2, in: 1 ... 16)
            bnEps = try c.eps(.bnEps, default: 1e-5)
            lnEps = try c.eps(.lnEps, default: 1e-5)
            stageStrides = try c.ints(.stageStrides, default: stageStrides, in: 1 ... 4)
        }
    }

    public init(weights w: WeightFile) throws {
        try w.require(arch: "mobilevit")
        labels = w.labels
        let config = try w.configuration(Config.self)
        inputSize = config.inputSize
        // The preprocessing a recognizer will apply is part of the file: checked with it.
        _ = try ImagePreprocessing(weights: w, defaultSize: inputSize)
        _ = try w.preprocessInt("input_size", default: inputSize, in: Self.minInputSide ... WeightFile.Limits.imageSide.upperBound)
        (heads, patch) = (config.heads, config.patchSize)
        let (bnEps, lnEps, strides) = (config.bnEps, config.lnEps, config.stageStrides)

        /// `p.conv` + `p.bn` (ConvNormAct), checked to take `cin` channels. Kernels are odd: "same" padding
        /// keeps stride-1 maps (shortcuts, the fusion's concatenation) the size of their input.
        func convNorm(_ p: String, cin: Int, stride: Int = 1, act: Activation) throws -> Conv2D {
            let name = "\(p).conv.weight"
            let weight = try w.convWeight(name)
            let (o, k) = (weight.shape[0], weight.shape[2])
            let groups = try w.convGroups(name, weight: weight, cin: cin)
            guard k % 2 == 1 else { throw w.problem("tensor `\(name)` has a \(k)×\(k) kernel, expected an odd side.") }
            return Conv2D(weight: weight, bias: nil, batchNorm: try w.batchNorm("\(p).bn", channels: o, eps: bnEps),
                          stride: (stride, stride), padding: .symmetric((k - 1) / 2), groups: groups, activation: act)
        }
        func linear(_ p: String, cin: Int, out: Int? = nil, act: Activation = .none) throws -> Linear {
            try w.linear(p, in: cin, out: out, bias: .optional, activation: act)
        }
        func layerNorm(_ p: String, _ c: Int) throws -> LayerNorm { try w.layerNorm(p, width: c, eps: lnEps) }

        stem = try convNorm("stem", cin: 3, stride: 2, act: .silu)
        var channels = stem.outChannels
        var blocks: [Block] = []
        var s = 0
        while w.contains("stages.\(s).0.conv1_1x1.conv.weight") {
            var b = 0
            while true {
                let p = "stages.\(s).\(b)"
                if w.contains("\(p).conv1_1x1.conv.weight") {
                    let stride = b == 0 && s < strides.count ? strides[s] : 1
                    let e = try convNorm("\(p).conv1_1x1", cin: channels, act: .silu)
                    let d = try convNorm("\(p).conv2_kxk", cin: e.outChannels, stride: stride, act: .silu)
                    let o = try convNorm("\(p).conv3_1x1", cin: d.outChannels, act: .none)
                    blocks.append(.bottleneck(Bottleneck(expand: e, depthwise: d, project: o,
                                                         shortcut: stride == 1 && channels == o.outChannels)))
                    channels = o.outChannels
                } else if w.contains("\(p).conv_kxk.conv.weight") {
                    let local = try convNorm("\(p).conv_kxk", cin: channels, act: .silu)
                    let t = try w.convWeight("\(p).conv_1x1.weight", inPerGroup: local.outChannels, kernel: 1)
                    // A 1×1 convolution without bias: a linear map of each pixel, applied to tokens after unfolding.
                    let toTokens = Linear(weight: t.reshaped([t.shape[0], local.outChannels]), bias: nil)
                    let dim = t.shape[0]
                    guard dim % heads == 0 else {
                        throw w.problem("transformer width \(dim) of `\(p)` (tensor `\(p).conv_1x1.weight`) is not divisible by config `num_heads` = \(heads).")
                    }
                    var layers: [Layer] = []
                    var l = 0
                    while w.contains("\(p).transformer.\(l).attn.qkv.weight") {
                        let q = "\(p).transformer.\(l)"
                        let fc1 = try linear("\(q).mlp.fc1", cin: dim, act: .silu)
                        layers.append(Layer(norm1: try layerNorm("\(q).norm1", dim), qkv: try linear("\(q).attn.qkv", cin: dim, out: 3 * dim),
                                            proj: try linear("\(q).attn.proj", cin: dim, out: dim), norm2: try layerNorm("\(q).norm2", dim),
                                            fc1: fc1, fc2: try linear("\(q).mlp.fc2", cin: fc1.outFeatures, out: dim)))
                        l += 1
                    }
                    let proj = try convNorm("\(p).conv_proj", cin: dim, act: .silu)
                    let fusion = try convNorm("\(p).conv_fusion", cin: channels + proj.outChannels, act: .silu)
                    blocks.append(.vit(VitBlock(local: local, toTokens: toTokens, layers: layers,
                                                norm: try layerNorm("\(p).norm", dim), project: proj, fusion: fusion)))
                    channels = fusion.outChannels
                } else { break }
                b += 1
            }
            s += 1
        }
        guard !blocks.isEmpty else { throw AffectError.badInput("\(w.path): tensor `stages.0.0.conv1_1x1.conv.weight` is missing (arch mobilevit).") }
        self.blocks = blocks
        finalConv = try convNorm("final_conv", cin: channels, act: .silu)
        if w.contains("head.fc.weight") {
            let fc = try linear("head.fc", cin: finalConv.outChannels)
            try w.requireLabels(count: fc.outFeatures, of: "head.fc.weight")
            classifier = fc
        } else {
            classifier = nil
        }
    }

    /// The `[B·p², (H/p)·(W/p), ·]` token layout of a `[B, H, W, ·]` map: sequence `s` holds pixel
    /// `(p·i + a, p·j + b)` of image `s / p²` as token `i·(W/p) + j`, where `a·p + b = s mod p²`.
    func patchPixel(sequence s: Int, token t: Int, height h: Int, width w: Int) -> Int {
        let p2 = patch * patch, nw = w / patch
        let (img, a, b) = (s / p2, s % p2 / patch, s % patch)
        return (img * h + t / nw * patch + a) * w + t % nw * patch + b
    }

    func unfold(_ x: Tensor) -> Tensor {
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let l = (h / patch) * (w / patch)
        let out = Tensor(uninitialized: [b * patch * patch, l, c])
        parallelFor(b * patch * patch) { s0, s1 in
            for s in s0..<s1 {
                for t in 0..<l { (out.data + (s * l + t) * c).update(from: x.data + patchPixel(sequence: s, token: t, height: h, width: w) * c, count: c) }
            }
        }
        return out
    }

    func fold(_ x: Tensor, batch b: Int, height h: Int, width w: Int) -> Tensor {
        let (l, c) = (x.shape[1], x.shape[2])
        let out = Tensor(uninitialized: [b, h, w, c])
        parallelFor(b * patch * patch) { s0, s1 in
            for s in s0..<s1 {
                for t in 0..<l { (out.data + patchPixel(sequence: s, token: t, height: h, width: w) * c).update(from: x.data + (s * l + t) * c, count: c) }
            }
        }
        return out
    }

    /// The transformer layers and final norm on `[N, L, dim]` tokens.
    func encode(_ v: VitBlock, _ x: Tensor) -> Tensor {
        var x = x
        for l in v.layers {
            x = l.proj(tileAttention(qkv: l.qkv(l.norm1(x)), heads: heads), adding: x)
            x = l.fc2(l.fc1(l.norm2(x)), adding: x)
        }
        return v.norm(x)
    }

    /// ``encode(_:_:)`` with the sequences of `[S, L, dim]` split into one group per thread, as in
    /// ``transformerStretch(_:input:local:)``.
    func encodeEach(_ v: VitBlock, _ x: Tensor) -> Tensor {
        let (s, l, c) = (x.shape[0], x.shape[1], x.shape[2])
        guard s >= Threading.threads, Threading.threads > 1 else { return encode(v, x) }
        let out = Tensor(uninitialized: x.shape)
        forEachGroup(of: s) { s0, s1 in
            let y = encode(v, Tensor(storage: x.storage, shape: [s1 - s0, l, c], offset: x.offset + s0 * l * c))
            (out.data + s0 * l * c).update(from: y.data, count: (s1 - s0) * l * c)
        }
        return out
    }

    /// Splits `0..<sequences` into one contiguous group per thread and runs `body(start, end)` for each on
    /// its own thread. Groups rather than single sequences: the linear layers then multiply `group · L` rows
    /// at once (MobileViT-S's 49-token sequences would leave most of a tile of rows empty).
    func forEachGroup(of sequences: Int, _ body: (Int, Int) -> Void) {
        let groups = min(sequences, Threading.threads)
        parallelFor(groups, minChunk: 1) { g0, g1 in
            for g in g0..<g1 { body(sequences * g / groups, sequences * (g + 1) / groups) }
        }
    }

    /// `concat(input, project(fold(encode(unfold(toTokens(local))))))` for a map that tiles into whole patches.
    ///
    /// Every step between unfolding and folding works on one token at a time except attention, which stays
    /// within a sequence; so each thread takes a group of sequences (patch positions of images) through the
    /// whole stretch, from gathering their pixels to writing them into the concatenation, with no fork-join
    /// per layer. (With fewer sequences than threads, the layers split their own work instead.)
    func transformerStretch(_ v: VitBlock, input: Tensor, local: Tensor) -> Tensor {
        let (b, h, w, cl) = (local.shape[0], local.shape[1], local.shape[2], local.shape[3])
        let (cin, cp) = (input.shape[3], v.project.outChannels)
        let l = (h / patch) * (w / patch)
        let out = Tensor(uninitialized: [b, h, w, cin + cp])
        func run(_ s0: Int, _ s1: Int) {
            let n = s1 - s0
            let tokens = Tensor(uninitialized: [n, l, cl])
            for s in s0..<s1 {
                for t in 0..<l {
                    (tokens.data + ((s - s0) * l + t) * cl)
                        .update(from: local.data + patchPixel(sequence: s, token: t, height: h, width: w) * cl, count: cl)
                }
            }
            let y = v.project(encode(v, v.toTokens(tokens)).reshaped([1, n * l, 1, v.toTokens.outFeatures]))
            for s in s0..<s1 {
                for t in 0..<l {
                    let pixel = patchPixel(sequence: s, token: t, height: h, width: w)
                    (out.data + pixel * (cin + cp)).update(from: input.data + pixel * cin, count: cin)
                    (out.data + pixel * (cin + cp) + cin).update(from: y.data + ((s - s0) * l + t) * cp, count: cp)
                }
            }
        }
        let sequences = b * patch * patch
        if sequences >= Threading.threads && Threading.threads > 1 {
            forEachGroup(of: sequences, run)
        } else {
            run(0, sequences)
        }
        return out
    }

    public func features(nhwc x: Tensor) -> Tensor { features(stem: stem(x)) }

    /// The same from NCHW pixels, which the stem reads in place.
    public func features(nchw x: Tensor) -> Tensor { features(stem: stem(nchw: x)) }

    private func features(stem x: Tensor) -> Tensor {
        var x = x
        for block in blocks {
            switch block {
            case .bottleneck(let b):
                x = b.project(b.depthwise(x, expandedBy: b.expand), residual: b.shortcut ? x : nil)
            case .vit(let v):
                let local = v.local(x)
                let (n, h, w) = (local.shape[0], local.shape[1], local.shape[2])
                if h % patch == 0 && w % patch == 0 {
                    x = v.fusion(transformerStretch(v, input: x, local: local))
                    continue
                }
                // timm resizes maps that do not tile into whole patches, and resizes back after folding.
                let (th, tw) = ((h + patch - 1) / patch * patch, (w + patch - 1) / patch * patch)
                let y = resize(v.toTokens(local), height: th, width: tw, method: .bilinear)
                let folded = resize(fold(encodeEach(v, unfold(y)), batch: n, height: th, width: tw), height: h, width: w, method: .bilinear)
                x = v.fusion(concat([x, v.project(folded)], axis: 3))
            }
        }
        return globalAveragePool(finalConv(x))
    }

    public func logits(features: Tensor) -> Tensor? { classifier?(features) }
    public var featureWidth: Int { finalConv.outChannels }
    public var hasClassifier: Bool { classifier != nil }

    /// 2 × multiply-accumulates of the convolutions, the transformers' linear layers and attention products,
    /// and the classifier (norms, activations and softmax are left out).
    public func flops(_ inputs: ModelInputs) -> Double? {
        guard let x = inputs.floats["pixels"], x.rank == 4 else { return nil }
        var n = FLOPCounter(height: x.shape[2], width: x.shape[3])
        n.conv(stem)
        for block in blocks {
            switch block {
            case .bottleneck(let b): n.conv(b.expand); n.conv(b.depthwise); n.conv(b.project)
            case .vit(let v):
                n.conv(v.local)
                let (h, w) = (n.height, n.width)
                let tokens = Double(((h + patch - 1) / patch * patch) * ((w + patch - 1) / patch * patch))
                let sequence = tokens / Double(patch * patch)
                let dim = Double(v.toTokens.outFeatures)
                n.linear(v.toTokens, rows: Double(h * w))
                for l in v.layers {
                    for lin in [l.qkv, l.proj, l.fc1, l.fc2] { n.linear(lin, rows: tokens) }
                    n.add(2 * 2 * tokens * sequence * dim)   // q·kᵀ and attention·v
                }
                n.conv(v.project); n.conv(v.fusion)
            }
        }
        n.conv(finalConv)
        if let c = classifier { n.linear(c) }
        return n.total * Double(x.shape[0])
    }

    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        let pixels = try inputs.pixels(channels: 3, sides: Self.minInputSide ... WeightFile.Limits.imageSide.upperBound, source: source)
        return outputs(pixelsNCHW: pixels)
    }
}
