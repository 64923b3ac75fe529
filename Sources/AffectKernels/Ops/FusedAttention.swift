/// Multi-head scaled dot-product self-attention reading q, k and v straight from one fused projection.
///
/// - Parameters:
///   - qkv: `[B, L, 3·H·D]`: per token, all heads' queries, then keys, then values (a stacked q/k/v `Linear`).
///   - keyMask: optional `[B·L]`, 1 = attend, 0 = padding (that key gets no weight).
///   - scale: defaults to 1/√D.
/// - Returns: `[B, L, H·D]`, heads interleaved along the last axis.
///
/// One task per (item, head) across threads, each with its own score matrix and single-threaded GEMMs:
/// at BERT sizes a head's products are too small to split further, and heads are independent. Keys past an
/// item's last unmasked key (right padding) are skipped rather than masked.
public func attention(qkv: Tensor, heads: Int, keyMask: [Float]? = nil, scale: Float? = nil) -> Tensor {
    let (b, l, w) = (qkv.shape[0], qkv.shape[1], qkv.shape[2])
    precondition(w % (3 * heads) == 0, "fused attention: width \(w) is not 3 × \(heads) heads")
    precondition(keyMask == nil || keyMask!.count == b * l)
    let hd = w / 3, d = hd / heads
    let s = scale ?? 1 / Float(d).squareRoot()
    let out = Tensor(uninitialized: [b, l, hd])
    // Keys each item needs: up to its last unmasked one.
    var keys = [Int](repeating: l, count: b)
    if let m = keyMask {
        for i in 0..<b {
            var last = 0
            for j in 0..<l where m[i * l + j] != 0 { last = j + 1 }
            keys[i] = last
        }
    }
    let src = qkv.data, dst = out.data
    keys.withUnsafeBufferPointer { kp in
        parallelFor(b * heads, minChunk: 1) { t0, t1 in
            let scores = Tensor(uninitialized: [l, l])
            for task in t0..<t1 {
                let (bi, h) = (task / heads, task % heads)
                let lk = kp[bi]
                let o = dst + bi * l * hd + h * d
                if lk == 0 {
                    for i in 0..<l { (o + i * hd).initialize(repeating: 0, count: d) }
                    continue
                }
                let base = src + bi * l * w
                sgemmBlock(m: l, n: lk, k: d, a: base + h * d, lda: w, b: base + hd + h * d, ldb: w, bTransposed: true,
                           c: scores.data, ldc: lk, alpha: s)
                if let mask = keyMask {
                    mask.withUnsafeBufferPointer { mp in
                        for j in 0..<lk where mp[bi * l + j] == 0 {
                            for i in 0..<l { scores.data[i * lk + j] = -.infinity }
                        }
                    }
                }
                for i in 0..<l { softmaxRow(scores.data + i * lk, lk) }
                sgemmBlock(m: l, n: d, k: lk, a: scores.data, lda: lk, b: base + 2 * hd + h * d, ldb: w, bTransposed: false,
                           c: o, ldc: hd)
            }
        }
    }
    return out
}
