import Foundation
import AffectKernels

/// One candidate of the post-processing `affect analyze` applies to a frame-level task after its heads:
/// the late-fusion weight w of the head with a second one, a window-mean smoothing delta, and (EXPR) the
/// confidence filter threshold t.
public struct PostprocessSettings: Sendable, Equatable {
    /// This head's weight when blended with the other (`w`, the other `1 − w`); nil: no second head.
    public var weight: Float?
    /// Window mean over frames i − delta … i + delta (0: none).
    public var delta: Int = 0
    /// Confidence filter threshold (nil: off).
    public var threshold: Float?
    public init(weight: Float? = nil, delta: Int = 0, threshold: Float? = nil) {
        self.weight = weight; self.delta = delta; self.threshold = threshold
    }
}

/// One validation video's per-frame outputs, every frame filled as ``Analyzer`` fills them (interpolated over
/// frames without the face), before any blending, smoothing or filtering.
public struct TuningVideo: Sendable {
    /// The tuned head's outputs, `[frames, outputs]`.
    public let outputs: FeatureMatrix
    /// The second head's outputs on the same frames (for w).
    public let other: FeatureMatrix?
    /// The expression model's class probabilities (for t), `[frames, model classes]`.
    public let probabilities: FeatureMatrix?

    public init(outputs: FeatureMatrix, other: FeatureMatrix? = nil, probabilities: FeatureMatrix? = nil) throws {
        guard other.map({ $0.rows == outputs.rows && $0.columns == outputs.columns }) ?? true,
              probabilities.map({ $0.rows == outputs.rows }) ?? true else {
            throw AffectError.badInput("a validation video's second-head outputs or expression probabilities do not match its \(outputs.rows) frames.")
        }
        self.outputs = outputs; self.other = other; self.probabilities = probabilities
    }

    /// The outputs after `settings`, in ``Analyzer``'s order: blend, smooth (the probabilities too), filter.
    /// With a threshold the rows are one-hot rows of the predicted ABAW class.
    public func apply(_ settings: PostprocessSettings, mapping: ClassMapping?) throws -> FeatureMatrix {
        var x = outputs
        if let w = settings.weight, let o = other { x = try Fusion.blend([outputs, o], weights: [w, 1 - w]) }
        let smoother: TemporalSmoother? = settings.delta > 0 ? .mean(delta: settings.delta) : nil
        if let s = smoother { x = try s.apply(x) }
        guard let t = settings.threshold, let mapping, let p = probabilities else { return x }
        let probs = try smoother?.apply(p) ?? p
        let predicted = try ConfidenceFilter(threshold: t, mapping: mapping).apply(task: x, model: probs)
        var onehot = FeatureMatrix(rows: x.rows, columns: x.columns)
        for (r, c) in predicted.enumerated() { onehot[r, c] = 1 }
        return onehot
    }
}

/// Tunes the post-processing of a head on validation videos, one value after the other as the seed's
/// authors do: the blend weight w (when a second head is given), then the smoothing window, then the
/// confidence threshold t (EXPR with an expression model whose classes map onto ABAW's).
public enum PostprocessTuning {
    /// w candidates: 0, 0.05, … 1.
    public static let weights: [Float] = (0...20).map { Float($0) / 20 }
    /// Smoothing half-windows in frames.
    public static let deltas = [0, 1, 2, 3, 4, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50]
    /// t candidates (nil: filter off).
    public static let thresholds: [Float?] = [nil] + (8...19).map { Optional(Float($0) / 20) }

    /// A tuned setting, its score, and the score of every candidate tried (for the log).
    public struct Result {
        public let settings: PostprocessSettings
        public let score: Double
        public let tried: [(settings: PostprocessSettings, score: Double)]
    }

    /// The settings maximising `score` (higher is better) of the post-processed videos; ties keep the
    /// earlier (simpler) candidate.
    public static func tune(_ videos: [TuningVideo], blend: Bool, mapping: ClassMapping?,
                            score: ([FeatureMatrix]) throws -> Double) throws -> Result {
        var tried: [(settings: PostprocessSettings, score: Double)] = []
        var best = PostprocessSettings(weight: blend ? 1 : nil)
        var bestScore = -Double.infinity
        func consider(_ s: PostprocessSettings) throws {
            let v = try score(videos.map { try $0.apply(s, mapping: mapping) })
            tried.append((settings: s, score: v))
            if v > bestScore { bestScore = v; best = s }
        }
        if blend {
            for w in weights { try consider(PostprocessSettings(weight: w)) }
        } else {
            try consider(best)
        }
        let afterBlend = best
        for d in deltas.dropFirst() { var s = afterBlend; s.delta = d; try consider(s) }
        if mapping != nil && videos.allSatisfy({ $0.probabilities != nil }) {
            let afterSmoothing = best
            for t in thresholds.dropFirst() { var s = afterSmoothing; s.threshold = t; try consider(s) }
        }
        return Result(settings: best, score: bestScore, tried: tried)
    }
}
