import AffectKernels

/// The ABAW challenge measures, computed in double precision.
public enum Metrics {
    /// Per-class F1 for labels `0..<classes` (scikit-learn `f1_score(average=None, labels=range(classes),
    /// zero_division=0)`): a class never true nor predicted scores 0.
    public static func f1Scores(truth: [Int], predicted: [Int], classes: Int) throws -> [Double] {
        guard truth.count == predicted.count else {
            throw AffectError.badInput("F1 needs as many predictions as labels, got \(predicted.count) and \(truth.count).")
        }
        var tp = [Double](repeating: 0, count: classes), fp = tp, fn = tp
        for (t, p) in zip(truth, predicted) {
            if t == p { if (0..<classes).contains(t) { tp[t] += 1 } } else {
                if (0..<classes).contains(p) { fp[p] += 1 }
                if (0..<classes).contains(t) { fn[t] += 1 }
            }
        }
        return (0..<classes).map { c in
            let d = 2 * tp[c] + fp[c] + fn[c]
            return d > 0 ? 2 * tp[c] / d : 0
        }
    }

    /// Unweighted mean of ``f1Scores(truth:predicted:classes:)`` over all `classes` labels
    /// (`f1_score(average="macro", labels=range(classes), zero_division=0)`).
    public static func macroF1(truth: [Int], predicted: [Int], classes: Int) throws -> Double {
        let f = try f1Scores(truth: truth, predicted: predicted, classes: classes)
        return f.reduce(0, +) / Double(max(classes, 1))
    }

    /// Support-weighted mean of the per-class F1 (`f1_score(average="weighted", labels=range(classes))`).
    public static func weightedF1(truth: [Int], predicted: [Int], classes: Int) throws -> Double {
        let f = try f1Scores(truth: truth, predicted: predicted, classes: classes)
        var support = [Double](repeating: 0, count: classes)
        for t in truth where (0..<classes).contains(t) { support[t] += 1 }
        let total = support.reduce(0, +)
        return total > 0 ? zip(f, support).map(*).reduce(0, +) / total : 0
    }

    /// Lin's concordance correlation coefficient `2·cov(x, y) / (var x + var y + (x̄ − ȳ)²)` with
    /// population (ddof 0) moments, as the ABAW VA evaluation computes it with NumPy.
    public static func ccc(_ x: [Double], _ y: [Double]) throws -> Double {
        let (mx, my, vx, vy, cxy) = try moments(x, y, "CCC")
        return 2 * cxy / (vx + vy + (mx - my) * (mx - my))
    }

    /// Pearson's correlation `cov(x, y) / (σx σy)` (`np.corrcoef(x, y)[0, 1]`); NaN when either is constant.
    public static func pearson(_ x: [Double], _ y: [Double]) throws -> Double {
        let (_, _, vx, vy, cxy) = try moments(x, y, "Pearson correlation")
        return cxy / (vx * vy).squareRoot()
    }

    static func moments(_ x: [Double], _ y: [Double], _ what: String) throws -> (Double, Double, Double, Double, Double) {
        guard x.count == y.count, !x.isEmpty else {
            throw AffectError.badInput("\(what) needs two equally long, non-empty series, got \(x.count) and \(y.count) values.")
        }
        let n = Double(x.count)
        let mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        var vx = 0.0, vy = 0.0, c = 0.0
        for (a, b) in zip(x, y) { vx += (a - mx) * (a - mx); vy += (b - my) * (b - my); c += (a - mx) * (b - my) }
        return (mx, my, vx / n, vy / n, c / n)
    }
}
