import Foundation
import AffectKernels

/// How ``TemporalSmoother/gaussian(sigma:mode:truncate:)`` extends a sequence past its ends, as
/// `scipy.ndimage`'s `mode`.
public enum BoundaryMode: String, Sendable {
    /// `d c b a | a b c d | d c b a` (SciPy's default).
    case reflect
    /// `a a a a | a b c d | d d d d`.
    case nearest
    /// `d c b | a b c d | c b a`.
    case mirror
}

/// Temporal smoothing of one video's per-frame rows (never across videos: give it one video's frames).
public enum TemporalSmoother: Sendable, Equatable {
    /// The authors' window mean: row i becomes `mean(p[max(0, i−delta) ... min(n−1, i+delta)])`, the window
    /// truncated at the ends of the video (not padded).
    case mean(delta: Int)
    /// The same truncated window with the median (`np.median`: mean of the two middle values for an even
    /// count).
    case median(delta: Int)
    /// Gaussian weighting as `scipy.ndimage.gaussian_filter1d(p, sigma, axis=0, mode=mode, truncate=truncate)`:
    /// weights `exp(−x²/2σ²)` for `|x| ≤ int(truncate·σ + 0.5)`, normalised to sum 1. The default mode is
    /// SciPy's (`reflect`).
    case gaussian(sigma: Double, mode: BoundaryMode = .reflect, truncate: Double = 4)

    /// The widest window accepted: `delta`, and the Gaussian radius `truncate·σ`, in frames (about an hour
    /// at 25 fps). Beyond the video's length a window covers it all, so larger values only cost time.
    public static let maxRadius = 100_000

    /// Throws unless the parameters are usable: `0 ≤ delta ≤ maxRadius`; `σ > 0`, `0 < truncate ≤ 100` and
    /// `truncate·σ ≤ maxRadius`, all finite.
    public func validate() throws {
        switch self {
        case .mean(let d), .median(let d):
            guard (0...Self.maxRadius).contains(d) else {
                throw AffectError.badInput("the smoothing window delta must be between 0 and \(Self.maxRadius) frames, got \(d).")
            }
        case .gaussian(let sigma, _, let truncate):
            guard sigma > 0, sigma.isFinite, truncate > 0, truncate <= 100, truncate * sigma <= Double(Self.maxRadius) else {
                throw AffectError.badInput("Gaussian smoothing needs sigma > 0 and truncate in (0, 100] with truncate·sigma at most \(Self.maxRadius) frames, got sigma \(sigma) and truncate \(truncate).")
            }
        }
    }

    /// Smooths each column of `p` over its rows (frames).
    public func apply(_ p: FeatureMatrix) throws -> FeatureMatrix {
        try validate()
        switch self {
        case .mean(let d): return windowMean(p, min(d, p.rows))
        case .median(let d): return windowMedian(p, min(d, p.rows))
        case .gaussian(let sigma, let mode, let truncate): return gaussian(p, sigma, mode, truncate)
        }
    }

    private func windowMean(_ p: FeatureMatrix, _ d: Int) -> FeatureMatrix {
        let n = p.rows
        var out = FeatureMatrix(rows: n, columns: p.columns)
        // Prefix sums in double: exact enough that window length does not matter.
        var prefix = [Double](repeating: 0, count: n + 1)
        for j in 0..<p.columns {
            for i in 0..<n { prefix[i + 1] = prefix[i] + Double(p[i, j]) }
            for i in 0..<n {
                let lo = max(0, i - d), hi = min(n - 1, i + d)
                out[i, j] = Float((prefix[hi + 1] - prefix[lo]) / Double(hi - lo + 1))
            }
        }
        return out
    }

    private func windowMedian(_ p: FeatureMatrix, _ d: Int) -> FeatureMatrix {
        let n = p.rows
        var out = FeatureMatrix(rows: n, columns: p.columns)
        for j in 0..<p.columns {
            // A sorted copy of the current window, updated as it slides.
            var window: [Float] = []
            func position(_ v: Float) -> Int {
                var lo = 0, hi = window.count
                while lo < hi { let m = (lo + hi) / 2; if window[m] < v { lo = m + 1 } else { hi = m } }
                return lo
            }
            var added = 0, removed = 0
            for i in 0..<n {
                let lo = max(0, i - d), hi = min(n - 1, i + d)
                while added <= hi { let v = p[added, j]; window.insert(v, at: position(v)); added += 1 }
                while removed < lo { window.remove(at: position(p[removed, j])); removed += 1 }
                let k = window.count
                out[i, j] = k % 2 == 1 ? window[k / 2] : Float((Double(window[k / 2 - 1]) + Double(window[k / 2])) / 2)
            }
        }
        return out
    }

    private func gaussian(_ p: FeatureMatrix, _ sigma: Double, _ mode: BoundaryMode, _ truncate: Double) -> FeatureMatrix {
        let n = p.rows
        var out = FeatureMatrix(rows: n, columns: p.columns)
        guard n > 0 else { return out }
        let radius = Int(truncate * sigma + 0.5)
        // SciPy's formula; a σ so small that σ² underflows has radius 0 and the single weight 1 (not 0·∞ = NaN).
        var w = radius == 0 ? [1.0] : (-radius...radius).map { exp(-0.5 / (sigma * sigma) * Double($0 * $0)) }
        let s = w.reduce(0, +)
        w = w.map { $0 / s }
        func index(_ i: Int) -> Int {
            if i >= 0 && i < n { return i }
            switch mode {
            case .nearest: return min(max(i, 0), n - 1)
            case .reflect:
                let period = 2 * n
                var m = i % period; if m < 0 { m += period }
                return m < n ? m : period - 1 - m
            case .mirror:
                if n == 1 { return 0 }
                let period = 2 * n - 2
                var m = i % period; if m < 0 { m += period }
                return m < n ? m : period - m
            }
        }
        let taps = (0..<(n + 2 * radius)).map { index($0 - radius) }
        for j in 0..<p.columns {
            let col = (0..<n).map { Double(p[$0, j]) }
            for i in 0..<n {
                var acc = 0.0
                for k in 0..<w.count { acc += w[k] * col[taps[i + k]] }
                out[i, j] = Float(acc)
            }
        }
        return out
    }
}
