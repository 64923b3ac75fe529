import Foundation
import AffectKernels

/// The validation layer every architecture loads through: a weight file is untrusted input, so each
/// number a forward pass will index with is checked here, at load, against the tensors and a sane range, and a
/// failure names the file, the tensor or config key, and what was expected and found.
///
/// - Tensors: ``WeightFile/tensor(_:shape:)`` rejects empty dimensions and NaN/Inf values (one vectorised scan
///   per tensor); the helpers below check whole layers (``WeightFile/linear(_:in:out:bias:activation:)``,
///   ``WeightFile/convWeight(_:out:inPerGroup:kernel:)``, norms).
/// - Config: bounded accessors (``WeightFile/configInt(_:default:in:)`` and friends) accept only exact
///   integers and finite numbers inside a range.
/// - Labels: ``WeightFile/requireLabels(count:of:)`` ties `affect.labels` to the classifier's width.
/// - `run` inputs: ``ModelInputs`` checks shape, range and values of what a reference file feeds a model.
extension WeightFile {
    /// Sane bounds for sizes a config may name. Far above any released model, far below what would exhaust memory.
    public enum Limits {
        /// Side of an image a vision model is fed (input_size).
        public static let imageSide = 1 ... 2048
        /// Channels, hidden sizes, feature widths.
        public static let width = 1 ... 65_536
        /// Layers of a stack.
        public static let layers = 1 ... 1024
        /// Attention heads.
        public static let heads = 1 ... 1024
        /// Convolution and pooling strides.
        public static let stride = 1 ... 64
        /// Kernel taps of a convolution or pooling window along one axis.
        public static let kernel = 1 ... 1024
        /// Audio sampling rates in Hz.
        public static let sampleRate = 4_000 ... 192_000
        /// Positions of a text model (max_seq_length and the like).
        public static let tokens = 1 ... 1 << 20
    }

    /// A ``AffectError/badInput(_:)`` naming this file.
    func problem(_ message: String) -> AffectError { .badInput("\(path): \(message)") }

    /// A JSON number that is an exact integer (`3`, `3.0`), else nil (`2.5`, `1e30`, strings).
    static func exactInteger(_ v: Any?) -> Int? {
        guard let n = v as? NSNumber else { return nil }
        if let i = v as? Int { return i }
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }

    private static func describe(_ v: Any?) -> String {
        switch v {
        case nil: return "missing"
        case let s as String: return "\"\(s)\""
        case let n as NSNumber: return n.stringValue
        case let x?: return "\(x)"
        }
    }

    private static func describe(_ r: ClosedRange<Int>) -> String {
        r.upperBound == Int.max ? "at least \(r.lowerBound)" : "in \(r.lowerBound)…\(r.upperBound)"
    }

    /// An integer from `dict` (named `what` in errors), `d` when absent, checked to lie in `range`.
    func boundedInt(_ dict: [String: Any], _ key: String, what: String, default d: Int?, in range: ClosedRange<Int>) throws -> Int {
        let raw = dict[key]
        let value: Int
        if raw == nil || raw is NSNull, let d {
            value = d
        } else {
            guard let i = Self.exactInteger(raw) else {
                throw problem("\(what) `\(key)` is \(Self.describe(raw)), expected an integer \(Self.describe(range)).")
            }
            value = i
        }
        guard range.contains(value) else {
            throw problem("\(what) `\(key)` is \(value), expected an integer \(Self.describe(range)).")
        }
        return value
    }

    /// `affect.config[key]`, an integer in `range` (`d` when absent).
    public func configInt(_ key: String, default d: Int? = nil, in range: ClosedRange<Int>) throws -> Int {
        try boundedInt(config, key, what: "config", default: d, in: range)
    }

    /// `affect.preprocess[key]`, an integer in `range` (`d` when absent).
    public func preprocessInt(_ key: String, default d: Int? = nil, in range: ClosedRange<Int>) throws -> Int {
        try boundedInt(preprocess, key, what: "metadata affect.preprocess", default: d, in: range)
    }

    /// `affect.config[key]`, a finite number in `range` (`d` when absent).
    public func configDouble(_ key: String, default d: Double? = nil, in range: ClosedRange<Double>) throws -> Double {
        let raw = config[key]
        if raw == nil, let d { return d }
        guard let v = (raw as? NSNumber)?.doubleValue, v.isFinite, range.contains(v) else {
            throw problem("config `\(key)` is \(Self.describe(raw)), expected a number in \(range.lowerBound)…\(range.upperBound).")
        }
        return v
    }

    /// A LayerNorm / BatchNorm epsilon from `affect.config[key]`: positive (also as a Float) and at most 1.
    public func configEps(_ key: String, default d: Double) throws -> Float {
        let raw = config[key]
        let e = raw == nil ? d : ((raw as? NSNumber)?.doubleValue ?? .nan)
        guard e.isFinite, e <= 1, Float(e) > 0 else {
            throw problem("config `\(key)` is \(Self.describe(raw)), expected a positive epsilon of at most 1.")
        }
        return Float(e)
    }

    /// `affect.config[key]`, a list of `count` integers each in `range` (`d` when absent).
    public func configInts(_ key: String, default d: [Int]? = nil, in range: ClosedRange<Int>,
                           count: ClosedRange<Int> = 0 ... 1024) throws -> [Int] {
        let raw = config[key]
        let values: [Int]
        if raw == nil, let d {
            values = d
        } else {
            guard let list = raw as? [Any] else { throw problem("config `\(key)` is \(Self.describe(raw)), expected a list of integers.") }
            values = try list.enumerated().map { i, v in
                guard let n = Self.exactInteger(v) else {
                    throw problem("config `\(key)[\(i)]` is \(Self.describe(v)), expected an integer \(Self.describe(range)).")
                }
                return n
            }
        }
        guard count.contains(values.count) else {
            throw problem("config `\(key)` has \(values.count) entries, expected \(Self.describe(count)).")
        }
        if let (i, v) = values.enumerated().first(where: { !range.contains($0.element) }) {
            throw problem("config `\(key)[\(i)]` is \(v), expected an integer \(Self.describe(range)).")
        }
        return values
    }

    /// Throws unless `affect.labels` is absent or names exactly `count` classes (the width of `tensor`).
    public func requireLabels(count: Int, of tensor: String) throws {
        guard labels.isEmpty || labels.count == count else {
            throw problem("metadata `affect.labels` names \(labels.count) classes but tensor `\(tensor)` has \(count) outputs.")
        }
    }

    /// Whether a layer's bias must be present.
    public enum BiasRule: Sendable { case required, optional, none }

    /// A dense layer `prefix.weight` `[out, in]` (+ `prefix.bias` `[out]`), checked to take `inFeatures` (−1:
    /// any) and, when given, to produce `out` features. An empty prefix names `weight` and `bias`.
    public func linear(_ prefix: String, in inFeatures: Int, out: Int? = nil, bias: BiasRule = .required,
                       activation: Activation = .none, precision: Precision = .float32) throws -> Linear {
        // A file holding one layer names its tensors without a prefix.
        let (wName, bName) = prefix.isEmpty ? ("weight", "bias") : ("\(prefix).weight", "\(prefix).bias")
        let weight = try tensor(wName, shape: [out ?? -1, inFeatures])
        let o = weight.shape[0]
        let b: Tensor?
        switch bias {
        case .required: b = try tensor(bName, shape: [o])
        case .optional: b = try optionalTensor(bName, shape: [o])
        case .none: b = nil
        }
        if case .prelu(let slopes) = activation, slopes.count != 1 && slopes.count != o {
            throw problem("layer `\(prefix)` has \(slopes.count) PReLU slopes for \(o) outputs.")
        }
        return Linear(weight: weight, bias: b, activation: activation, precision: precision)
    }

    /// A convolution weight `[out, inPerGroup, kh, kw]`, checked against what is given: output and per-group
    /// input channels, and a square `kernel` (a side, or any square side in `Limits.kernel` when nil).
    public func convWeight(_ name: String, out: Int? = nil, inPerGroup: Int? = nil, kernel: Int? = nil) throws -> Tensor {
        let w = try tensor(name, shape: [out ?? -1, inPerGroup ?? -1, kernel ?? -1, kernel ?? -1])
        guard w.shape[2] == w.shape[3], Limits.kernel.contains(w.shape[2]) else {
            throw problem("tensor `\(name)` has a \(w.shape[2])×\(w.shape[3]) kernel, expected a square one of at most \(Limits.kernel.upperBound).")
        }
        return w
    }

    /// The number of groups of a convolution whose weight `[out, inPerGroup, ·, ·]` reads `cin` channels:
    /// `cin / inPerGroup`, which must divide both `cin` and the output channels.
    public func convGroups(_ name: String, weight: Tensor, cin: Int) throws -> Int {
        let (o, ipg) = (weight.shape[0], weight.shape[1])
        guard cin % ipg == 0, o % (cin / ipg) == 0 else {
            throw problem("tensor `\(name)` has shape \(weight.shape), which cannot take \(cin) input channels (groups must divide inputs and outputs).")
        }
        return cin / ipg
    }

    /// LayerNorm `prefix.weight` and `prefix.bias`, both `[width]`.
    public func layerNorm(_ prefix: String, width: Int, eps: Float) throws -> LayerNorm {
        LayerNorm(weight: try tensor("\(prefix).weight", shape: [width]), bias: try tensor("\(prefix).bias", shape: [width]), eps: eps)
    }

    /// Inference BatchNorm from four `[channels]` tensors, checked to give finite scales and shifts (a negative
    /// running variance would give NaN after folding).
    public func batchNorm(gamma: String, beta: String, mean: String, variance: String, channels c: Int, eps: Float) throws -> BatchNorm {
        let v = try tensor(variance, shape: [c])
        for i in 0..<c where !(Double(v.data[i]) + Double(eps) > 0) {
            throw problem("tensor `\(variance)` holds the variance \(v.data[i]) at index \(i); variances must be ≥ 0.")
        }
        let bn = BatchNorm(gamma: try tensor(gamma, shape: [c]), beta: try tensor(beta, shape: [c]),
                           mean: try tensor(mean, shape: [c]), variance: v, eps: eps)
        guard bn.scale.allSatisfy(\.isFinite), bn.shift.allSatisfy(\.isFinite) else {
            throw problem("BatchNorm `\(gamma)` / `\(variance)` folds to non-finite scales (a variance too small for its weight).")
        }
        return bn
    }

    /// PyTorch BatchNorm tensors `prefix.weight`, `.bias`, `.running_mean`, `.running_var`.
    public func batchNorm(_ prefix: String, channels c: Int, eps: Float) throws -> BatchNorm {
        try batchNorm(gamma: "\(prefix).weight", beta: "\(prefix).bias", mean: "\(prefix).running_mean",
                      variance: "\(prefix).running_var", channels: c, eps: eps)
    }
}

/// Index of the first NaN or ±Inf among `count` floats, or nil.
///
/// Vectorised: the exponent fields of 16 floats at a time are max-reduced over blocks of 1024 (a float is NaN
/// or infinite exactly when its exponent bits are all ones), so a clean tensor costs one pass at memory speed.
func firstNonFinite(_ p: UnsafePointer<Float>, count n: Int) -> Int? {
    let raw = UnsafeRawPointer(p)
    let mask = SIMD16<UInt32>(repeating: 0x7F80_0000)
    let block = 1024
    var start = 0
    while start + block <= n {
        var m0 = SIMD16<UInt32>(), m1 = SIMD16<UInt32>()
        var i = start
        while i < start + block {
            m0 = pointwiseMax(m0, raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<UInt32>.self) & mask)
            m1 = pointwiseMax(m1, raw.loadUnaligned(fromByteOffset: 4 * (i + 16), as: SIMD16<UInt32>.self) & mask)
            i += 32
        }
        if any(pointwiseMax(m0, m1) .== mask) { break }
        start += block
    }
    for i in start..<n where !p[i].isFinite { return i }
    return nil
}

extension ModelInputs {
    /// A float input of rank `rank` whose every value is finite; `describe` names the expected shape in errors.
    public func finiteFloat(_ name: String, rank: Int, expected: String, source: String) throws -> Tensor {
        let t = try float(name, source: source)
        guard t.rank == rank, t.shape.allSatisfy({ $0 > 0 }) else {
            throw AffectError.badInput("\(source): `input.\(name)` has shape \(t.shape), expected \(expected).")
        }
        if let i = firstNonFinite(t.data, count: t.count) {
            throw AffectError.badInput("\(source): `input.\(name)` holds \(t.data[i]) at index \(i); inputs must be finite.")
        }
        return t
    }

    /// NCHW pixels: rank 4, `channels` channels, at least one image, sides in `sides`, finite values.
    public func pixels(_ name: String = "pixels", channels: Int, sides: ClosedRange<Int>, source: String) throws -> Tensor {
        let expected = "N×\(channels)×H×W with H, W in \(sides.lowerBound)…\(sides.upperBound)"
        let t = try finiteFloat(name, rank: 4, expected: expected, source: source)
        guard t.shape[1] == channels, sides.contains(t.shape[2]), sides.contains(t.shape[3]) else {
            throw AffectError.badInput("\(source): `input.\(name)` has shape \(t.shape), expected \(expected).")
        }
        return t
    }

    /// An attention mask of `shape` whose values are all 0 or 1, if the inputs hold one.
    public func mask(_ name: String = "attention_mask", shape: [Int], source: String) throws -> IntTensor? {
        guard let m = ints[name] else {
            if floats[name] != nil { throw AffectError.badInput("\(source): `input.\(name)` must be an integer tensor.") }
            return nil
        }
        guard m.shape == shape else {
            throw AffectError.badInput("\(source): `input.\(name)` has shape \(m.shape), expected \(shape).")
        }
        if let i = m.values.firstIndex(where: { $0 != 0 && $0 != 1 }) {
            throw AffectError.badInput("\(source): `input.\(name)` holds \(m.values[i]) at index \(i); a mask holds only 0 and 1.")
        }
        return m
    }
}
