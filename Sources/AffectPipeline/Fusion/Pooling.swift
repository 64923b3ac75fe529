import AffectKernels

/// Video-level descriptors from per-frame rows.
public enum Pooling {
    /// Column means (`np.mean(x, axis=0)`). Throws on an empty matrix.
    public static func mean(_ m: FeatureMatrix) throws -> [Float] {
        try stats(m).mean.map { Float($0) }
    }

    /// STAT pooling: `[mean | std | min | max]` over rows, concatenated in that order (4 × columns values);
    /// std is the population standard deviation (`np.std`, ddof 0). Throws on an empty matrix.
    public static func stat(_ m: FeatureMatrix) throws -> [Float] {
        let s = try stats(m)
        return (s.mean + s.std + s.min + s.max).map { Float($0) }
    }

    static func stats(_ m: FeatureMatrix) throws -> (mean: [Double], std: [Double], min: [Double], max: [Double]) {
        guard m.rows > 0 else { throw AffectError.badInput("cannot pool zero frames.") }
        let n = Double(m.rows)
        var mean = [Double](repeating: 0, count: m.columns), lo = mean, hi = mean, v = mean
        for j in 0..<m.columns {
            var s = 0.0, a = Double.infinity, b = -Double.infinity
            for i in 0..<m.rows { let x = Double(m[i, j]); s += x; a = min(a, x); b = max(b, x) }
            mean[j] = s / n; lo[j] = a; hi[j] = b
            // Two-pass variance, as NumPy (mean first, then squared deviations).
            var q = 0.0
            for i in 0..<m.rows { let d = Double(m[i, j]) - mean[j]; q += d * d }
            v[j] = (q / n).squareRoot()
        }
        return (mean, v, lo, hi)
    }
}
