import Foundation

extension Reference {
    /// `act(x)` for one value of channel `channel`, in `Double`:
    /// - ReLU `max(x, 0)`; ReLU6 `min(max(x, 0), 6)`;
    /// - SiLU (swish) `x·σ(x)` with `σ(x) = 1 / (1 + e^−x)`; sigmoid `σ(x)`; `tanh(x)`;
    /// - GELU, exact: `x·Φ(x) = ½·x·(1 + erf(x/√2))` (Hendrycks & Gimpel; PyTorch's default);
    /// - hard-swish `x·min(max(x + 3, 0), 6) / 6` (Howard et al., MobileNetV3);
    /// - PReLU `x` for x ≥ 0, `a_c·x` otherwise, one slope per channel (or one shared slope).
    public static func activation(_ x: Double, _ act: Activation, channel: Int = 0) -> Double {
        switch act {
        case .none: return x
        case .relu: return max(x, 0)
        case .relu6: return min(max(x, 0), 6)
        case .silu: return x / (1 + exp(-x))
        case .sigmoid: return 1 / (1 + exp(-x))
        case .tanh: return tanh(x)
        case .gelu: return gelu(x)
        case .hardSwish: return x * min(max(x + 3, 0), 6) / 6
        case .prelu(let slopes):
            let a = Double(slopes.count == 1 ? slopes[0] : slopes[channel])
            return x < 0 ? a * x : x
        }
    }

    /// Exact GELU, `½·x·(1 + erf(x/√2))`.
    public static func gelu(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }

    /// `act` over every value; the channel of a value (for PReLU) is its index along the last axis.
    public static func activation(_ x: Values, _ act: Activation) -> Values {
        let c = x.shape.last ?? 1
        var y = x
        for i in 0..<x.count { y.data[i] = Float(activation(Double(x.data[i]), act, channel: i % c)) }
        return y
    }

    /// Softmax along the last axis: `y_j = e^(x_j − m) / Σ_k e^(x_k − m)`, `m` the row's maximum (which leaves
    /// the result unchanged and keeps the exponentials finite). A row of −∞ (every key masked) gives zeros.
    public static func softmax(_ x: Values) -> Values {
        let n = x.shape.last ?? 1
        var y = x
        for r in 0..<(x.count / max(n, 1)) {
            let row = (0..<n).map { Double(x.data[r * n + $0]) }
            for (j, p) in softmax(row).enumerated() { y.data[r * n + j] = Float(p) }
        }
        return y
    }

    /// Softmax of one row (zeros if every value is −∞).
    static func softmax(_ row: [Double]) -> [Double] {
        let m = row.max() ?? 0
        if m == -.infinity { return row.map { _ in 0 } }
        let e = row.map { exp($0 - m) }
        let total = e.reduce(0, +)
        return e.map { $0 / total }
    }
}
