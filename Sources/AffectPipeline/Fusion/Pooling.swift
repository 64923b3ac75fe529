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

/// Mean and STAT pooling of rows that arrive a chunk at a time (a long recording's frames), keeping four
/// values per column instead of every row: Welford's update in double precision, whose mean and population
/// standard deviation agree with ``Pooling``'s two-pass ones to about 1e-15 relative, far below Float.
public struct RunningPooling: Sendable {
    public let columns: Int
    /// Rows added so far.
    public private(set) var rows = 0
    private var mean: [Double], m2: [Double], lo: [Double], hi: [Double]

    public init(columns: Int) {
        self.columns = columns
        mean = [Double](repeating: 0, count: columns); m2 = mean
        lo = [Double](repeating: .infinity, count: columns); hi = [Double](repeating: -.infinity, count: columns)
    }

    /// Adds `count` rows of `columns` values each, row-major.
    public mutating func add(_ values: UnsafePointer<Float>, rows count: Int) {
        for i in 0..<count {
            rows += 1
            let k = Double(rows), row = values + i * columns
            for j in 0..<columns {
                let x = Double(row[j]), d = x - mean[j]
                mean[j] += d / k
                m2[j] += d * (x - mean[j])
                lo[j] = min(lo[j], x); hi[j] = max(hi[j], x)
            }
        }
    }

    /// Column means (as ``Pooling/mean(_:)``). Throws when no row was added.
    public func means() throws -> [Float] {
        guard rows > 0 else { throw AffectError.badInput("cannot pool zero frames.") }
        return mean.map { Float($0) }
    }

    /// `[mean | std | min | max]` (as ``Pooling/stat(_:)``). Throws when no row was added.
    public func stat() throws -> [Float] {
        guard rows > 0 else { throw AffectError.badInput("cannot pool zero frames.") }
        let std = m2.map { ($0 / Double(rows)).squareRoot() }
        return (mean + std + lo + hi).map { Float($0) }
    }
}
