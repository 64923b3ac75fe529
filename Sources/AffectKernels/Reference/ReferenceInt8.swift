extension Reference {
    /// Symmetric int8 quantisation of one row of values (a weight's output channel, or one input row):
    ///
    ///     scale = max_i |x[i]| / 127          q[i] = round_half_even(x[i] · 127 / max_i |x[i]|) ∈ [-127, 127]
    ///
    /// so that `x[i] ≈ q[i] · scale` with an error of at most `scale / 2`. An all-zero row has scale 0.
    /// With `limit` L < 127 (7-bit weights for the AVX2 kernel: L = 63), 127 above is L.
    public static func quantizeSymmetric(_ row: [Float], limit: Int = 127) -> (values: [Int8], scale: Float) {
        var maxAbs: Float = 0
        for v in row { maxAbs = max(maxAbs, abs(v)) }
        guard maxAbs > 0, maxAbs.isFinite else { return ([Int8](repeating: 0, count: row.count), 0) }
        let l = Float(limit)
        let inverse = l / maxAbs
        let q = row.map { v -> Int8 in
            let r = (v * inverse).rounded(.toNearestOrEven)
            return r.isNaN ? 0 : Int8(min(l, max(-l, r)))
        }
        return (q, maxAbs / l)
    }

    /// Asymmetric quantisation of one input row to unsigned bytes, for layers with 7-bit weights:
    ///
    ///     lo = min(0, min x)   hi = max(0, max x)   scale = (hi − lo) / 255   zp = rint(−lo · 255 / (hi − lo))
    ///     u[i] = clamp(rint(x[i] · 255 / (hi − lo)) + zp, 0, 255)          (NaN counts as 0)
    ///
    /// so that `x[i] ≈ (u[i] − zp) · scale`. A row without a finite range has scale 0, zero point 0 and zeros.
    public static func quantizeAsymmetric(_ row: [Float]) -> (values: [UInt8], scale: Float, zeroPoint: Int32) {
        var lo: Float = 0, hi: Float = 0
        for v in row { if v < lo { lo = v }; if v > hi { hi = v } }
        let span = hi - lo
        guard span > 0, span.isFinite else { return ([UInt8](repeating: 0, count: row.count), 0, 0) }
        let inverse = 255 / span
        let zp = min(255, max(0, (-lo * inverse).rounded(.toNearestOrEven)))
        let u = row.map { v -> UInt8 in
            var r = (v * inverse).rounded(.toNearestOrEven)
            if r.isNaN { r = 0 }
            return UInt8(min(255, max(0, r + zp)))
        }
        return (u, span / 255, Int32(zp))
    }

    /// The int8 matrix product with int32 sums: `C[i, j] = Σ_p A[i, p] · W[j, p]` for `A` `[m, k]` and `W`
    /// `[n, k]` (a linear layer's layout), all row-major.
    public static func int8GEMM(_ a: [Int8], _ w: [Int8], m: Int, n: Int, k: Int) -> [Int32] {
        precondition(a.count == m * k && w.count == n * k, "int8GEMM: \(a.count) and \(w.count) values for \(m)×\(k) · (\(n)×\(k))ᵀ")
        var c = [Int32](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var sum: Int32 = 0
            for p in 0..<k { sum += Int32(a[i * k + p]) * Int32(w[j * k + p]) }
            c[i * n + j] = sum
        } }
        return c
    }

    /// A linear layer with dynamic int8 quantisation, as ``Linear`` computes it at ``Precision/int8``:
    /// each weight channel (to `weightLimit`) and each input row quantised by ``quantizeSymmetric(_:limit:)``
    /// (by ``quantizeAsymmetric(_:)`` when the weights are 7-bit, `weightLimit` ≤ 63), the product in int32, then
    ///
    ///     y[r, o] = act( sum[r, o] · xScale[r] · wScale[o] + b[o] + res[r, o] )
    public static func int8Linear(_ x: Values, weight: Values, bias: [Float]? = nil, activation act: Activation = .none,
                                  residual: Values? = nil, weightLimit: Int = 127) -> Values {
        let (o, i) = (weight.shape[0], weight.shape[1])
        precondition(x.shape.last == i, "int8Linear: input \(x.shape) for weight \(weight.shape)")
        let rows = x.count / max(i, 1)
        let wq = (0..<o).map { quantizeSymmetric(Array(weight.data[$0 * i ..< ($0 + 1) * i]), limit: weightLimit) }
        let xq: [(values: [Int8], scale: Float)]
        var sums: [Int32]
        if weightLimit <= 63 {
            // 7-bit weights take asymmetric inputs: Σ (u − zp) · w.
            let aq = (0..<rows).map { quantizeAsymmetric(Array(x.data[$0 * i ..< ($0 + 1) * i])) }
            sums = [Int32](repeating: 0, count: rows * o)
            for r in 0..<rows { for oc in 0..<o {
                var sum: Int32 = 0
                for p in 0..<i { sum += (Int32(aq[r].values[p]) - aq[r].zeroPoint) * Int32(wq[oc].values[p]) }
                sums[r * o + oc] = sum
            } }
            xq = aq.map { ([], $0.scale) }
        } else {
            xq = (0..<rows).map { quantizeSymmetric(Array(x.data[$0 * i ..< ($0 + 1) * i])) }
            sums = int8GEMM(xq.flatMap(\.values), wq.flatMap(\.values), m: rows, n: o, k: i)
        }
        var y = Values(zeros: Array(x.shape.dropLast()) + [o])
        for r in 0..<rows { for oc in 0..<o {
            var v = Float(sums[r * o + oc]) * xq[r].scale * wq[oc].scale
            if let bias { v += bias[oc] }
            if let residual { v += residual.data[r * o + oc] }
            y.data[r * o + oc] = Float(activation(Double(v), act, channel: oc))
        } }
        return y
    }
}
