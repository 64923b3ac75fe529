extension Reference {
    /// A fully connected layer over the last axis (`torch.nn.Linear`, then a residual and an activation):
    ///
    ///     y[r, o] = act( b[o] + res[r, o] + Σ_i x[r, i] · W[o, i] )
    ///
    /// - Parameters:
    ///   - x: `[..., I]`, any number of leading axes (`r` runs over all of them).
    ///   - weight: `[O, I]`.
    ///   - residual: optional, the output's shape.
    /// - Returns: `[..., O]`.
    public static func linear(_ x: Values, weight: Values, bias: [Float]? = nil, activation act: Activation = .none,
                              residual: Values? = nil) -> Values {
        let (o, i) = (weight.shape[0], weight.shape[1])
        precondition(x.shape.last == i, "linear: input \(x.shape) for weight \(weight.shape)")
        let rows = x.count / max(i, 1)
        var y = Values(zeros: Array(x.shape.dropLast()) + [o])
        for r in 0..<rows { for oc in 0..<o {
            var sum = Double(bias?[oc] ?? 0) + Double(residual?.data[r * o + oc] ?? 0)
            for k in 0..<i { sum += Double(x.data[r * i + k]) * Double(weight.data[oc * i + k]) }
            y.data[r * o + oc] = Float(activation(sum, act, channel: oc))
        } }
        return y
    }

    /// Batched matrix product over the last two axes: `C[..., m, n] = Σ_k A[..., m, k] · B[..., k, n]`
    /// (`B[..., n, k]` when `transposeB`), times `alpha`. Leading axes must be equal.
    public static func matmul(_ a: Values, _ b: Values, transposeB: Bool = false, alpha: Float = 1) -> Values {
        let (m, k) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let n = transposeB ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
        precondition(a.rank == b.rank && (transposeB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]) == k, "matmul: \(a.shape) · \(b.shape)")
        let batch = a.count / max(m * k, 1)
        var c = Values(zeros: Array(a.shape.dropLast(2)) + [m, n])
        for s in 0..<batch { for i in 0..<m { for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                let bv = transposeB ? b.data[s * n * k + j * k + p] : b.data[s * k * n + p * n + j]
                sum += Double(a.data[s * m * k + i * k + p]) * Double(bv)
            }
            c.data[s * m * n + i * n + j] = Float(Double(alpha) * sum)
        } } }
        return c
    }
}
