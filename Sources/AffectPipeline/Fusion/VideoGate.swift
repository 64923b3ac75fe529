import AffectKernels
import AffectModels

/// A video-level switch for a per-frame task: a classifier (an arch `head` file, e.g. scikit-learn
/// logistic regression) on the mean of the video's text features decides whether the task's
/// per-frame predictions are kept or zeroed (as the authors gate AH by the transcript).
public struct VideoGate: Sendable {
    public let head: MLPHead
    /// The video passes when the gate's probability of `positiveColumn` is at least this.
    public var threshold: Float
    /// Column of the head's output that means "keep" (default: the last, i.e. class 1 of a binary model).
    public var positiveColumn: Int

    public init(head: MLPHead, threshold: Float = 0.5, positiveColumn: Int? = nil) throws {
        let col = positiveColumn ?? head.outputWidth - 1
        guard (0..<head.outputWidth).contains(col) else {
            throw AffectError.badInput("\(head.path): the gate's positive column \(col) is out of range for \(head.outputWidth) outputs.")
        }
        self.head = head; self.threshold = threshold; self.positiveColumn = col
    }

    /// The gate's probability for a video from its text features (one row per word, token or sentence).
    public func probability(textFeatures: FeatureMatrix) throws -> Float {
        let pooled = try Pooling.mean(textFeatures)
        let probs = try head.predict(Tensor(shape: [1, pooled.count], values: pooled), source: "mean text features")
        return probs.data[positiveColumn]
    }

    /// `predictions` unchanged when the video passes the gate, all zeros otherwise.
    public func apply(to predictions: FeatureMatrix, textFeatures: FeatureMatrix) throws -> FeatureMatrix {
        try probability(textFeatures: textFeatures) >= threshold
            ? predictions : FeatureMatrix(rows: predictions.rows, columns: predictions.columns)
    }
}
