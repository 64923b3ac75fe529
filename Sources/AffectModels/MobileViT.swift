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

    struct Bottleneck { var expand: Conv2D, depthwise: Conv2D, project: Conv2D, shortcut: Bool }
    struct Layer {
        var norm1: LayerNorm, qkv: Linear, proj: Linear
        var norm2: LayerNorm, fc1: Linear, fc2: Linear
    }
    struct VitBlock {
        var local: Conv2D, toTokens: Conv2D
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

    public init(weights w: WeightFile) throws {
        try w.require(arch: "mobilevit")
        labels = w.labels
        inputSize = try w.configInt("input_size", default: 224)
        heads = try w.configInt("num_heads", default: 4)
        patch = try w.configInt("patch_size", default: 2)
        let bnEps = Float(try w.configDouble("bn_eps", default: 1e-5))
        let lnEps = Float(try w.configDouble("ln_eps", default: 1e-5))
        let strides = try w.configInts("stage_strides", default: [1, 2, 2, 2, 2])

        /// `p.conv` + `p.bn` (ConvNormAct), checked to take `cin` channels.
        func convNorm(_ p: String, cin: Int, stride: Int = 1, act: Activation) throws -> Conv2D {
            let weight = try w.tensor("\(p).conv.weight", shape: [-1, -1, -1, -1])
            let (o, ipg, k) = (weight.shape[0], weight.shape[1], weight.shape[2])
            guard ipg > 0, cin % ipg == 0 else {
                throw AffectError.badInput("\(w.path): tensor `\(p).conv.weight` has shape \(weight.shape), which cannot take \(cin) channels.")
            }
            let bn = BatchNorm(gamma: try w.tensor("\(p).bn.weight", shape: [o]), beta: try w.tensor("\(p).bn.bias", shape: [o]),
                               mean: try w.tensor("\(p).bn.running_mean", shape: [o]),
                               variance: try w.tensor("\(p).bn.running_var", shape: [o]), eps: bnEps)
            return Conv2D(weight: weight, bias: nil, batchNorm: bn, stride: (stride, stride), padding: .symmetric((k - 1) / 2),
                          groups: cin / ipg, activation: act)
        }
        func linear(_ p: String, cin: Int, act: Activation = .none) throws -> Linear {
            let weight = try w.tensor("\(p).weight", shape: [-1, cin])
            return Linear(weight: weight, bias: try w.optionalTensor("\(p).bias", shape: [weight.shape[0]]), activation: act)
        }
        func layerNorm(_ p: String, _ c: Int) throws -> LayerNorm {
            LayerNorm(weight: try w.tensor("\(p).weight", shape: [c]), bias: try w.tensor("\(p).bias", shape: [c]), eps: lnEps)
        }

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
                    let t = try w.tensor("\(p).conv_1x1.weight", shape: [-1, local.outChannels, 1, 1])
                    let dim = t.shape[0]
                    guard dim % heads == 0 else {
                        throw AffectError.badInput("\(w.path): transformer width \(dim) of `\(p)` is not divisible by \(heads) heads.")
                    }
                    var layers: [Layer] = []
                    var l = 0
                    while w.contains("\(p).transformer.\(l).attn.qkv.weight") {
                        let q = "\(p).transformer.\(l)"
                        let fc1 = try linear("\(q).mlp.fc1", cin: dim, act: .silu)
                        layers.append(Layer(norm1: try layerNorm("\(q).norm1", dim), qkv: try linear("\(q).attn.qkv", cin: dim),
                                            proj: try linear("\(q).attn.proj", cin: dim), norm2: try layerNorm("\(q).norm2", dim),
                                            fc1: fc1, fc2: try linear("\(q).mlp.fc2", cin: fc1.outFeatures)))
                        guard layers.last!.qkv.outFeatures == 3 * dim else {
                            throw AffectError.badInput("\(w.path): tensor `\(q).attn.qkv.weight` must have \(3 * dim) rows.")
                        }
                        l += 1
                    }
                    let proj = try convNorm("\(p).conv_proj", cin: dim, act: .silu)
                    let fusion = try convNorm("\(p).conv_fusion", cin: channels + proj.outChannels, act: .silu)
                    blocks.append(.vit(VitBlock(local: local, toTokens: Conv2D(weight: t, bias: nil), layers: layers,
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
        if let fc = try w.optionalTensor("head.fc.weight", shape: [-1, finalConv.outChannels]) {
            classifier = Linear(weight: fc, bias: try w.optionalTensor("head.fc.bias", shape: [fc.shape[0]]))
        } else {
            classifier = nil
        }
    }

    /// Calls `body(pixel, token)` for every pixel of a `[B, H, W, ·]` map: its row in the map and its row in
    /// the `[B·p², (H/p)·(W/p), ·]` token layout (unfold copies pixel → token, fold token → pixel).
    func forEachPatchPixel(batch b: Int, height h: Int, width w: Int, _ body: (_ pixel: Int, _ token: Int) -> Void) {
        let (nh, nw) = (h / patch, w / patch)
        let p2 = patch * patch
        parallelFor(b * h) { r0, r1 in
            for r in r0..<r1 {
                let (img, y) = (r / h, r % h)
                let (i, a) = (y / patch, y % patch)
                for xx in 0..<w {
                    let (j, bb) = (xx / patch, xx % patch)
                    body((img * h + y) * w + xx, (img * p2 + a * patch + bb) * nh * nw + i * nw + j)
                }
            }
        }
    }

    func unfold(_ x: Tensor) -> Tensor {
        let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let out = Tensor(uninitialized: [b * patch * patch, (h / patch) * (w / patch), c])
        forEachPatchPixel(batch: b, height: h, width: w) { (out.data + $1 * c).update(from: x.data + $0 * c, count: c) }
        return out
    }

    func fold(_ t: Tensor, batch b: Int, height h: Int, width w: Int) -> Tensor {
        let c = t.shape[2]
        let out = Tensor(uninitialized: [b, h, w, c])
        forEachPatchPixel(batch: b, height: h, width: w) { (out.data + $0 * c).update(from: t.data + $1 * c, count: c) }
        return out
    }

    /// Columns `[k·d, (k+1)·d)` of a `[B, N, 3d]` tensor as a contiguous `[B, N, d]`.
    func columns(_ x: Tensor, _ k: Int, _ d: Int) -> Tensor {
        let rows = x.count / (3 * d)
        let out = Tensor(uninitialized: [x.shape[0], x.shape[1], d])
        for r in 0..<rows { (out.data + r * d).update(from: x.data + r * 3 * d + k * d, count: d) }
        return out
    }

    func transformer(_ v: VitBlock, _ x: Tensor) -> Tensor {
        var x = x
        let dim = x.shape[2]
        for l in v.layers {
            let qkv = l.qkv(l.norm1(x))
            let a = attention(q: columns(qkv, 0, dim), k: columns(qkv, 1, dim), v: columns(qkv, 2, dim), heads: heads)
            let y = l.proj(a)
            addInPlace(y, x)
            x = y
            let m = l.fc2(l.fc1(l.norm2(x)))
            addInPlace(m, x)
            x = m
        }
        return v.norm(x)
    }

    public func features(nhwc x: Tensor) -> Tensor {
        var x = stem(x)
        for block in blocks {
            switch block {
            case .bottleneck(let b):
                x = b.project(b.depthwise(b.expand(x)), residual: b.shortcut ? x : nil)
            case .vit(let v):
                let input = x
                var y = v.toTokens(v.local(x))
                let (n, h, w) = (y.shape[0], y.shape[1], y.shape[2])
                // timm resizes maps that do not tile into whole patches, and resizes back after folding.
                let (th, tw) = ((h + patch - 1) / patch * patch, (w + patch - 1) / patch * patch)
                if (th, tw) != (h, w) { y = resize(y, height: th, width: tw, method: .bilinear) }
                y = fold(transformer(v, unfold(y)), batch: n, height: th, width: tw)
                if (th, tw) != (h, w) { y = resize(y, height: h, width: w, method: .bilinear) }
                x = v.fusion(concat([input, v.project(y)], axis: 3))
            }
        }
        return globalAveragePool(finalConv(x))
    }

    public func logits(features: Tensor) -> Tensor? { classifier?(features) }

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
                n.conv(v.local); n.conv(v.toTokens)
                let (h, w) = (n.height, n.width)
                let tokens = Double(((h + patch - 1) / patch * patch) * ((w + patch - 1) / patch * patch))
                let sequence = tokens / Double(patch * patch)
                let dim = Double(v.toTokens.outChannels)
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
        let pixels = try inputs.float("pixels", source: source)
        guard pixels.rank == 4, pixels.shape[1] == 3, pixels.shape[0] > 0, pixels.shape[2] >= 32, pixels.shape[3] >= 32 else {
            throw AffectError.badInput("\(source): `input.pixels` has shape \(pixels.shape), expected N×3×H×W with H, W ≥ 32.")
        }
        return outputs(pixelsNCHW: pixels)
    }
}
