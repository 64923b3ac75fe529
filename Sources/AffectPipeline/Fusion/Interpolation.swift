import AffectKernels

/// What ``LinearInterpolator`` returns outside `[x.first, x.last]`.
public enum Extrapolation: Equatable, Sendable {
    /// Continues the first/last segment's line: SciPy `interp1d(..., fill_value="extrapolate")`.
    case extrapolate
    /// Holds the first/last value: `interp1d(..., bounds_error=False, fill_value=(y[0], y[-1]))`.
    case hold
    /// A constant: `interp1d(..., bounds_error=False, fill_value=v)` (SciPy's default is NaN).
    case constant(Float)
}

/// Piecewise-linear interpolation of a matrix's rows over `x`, exactly as SciPy's
/// `interp1d(x, y, kind="linear", axis=0)`: for `x_new` the segment is `lo = clip(searchsorted(x, x_new) − 1,
/// 0, n − 2)`, `hi = lo + 1`, and `y = y[lo] + (y[hi] − y[lo]) / (x[hi] − x[lo]) · (x_new − x[lo])`,
/// computed in double precision. Points outside the range follow ``Extrapolation``.
public struct LinearInterpolator: Sendable {
    public let x: [Double]
    public let y: FeatureMatrix
    public let outside: Extrapolation

    /// `x` must be finite and strictly increasing with one entry per row of `y`; at least two points are
    /// needed (one suffices for `.hold` and `.constant`, which then return that row everywhere inside).
    public init(x: [Double], y: FeatureMatrix, outside: Extrapolation = .hold) throws {
        guard x.count == y.rows else {
            throw AffectError.badInput("interpolation has \(x.count) sample times for \(y.rows) rows.")
        }
        guard x.allSatisfy(\.isFinite) else { throw AffectError.badInput("interpolation sample times must be finite.") }
        for i in x.indices.dropFirst() where !(x[i] > x[i - 1]) {
            throw AffectError.badInput("interpolation sample times must be strictly increasing (time \(i) is \(x[i]) after \(x[i - 1])).")
        }
        guard x.count >= 2 || (x.count == 1 && outside != .extrapolate) else {
            throw AffectError.badInput("linear interpolation needs at least 2 samples (1 when holding the edges), got \(x.count).")
        }
        self.x = x; self.y = y; self.outside = outside
    }

    /// Values at `xNew` (any order), one row each.
    public func callAsFunction(_ xNew: [Double]) -> FeatureMatrix {
        let c = y.columns, n = x.count
        var out = FeatureMatrix(rows: xNew.count, columns: c)
        for (r, t) in xNew.enumerated() {
            let below = t < x[0], above = t > x[n - 1]
            if below || above {
                switch outside {
                case .hold:
                    let src = below ? 0 : n - 1
                    for j in 0..<c { out[r, j] = y[src, j] }
                    continue
                case .constant(let v):
                    for j in 0..<c { out[r, j] = v }
                    continue
                case .extrapolate: break
                }
            }
            if n == 1 { for j in 0..<c { out[r, j] = y[0, j] }; continue }
            // searchsorted(x, t, side="left"), clipped to [1, n-1] as SciPy does.
            var lo = 0, hi = n
            while lo < hi { let m = (lo + hi) / 2; if x[m] < t { lo = m + 1 } else { hi = m } }
            let idx = min(max(lo, 1), n - 1)
            let x0 = x[idx - 1], x1 = x[idx]
            for j in 0..<c {
                let y0 = Double(y[idx - 1, j]), y1 = Double(y[idx, j])
                out[r, j] = Float((y1 - y0) / (x1 - x0) * (t - x0) + y0)
            }
        }
        return out
    }
}

/// Putting audio and text features on the video's frame times.
public enum Alignment {
    /// Centre times (seconds) of `count` wav2vec 2.0 / HuBERT frames: frame `i` covers samples
    /// `[320 i, 320 i + 400)` at 16 kHz (stride 20 ms, receptive field 25 ms), so its centre is
    /// `i / rate + 0.0125`.
    public static func audioFrameTimes(count: Int, rate: Double = 50, receptiveField: Double = 0.025) -> [Double] {
        (0..<max(count, 0)).map { Double($0) / rate + receptiveField / 2 }
    }

    /// Audio features (one row per audio frame, at ``audioFrameTimes(count:rate:receptiveField:)``)
    /// interpolated linearly onto `frameTimes`; video frames before the first or after the last audio frame
    /// hold the edge value (`.hold`) unless `outside` says otherwise.
    public static func audio(_ features: FeatureMatrix, rate: Double = 50, to frameTimes: [Double],
                             outside: Extrapolation = .hold) throws -> FeatureMatrix {
        try LinearInterpolator(x: audioFrameTimes(count: features.rows, rate: rate), y: features, outside: outside)(frameTimes)
    }

    /// Word (or token) features placed at each word's mid-time `(start + end) / 2` and interpolated onto
    /// `frameTimes`, edges held. Words must be in time order with increasing mid-times.
    public static func words(_ features: FeatureMatrix, starts: [Double], ends: [Double], to frameTimes: [Double],
                             outside: Extrapolation = .hold) throws -> FeatureMatrix {
        guard starts.count == ends.count else { throw AffectError.badInput("words have \(starts.count) start times and \(ends.count) end times.") }
        for i in starts.indices where !(ends[i] >= starts[i]) {
            throw AffectError.badInput("word \(i) ends (\(ends[i]) s) before it starts (\(starts[i]) s).")
        }
        return try LinearInterpolator(x: zip(starts, ends).map { ($0 + $1) / 2 }, y: features, outside: outside)(frameTimes)
    }
}
