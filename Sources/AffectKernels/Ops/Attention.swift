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
    /// One (sequence, head) pair into `scores`; `threaded` splits its products across the threads.
    func pair(_ bi: Int, _ h: Int, _ scores: UnsafeMutablePointer<Float>, threaded: Bool) {
        let qp = q.data + bi * lq * hd + h * d
        let kp = k.data + bi * lk * hd + h * d
        let vp = v.data + bi * lk * hd + h * d
        let o = out.data + bi * lq * hd + h * d
        if threaded {
            sgemm(m: lq, n: lk, k: d, a: qp, lda: hd, b: kp, ldb: hd, bTransposed: true, c: scores, ldc: lk, alpha: s)
        } else {
            sgemmBlock(m: lq, n: lk, k: d, a: qp, lda: hd, b: kp, ldb: hd, bTransposed: true, c: scores, ldc: lk, alpha: s)
        }
        if let mask = keyMask {
            mask.withUnsafeBufferPointer { m in
                for j in 0..<lk where m[bi * lk + j] == 0 {
                    for i in 0..<lq { scores[i * lk + j] = -.infinity }
                }
            }
        }
        if threaded {
            softmaxInPlace(scores, rows: lq, cols: lk)
            sgemm(m: lq, n: d, k: lk, a: scores, lda: lk, b: vp, ldb: hd, bTransposed: false, c: o, ldc: hd)
        } else {
            for i in 0..<lq { softmaxRow(scores + i * lk, lk) }
            sgemmBlock(m: lq, n: d, k: lk, a: scores, lda: lk, b: vp, ldb: hd, bTransposed: false, c: o, ldc: hd)
        }
    }
    if b * heads >= 2 * Threading.threads {
        // Many small products (MobileViT: 4 patch positions × heads × batch sequences of ~200 tokens): whole
        // (sequence, head) pairs go to the threads, one fork-join per call instead of three per pair.
        parallelFor(b * heads, minChunk: 1) { p0, p1 in
            let scores = Tensor(uninitialized: [lq, lk])
            for p in p0..<p1 { pair(p / heads, p % heads, scores.data, threaded: false) }
        }
    } else {
        let scores = Tensor(uninitialized: [lq, lk])
        for bi in 0..<b { for h in 0..<heads { pair(bi, h, scores.data, threaded: true) } }
    }
    return out
}
