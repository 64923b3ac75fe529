extension Reference {
    /// Multi-head scaled dot-product attention (Vaswani et al.), heads interleaved along the last axis:
    ///
    ///     out[b, i, h·D + c] = Σ_j p_ij · v[b, j, h·D + c],   p_i· = softmax_j( scale · Σ_c q[b, i, h·D + c] · k[b, j, h·D + c] )
    ///
    /// where the softmax runs over the keys `j` that the mask keeps; a query with no key to attend to gets
    /// zeros.
    ///
    /// - Parameters:
    ///   - q: `[B, Lq, H·D]`; `k`, `v`: `[B, Lk, H·D]`.
    ///   - keyMask: optional `[B·Lk]`, 1 = attend, 0 = padding (that key gets no weight).
    ///   - scale: defaults to `1/√D`.
    /// - Returns: `[B, Lq, H·D]`.
    public static func attention(q: Values, k: Values, v: Values, heads: Int, keyMask: [Float]? = nil,
                                 scale: Float? = nil) -> Values {
        let (b, lq, width) = (q.shape[0], q.shape[1], q.shape[2])
        let lk = k.shape[1], d = width / heads
        let s = Double(scale ?? 1 / Float(d).squareRoot())
        var out = Values(zeros: [b, lq, width])
        for bi in 0..<b { for h in 0..<heads { for i in 0..<lq {
            var scores = [Double](repeating: -.infinity, count: lk)
            for j in 0..<lk where keyMask == nil || keyMask![bi * lk + j] != 0 {
                var dot = 0.0
                for c in 0..<d { dot += Double(q.data[(bi * lq + i) * width + h * d + c]) * Double(k.data[(bi * lk + j) * width + h * d + c]) }
                scores[j] = s * dot
            }
            let p = softmax(scores)
            for c in 0..<d {
                var sum = 0.0
                for j in 0..<lk { sum += p[j] * Double(v.data[(bi * lk + j) * width + h * d + c]) }
                out.data[(bi * lq + i) * width + h * d + c] = Float(sum)
            }
        } } }
        return out
    }

    /// Self-attention from one fused projection: `qkv` is `[B, L, 3·H·D]`, per token all heads' queries,
    /// then keys, then values. The same as ``attention(q:k:v:heads:keyMask:scale:)`` on the three slices.
    public static func attention(qkv: Values, heads: Int, keyMask: [Float]? = nil, scale: Float? = nil) -> Values {
        let (b, l, width) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
        func slice(_ part: Int) -> Values {
            var t = Values(zeros: [b, l, width])
            for row in 0..<(b * l) { for c in 0..<width { t.data[row * width + c] = qkv.data[row * 3 * width + part * width + c] } }
            return t
        }
        return attention(q: slice(0), k: slice(1), v: slice(2), heads: heads, keyMask: keyMask, scale: scale)
    }
}
