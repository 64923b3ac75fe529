import Foundation
import AffectKernels

/// EmotiEffLib's engagement classifier (arch `engagement`, from `engagement_single_attention.h5`): an attention
/// head on a window of per-frame facial features (EfficientNet-B0's 1280 for EmotiEffLib's file).
///
/// ```
/// window of W frames f₁…f_W (D each) ─ s = std over the window (per dimension, numpy's ddof 0)
///   x_i = [s | f_i] (2D) ─ e_i = x_i·k + b ─ α = softmax(e) over the window ─ c = Σ α_i x_i
///   ─ Dense(H) ReLU ─ Dense(classes) softmax → [Distracted, Engaged]
/// ```
///
/// `affect.config`: `attention`, `hidden`, `output` (the three Dense layers' names: tensors `NAME/kernel`
/// `[in, out]` and `NAME/bias`, Keras layouts), `feature_width` D, `hidden_width` H, `window` (EmotiEffLib's
/// `sliding_window_width`, 128). Shapes are checked at load: kernels `[2D, 1]`, `[2D, H]`, `[H, classes]`.
public struct EngagementModel: InferenceModel {
    public let arch = "engagement"
    public let path: String
    /// Class names (`Distracted`, `Engaged` for EmotiEffLib's file).
    public let labels: [String]
    /// D: the per-frame feature width the model reads (twice this with the window's deviations).
    public let featureWidth: Int
    /// The window the model was trained on (EmotiEffLib's default `sliding_window_width`).
    public let window: Int
    public let hiddenWidth: Int
    public var classes: Int { output.outFeatures }

    /// The attention layer's kernel `[2D]` and bias.
    let attentionKernel: [Float]
    let attentionBias: Float
    let hidden: Linear
    let output: Linear

    public static let windowRange = 1 ... 100_000

    public init(weights w: WeightFile) throws {
        try w.require(arch: "engagement")
        path = w.path
        featureWidth = try w.configInt("feature_width", in: WeightFile.Limits.width)
        hiddenWidth = try w.configInt("hidden_width", in: WeightFile.Limits.width)
        window = try w.configInt("window", default: 128, in: Self.windowRange)
        let a = try w.configString("attention"), h = try w.configString("hidden"), o = try w.configString("output")
        let k = try w.tensor("\(a)/kernel", shape: [2 * featureWidth, 1])
        let kb = try w.tensor("\(a)/bias", shape: [1])
        attentionKernel = Array(UnsafeBufferPointer(start: k.data, count: k.count))
        attentionBias = kb.data[0]
        // Keras kernels are [in, out]; Linear takes [out, in].
        let hk = try w.tensor("\(h)/kernel", shape: [2 * featureWidth, hiddenWidth]).permuted([1, 0])
        hidden = Linear(weight: hk, bias: try w.tensor("\(h)/bias", shape: [hiddenWidth]), activation: .relu)
        let ok = try w.tensor("\(o)/kernel", shape: [hiddenWidth, -1])
        let c = ok.shape[1]
        guard c >= 2, c <= 1024 else { throw w.problem("tensor `\(o)/kernel` gives \(c) classes, expected 2 to 1024.") }
        output = Linear(weight: ok.permuted([1, 0]), bias: try w.tensor("\(o)/bias", shape: [c]))
        labels = w.labels.isEmpty ? (0..<c).map { "class\($0)" } : w.labels
        if !w.labels.isEmpty { try w.requireLabels(count: c, of: "\(o)/kernel") }
    }

    public init(path: String) throws { try self.init(weights: WeightFile(path: path)) }

    /// Class probabilities `[N, classes]` for `N` windows of `width` frames each: window `n` is the frames
    /// `starts[n] ..< starts[n] + width` of `features` `[F, D]` (finite, checked by the callers).
    public func scores(features: Tensor, starts: [Int], width: Int) -> Tensor {
        let d = featureWidth, f = features.shape[0]
        precondition(features.rank == 2 && features.shape[1] == d && width >= 1)
        precondition(starts.allSatisfy { $0 >= 0 && $0 + width <= f })
        let n = starts.count
        let context = Tensor(uninitialized: [n, 2 * d])
        // The frames' own attention terms f_i · k[D..<2D], once per frame.
        var frameScore = [Double](repeating: 0, count: f)
        attentionKernel.withUnsafeBufferPointer { k in
            for i in 0..<f {
                let row = features.data + i * d
                var s = 0.0
                for j in 0..<d { s += Double(row[j]) * Double(k[d + j]) }
                frameScore[i] = s
            }
        }
        parallelFor(n, minChunk: 1) { n0, n1 in
            var mean = [Double](repeating: 0, count: d), sq = [Double](repeating: 0, count: d)
            var alpha = [Double](repeating: 0, count: width)
            for w in n0..<n1 {
                let start = starts[w]
                let out = context.data + w * 2 * d
                // Standard deviation over the window, per dimension (two passes, as numpy).
                for j in 0..<d { mean[j] = 0; sq[j] = 0 }
                for i in start..<(start + width) { let row = features.data + i * d; for j in 0..<d { mean[j] += Double(row[j]) } }
                for j in 0..<d { mean[j] /= Double(width) }
                for i in start..<(start + width) {
                    let row = features.data + i * d
                    for j in 0..<d { let v = Double(row[j]) - mean[j]; sq[j] += v * v }
                }
                var stdScore = Double(attentionBias)
                for j in 0..<d {
                    let s = (sq[j] / Double(width)).squareRoot()
                    out[j] = Float(s)
                    stdScore += Double(Float(s)) * Double(attentionKernel[j])
                }
                // Softmax over the window of e_i = [s | f_i]·k + b.
                var m = -Double.infinity
                for i in 0..<width { alpha[i] = frameScore[start + i] + stdScore; m = max(m, alpha[i]) }
                var total = 0.0
                for i in 0..<width { alpha[i] = exp(alpha[i] - m); total += alpha[i] }
                // Σ α_i x_i: the deviation half is s (the α sum to 1), the feature half the weighted frames.
                var weighted = [Double](repeating: 0, count: d)
                var alphaSum = 0.0
                for i in 0..<width {
                    let a = alpha[i] / total
                    alphaSum += a
                    let row = features.data + (start + i) * d
                    for j in 0..<d { weighted[j] += a * Double(row[j]) }
                }
                for j in 0..<d { out[j] = Float(Double(out[j]) * alphaSum); out[d + j] = Float(weighted[j]) }
            }
        }
        let probs = output(hidden(context))
        softmaxInPlace(probs.data, rows: n, cols: classes)
        return probs
    }

    /// EmotiEffLib's `classify_engagement`: windows start at every frame `0 ..< F − W` (its `range(F − W)`,
    /// which leaves out the last full window) and each gives `[classes]` probabilities. Fewer than `W + 1`
    /// frames is an error, as EmotiEffLib raises one (it makes no window from exactly `W` frames).
    public func classifyEngagement(_ features: Tensor, slidingWindowWidth width: Int? = nil,
                                   source: String = "features") throws -> EngagementPrediction {
        let w = width ?? window
        try check(features, source: source)
        guard Self.windowRange.contains(w) else {
            throw AffectError.badInput("\(source): the sliding window width \(w) is outside \(Self.windowRange.lowerBound)…\(Self.windowRange.upperBound).")
        }
        let f = features.shape[0]
        guard f > w else {
            throw AffectError.badInput("\(source): not enough frames to predict engagement: sliding window width \(w), but \(f) frames (at least \(w + 1) are needed, as in EmotiEffLib).")
        }
        let s = scores(features: features, starts: Array(0..<(f - w)), width: w)
        return EngagementPrediction(classes: labels, scores: s)
    }

    /// Checks `features` is `[F, D]` with finite values.
    public func check(_ features: Tensor, source: String) throws {
        guard features.rank == 2, features.shape[1] == featureWidth, features.shape[0] >= 1 else {
            throw AffectError.badInput("\(source): the engagement model \(path) reads features of width \(featureWidth), got shape \(features.shape.map(String.init).joined(separator: "×")).")
        }
        if let i = firstNonFinite(features.data, count: features.count) {
            throw AffectError.badInput("\(source): feature \(i) is \(features.data[i]); features must be finite.")
        }
    }

    /// `input.features` `[F, D]` → `output.scores` `[F − W, classes]` (``classifyEngagement(_:slidingWindowWidth:source:)``
    /// with the file's window).
    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        let x = try inputs.finiteFloat("features", rank: 2, expected: "F×\(featureWidth)", source: source)
        return ["scores": try classifyEngagement(x, source: source).scores]
    }

    public func benchInputs(_ shape: BenchShape) -> ModelInputs {
        let x = Tensor(uninitialized: [window + max(shape.batch, 1), featureWidth])
        for i in 0..<x.count { x.data[i] = Float(i % 23) * 0.03 }
        return ModelInputs(floats: ["features": x])
    }

    public func flops(_ inputs: ModelInputs) -> Double? {
        guard let f = inputs.floats["features"]?.shape.first, f > window else { return nil }
        let n = Double(f - window), d = Double(featureWidth)
        return n * (6 * Double(window) * d + 2 * 2 * d * Double(hiddenWidth) + 2 * Double(hiddenWidth * classes))
    }
}

/// What ``EngagementModel/classifyEngagement(_:slidingWindowWidth:source:)`` returns: one row per window.
public struct EngagementPrediction: Sendable {
    /// The class names, in score order.
    public var classes: [String]
    /// `[windows, classes]` probabilities.
    public var scores: Tensor
    /// The most probable class of each window (EmotiEffLib's first return value).
    public var labels: [String] {
        let c = classes.count
        return (0..<scores.shape[0]).map { n in
            var best = 0
            for j in 1..<c where scores.data[n * c + j] > scores.data[n * c + best] { best = j }
            return classes[best]
        }
    }
}

extension EmotionRecognizer {
    /// EmotiEffLib's `classify_engagement(features, sliding_window_width)`: `features` `[F, D]` from
    /// ``extractFeatures(_:)`` (EfficientNet-B0's 1280 for EmotiEffLib's file) through `model`'s windows.
    public func classifyEngagement(_ features: Tensor, model: EngagementModel,
                                   slidingWindowWidth: Int? = nil) throws -> EngagementPrediction {
        try model.classifyEngagement(features, slidingWindowWidth: slidingWindowWidth)
    }

    /// EmotiEffLib's `predict_engagement(face_imgs, sliding_window_width)`: the faces of consecutive frames.
    public func predictEngagement(_ faces: [RGBImage], model: EngagementModel,
                                  slidingWindowWidth: Int? = nil) throws -> EngagementPrediction {
        try classifyEngagement(extractFeatures(faces), model: model, slidingWindowWidth: slidingWindowWidth)
    }
}
