import Foundation

/// The validation measures early stopping maximises (the ABAW challenge measures), in double precision.
public enum ValidationMetric {
    /// Per-class F1 over classes `0..<classes` (a class never true nor predicted scores 0).
    public static func f1Scores(truth: [Int], predicted: [Int], classes: Int) -> [Double] {
        var tp = [Double](repeating: 0, count: classes), fp = tp, fn = tp
        for (t, p) in zip(truth, predicted) {
            if t == p { tp[t] += 1 } else { fp[p] += 1; fn[t] += 1 }
        }
        return (0..<classes).map { c in
            let d = 2 * tp[c] + fp[c] + fn[c]
            return d > 0 ? 2 * tp[c] / d : 0
        }
    }

    public static func macroF1(truth: [Int], predicted: [Int], classes: Int) -> Double {
        f1Scores(truth: truth, predicted: predicted, classes: classes).reduce(0, +) / Double(classes)
    }

    /// F1 of the positive class for binary truth and scores thresholded at `threshold` (score ≥ threshold).
    public static func binaryF1(truth: [Bool], scores: [Float], threshold: Float) -> Double {
        var tp = 0.0, fp = 0.0, fn = 0.0
        for (t, s) in zip(truth, scores) {
            let p = s >= threshold
            if p && t { tp += 1 } else if p { fp += 1 } else if t { fn += 1 }
        }
        let d = 2 * tp + fp + fn
        return d > 0 ? 2 * tp / d : 0
    }

    /// The threshold among 0.05, 0.10, …, 0.95 that maximises ``binaryF1(truth:scores:threshold:)`` (the
    /// lowest on ties), and that F1.
    public static func bestThreshold(truth: [Bool], scores: [Float]) -> (threshold: Float, f1: Double) {
        var best: (Float, Double) = (0.5, -1)
        for k in 1...19 {
            let t = Float(k) * 0.05
            let f = binaryF1(truth: truth, scores: scores, threshold: t)
            if f > best.1 { best = (t, f) }
        }
        return best
    }

    /// Lin's concordance correlation coefficient with population moments; 0 when undefined (both constant).
    public static func ccc(_ x: [Double], _ y: [Double]) -> Double {
        let (mx, my, vx, vy, c) = moments(x, y)
        let d = vx + vy + (mx - my) * (mx - my)
        return d > 0 ? 2 * c / d : 0
    }

    /// Pearson's correlation; 0 when either series is constant.
    public static func pearson(_ x: [Double], _ y: [Double]) -> Double {
        let (_, _, vx, vy, c) = moments(x, y)
        return vx > 0 && vy > 0 ? c / (vx * vy).squareRoot() : 0
    }

    static func moments(_ x: [Double], _ y: [Double]) -> (Double, Double, Double, Double, Double) {
        let n = Double(max(x.count, 1))
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var vx = 0.0, vy = 0.0, c = 0.0
        for (a, b) in zip(x, y) { vx += (a - mx) * (a - mx); vy += (b - my) * (b - my); c += (a - mx) * (b - my) }
        return (mx, my, vx / n, vy / n, c / n)
    }

    /// The task's validation measure of `outputs` `[rows, task.outputs]` (after the output activation)
    /// against `targets` `[rows, task.targetWidth]`, and any values tuned on the way (AU thresholds).
    public static func evaluate(_ task: TrainingTask, outputs: [Float], targets: [Float], rows: Int) -> (value: Double, thresholds: [Float]?) {
        let n = task.outputs
        switch task {
        case .expr:
            let truth = (0..<rows).map { Int(targets[$0]) }
            let predicted = (0..<rows).map { r -> Int in
                var best = 0
                for j in 1..<n where outputs[r * n + j] > outputs[r * n + best] { best = j }
                return best
            }
            return (macroF1(truth: truth, predicted: predicted, classes: n), nil)
        case .va, .emi:
            var total = 0.0
            for j in 0..<n {
                let x = (0..<rows).map { Double(outputs[$0 * n + j]) }, y = (0..<rows).map { Double(targets[$0 * n + j]) }
                total += task == .va ? ccc(x, y) : pearson(x, y)
            }
            return (total / Double(n), nil)
        case .au:
            var total = 0.0, thresholds: [Float] = []
            for j in 0..<n {
                let truth = (0..<rows).map { targets[$0 * n + j] > 0.5 }, scores = (0..<rows).map { outputs[$0 * n + j] }
                let (t, f) = bestThreshold(truth: truth, scores: scores)
                thresholds.append(t); total += f
            }
            return (total / Double(n), thresholds)
        case .ah, .gate:
            let truth = (0..<rows).map { targets[$0] > 0.5 ? 1 : 0 }, predicted = (0..<rows).map { outputs[$0] >= 0.5 ? 1 : 0 }
            return (macroF1(truth: truth, predicted: predicted, classes: 2), nil)
        }
    }
}
