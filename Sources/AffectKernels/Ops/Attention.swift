/// Multi-head scaled dot-product attention.
///
/// - Parameters:
///   - q: `[B, Lq, H·D]`, k and v: `[B, Lk, H·D]` (heads interleaved along the last axis, as the
///     projections produce them, so nothing is transposed).
///   - keyMask: optional `[B, Lk]`, 1 = attend, 0 = padding (masked to −∞ before the softmax).
///   - scale: defaults to 1/√D.
/// - Returns: `[B, Lq, H·D]`.
public func attention(q: Tensor, k: Tensor, v: Tensor, heads: Int, keyMask: [Float]? = nil,
                      scale: Float? = nil) -> Tensor {
    let (b, lq, hd) = (q.shape[0], q.shape[1], q.shape[2])
    let lk = k.shape[1]
    precondition(hd % heads == 0 && k.shape == [b, lk, hd] && v.shape == [b, lk, hd], "attention shapes \(q.shape) \(k.shape) \(v.shape)")
    precondition(keyMask == nil || keyMask!.count == b * lk)
    let d = hd / heads
    let s = scale ?? 1 / Float(d).squareRoot()
    let out = Tensor(uninitialized: [b, lq, hd])
    let scores = Tensor(uninitialized: [lq, lk])
    for bi in 0..<b {
        for h in 0..<heads {
            let qp = q.data + bi * lq * hd + h * d
            let kp = k.data + bi * lk * hd + h * d
            let vp = v.data + bi * lk * hd + h * d
            sgemm(m: lq, n: lk, k: d, a: qp, lda: hd, b: kp, ldb: hd, bTransposed: true, c: scores.data, ldc: lk, alpha: s)
            if let mask = keyMask {
                mask.withUnsafeBufferPointer { m in
                    for j in 0..<lk where m[bi * lk + j] == 0 {
                        for i in 0..<lq { scores.data[i * lk + j] = -.infinity }
                    }
                }
            }
            softmaxInPlace(scores.data, rows: lq, cols: lk)
            sgemm(m: lq, n: d, k: lk, a: scores.data, lda: lk, b: vp, ldb: hd, bTransposed: false,
                  c: out.data + bi * lq * hd + h * d, ldc: hd)
        }
    }
    return out
}
