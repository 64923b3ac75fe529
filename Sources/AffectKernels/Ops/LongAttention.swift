import Foundation

/// Multi-head self-attention for long sequences of 64-channel heads, reading q, k and v from one fused
/// projection: wav2vec 2.0 and HuBERT (499 frames for 10 s of audio, heads of 64 channels).
///
/// - Parameters:
///   - qkv: `[B, L, 3·H·64]`: per token, all heads' queries, then keys, then values (a stacked q/k/v `Linear`).
///   - keyMask: optional `[B·L]`, 1 = attend, 0 = padding. Keys past an item's last unmasked key are skipped;
///     a mask with holes before that goes to ``attention(qkv:heads:keyMask:scale:)``.
///   - scale: defaults to 1/√64.
/// - Returns: `[B, L, H·64]`, heads interleaved along the last axis.
///
/// One task per (item, head) across threads. Per task the keys are packed transposed (`[64][L]`, so 16
/// neighbouring keys form one vector) and the values contiguously, both staying in L2; then for each block of
/// six queries the scores against 64 keys at a time are accumulated in registers, the block's rows are
/// exponentiated in place (max-subtracted, the scale applied inside the exponent as in
/// ``tileAttention(qkv:heads:scale:)``), multiplied into the values, and divided by their sums only when
/// stored. Six rows make both products 24 accumulators, 4 vector loads and 6 broadcasts per step, so they
/// run at the multiply-add units' rate; the scores of a block (6 × L floats) never leave L1. Per (item, head)
/// OpenBLAS instead packed both operands of two 499 × 499 × 64 products and the softmax made a third pass
/// over a 1 MB score matrix. Other head widths go to ``attention(qkv:heads:keyMask:scale:)``.
public func longAttention(qkv: Tensor, heads: Int, keyMask: [Float]? = nil, scale: Float? = nil) -> Tensor {
    let (b, l, w) = (qkv.shape[0], qkv.shape[1], qkv.shape[2])
    precondition(qkv.rank == 3 && w % (3 * heads) == 0, "long attention: width \(w) is not 3 × \(heads) heads")
    precondition(keyMask == nil || keyMask!.count == b * l)
    let hd = w / 3, d = hd / heads
    guard d == 64 else { return attention(qkv: qkv, heads: heads, keyMask: keyMask, scale: scale) }
    // Keys each item needs: up to its last unmasked one (right padding).
    var keys = [Int](repeating: l, count: b)
    if let m = keyMask {
        for i in 0..<b {
            var last = 0
            for j in 0..<l where m[i * l + j] != 0 { last = j + 1 }
            if (0..<last).contains(where: { m[i * l + $0] == 0 }) {
                return attention(qkv: qkv, heads: heads, keyMask: keyMask, scale: scale)
            }
            keys[i] = last
        }
    }
    let s = scale ?? 1 / Float(d).squareRoot()
    let out = Tensor(uninitialized: [b, l, hd])
    guard l > 0 else { return out }
    let lp = (l + 63) & ~63
    let src = UnsafePointer(qkv.data), dst = out.data
    keys.withUnsafeBufferPointer { kp in
        parallelFor(b * heads, minChunk: 1) { t0, t1 in
            let scratch = Tensor(uninitialized: [64 * lp + l * 64 + 6 * lp])
            let kt = scratch.data, vp = kt + 64 * lp, sc = vp + l * 64
            for task in t0..<t1 {
                let (bi, h) = (task / heads, task % heads)
                let lk = kp[bi], ld = (lk + 63) & ~63
                let o = dst + bi * l * hd + h * 64
                if lk == 0 {
                    for i in 0..<l { (o + i * hd).initialize(repeating: 0, count: 64) }
                    continue
                }
                let base = src + bi * l * w + h * 64
                // Kᵀ as [64, ld] (zero past lk) and V as [lk, 64]. Wrapping arithmetic: the offsets are bounded
                // by the tensors' sizes, and overflow checks would dominate this scalar transpose.
                for c in 0..<64 { (kt + (c &* ld &+ lk)).update(repeating: 0, count: ld - lk) }
                for j in 0..<lk {
                    let kr = base + (j &* w &+ hd)
                    var kc = kt + j
                    for c in 0..<64 { kc.pointee = kr[c]; kc += ld }
                    (vp + j &* 64).update(from: base + (j &* w &+ 2 &* hd), count: 64)
                }
                var i = 0
                while i < l {
                    let rows = min(6, l - i)
                    // A short last block repeats its first query in the spare rows (finite values, never stored).
                    let q0 = base + i * w
                    let q = (q0, rows > 1 ? q0 + w : q0, rows > 2 ? q0 + 2 * w : q0, rows > 3 ? q0 + 3 * w : q0,
                             rows > 4 ? q0 + 4 * w : q0, rows > 5 ? q0 + 5 * w : q0)
                    var j = 0
                    while j < ld { scores6x64(q, kt + j, ld, sc + j, ld); j += 64 }
                    var inv = (Float(0), Float(0), Float(0), Float(0), Float(0), Float(0))
                    inv.0 = exponentiateRow(sc, lk, s)
                    if rows > 1 { inv.1 = exponentiateRow(sc + ld, lk, s) }
                    if rows > 2 { inv.2 = exponentiateRow(sc + 2 * ld, lk, s) }
                    if rows > 3 { inv.3 = exponentiateRow(sc + 3 * ld, lk, s) }
                    if rows > 4 { inv.4 = exponentiateRow(sc + 4 * ld, lk, s) }
                    if rows > 5 { inv.5 = exponentiateRow(sc + 5 * ld, lk, s) }
                    values6x64(sc, ld, lk, vp, inv, o + i * hd, hd, rows: rows)
                    i += 6
                }
            }
        }
    }
    return out
}

#if AFFECT_AVX512
/// 64 consecutive columns of one row of an output tile: four 16-lane accumulators. Six rows are 24 of
/// AVX-512's 32 registers, with the four loaded vectors beside them.
private struct Row64 {
    var v0 = Vec(), v1 = Vec(), v2 = Vec(), v3 = Vec()
    @inline(__always) mutating func fma(_ a: Float, _ b0: Vec, _ b1: Vec, _ b2: Vec, _ b3: Vec) {
        let x = Vec(repeating: a)
        v0 = v0.addingProduct(x, b0); v1 = v1.addingProduct(x, b1)
        v2 = v2.addingProduct(x, b2); v3 = v3.addingProduct(x, b3)
    }
    @inline(__always) func store(to p: UnsafeMutablePointer<Float>, times f: Float = 1) {
        let fv = Vec(repeating: f)
        AffectKernels.store(v0 * fv, p); AffectKernels.store(v1 * fv, p + 16)
        AffectKernels.store(v2 * fv, p + 32); AffectKernels.store(v3 * fv, p + 48)
    }
}

/// Raw scores of six queries (64 channels each) against 64 keys: `sc[r·lds + j] = q_r · k_j`, with Kᵀ rows
/// `ldk` apart.
@inline(__always)
private func scores6x64(_ q: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                             UnsafePointer<Float>, UnsafePointer<Float>),
                        _ kt: UnsafePointer<Float>, _ ldk: Int, _ sc: UnsafeMutablePointer<Float>, _ lds: Int) {
    var r0 = Row64(), r1 = Row64(), r2 = Row64(), r3 = Row64(), r4 = Row64(), r5 = Row64()
    var k = kt
    for c in 0..<64 {
        let k0 = load(k), k1 = load(k + 16), k2 = load(k + 32), k3 = load(k + 48)
        r0.fma(q.0[c], k0, k1, k2, k3); r1.fma(q.1[c], k0, k1, k2, k3); r2.fma(q.2[c], k0, k1, k2, k3)
        r3.fma(q.3[c], k0, k1, k2, k3); r4.fma(q.4[c], k0, k1, k2, k3); r5.fma(q.5[c], k0, k1, k2, k3)
        k += ldk
    }
    r0.store(to: sc); r1.store(to: sc + lds); r2.store(to: sc + 2 * lds)
    r3.store(to: sc + 3 * lds); r4.store(to: sc + 4 * lds); r5.store(to: sc + 5 * lds)
}

/// Six rows of `P·V` over `lk` keys (P: exponentiated scores, rows `lds` apart; V: `[lk, 64]`), each row times
/// its 1 / sum, into the first `rows` rows of `o` (rows `ldo` apart).
@inline(__always)
private func values6x64(_ p: UnsafePointer<Float>, _ lds: Int, _ lk: Int, _ v: UnsafePointer<Float>,
                        _ inv: (Float, Float, Float, Float, Float, Float), _ o: UnsafeMutablePointer<Float>, _ ldo: Int,
                        rows: Int) {
    var r0 = Row64(), r1 = Row64(), r2 = Row64(), r3 = Row64(), r4 = Row64(), r5 = Row64()
    let p1 = p + lds, p2 = p + 2 * lds, p3 = p + 3 * lds, p4 = p + 4 * lds, p5 = p + 5 * lds
    var vj = v
    for j in 0..<lk {
        let v0 = load(vj), v1 = load(vj + 16), v2 = load(vj + 32), v3 = load(vj + 48)
        r0.fma(p[j], v0, v1, v2, v3); r1.fma(p1[j], v0, v1, v2, v3); r2.fma(p2[j], v0, v1, v2, v3)
        r3.fma(p3[j], v0, v1, v2, v3); r4.fma(p4[j], v0, v1, v2, v3); r5.fma(p5[j], v0, v1, v2, v3)
        vj += 64
    }
    r0.store(to: o, times: inv.0)
    if rows > 1 { r1.store(to: o + ldo, times: inv.1) }
    if rows > 2 { r2.store(to: o + 2 * ldo, times: inv.2) }
    if rows > 3 { r3.store(to: o + 3 * ldo, times: inv.3) }
    if rows > 4 { r4.store(to: o + 4 * ldo, times: inv.4) }
    if rows > 5 { r5.store(to: o + 5 * ldo, times: inv.5) }
}
#else
// AVX2 has 16 ymm registers: six rows of 64 columns would be 48 accumulators and spill on every step (the
// kernel ran at about 23 GFLOP/s in wav2vec 2.0). The same products go in four strips of 16 columns: six
// rows × one 16-lane vector are 12 ymm accumulators, plus the loaded vector's two halves and a broadcast,
// which is the GEMM's 6 × 16 tile.

/// Raw scores of six queries (64 channels each) against 64 keys: `sc[r·lds + j] = q_r · k_j`, with Kᵀ rows
/// `ldk` apart.
@inline(__always)
private func scores6x64(_ q: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                             UnsafePointer<Float>, UnsafePointer<Float>),
                        _ kt: UnsafePointer<Float>, _ ldk: Int, _ sc: UnsafeMutablePointer<Float>, _ lds: Int) {
    for s in stride(from: 0, to: 64, by: 16) {
        var r0 = Vec(), r1 = Vec(), r2 = Vec(), r3 = Vec(), r4 = Vec(), r5 = Vec()
        var k = kt + s
        for c in 0..<64 {
            let kv = load(k)
            r0 = r0.addingProduct(Vec(repeating: q.0[c]), kv); r1 = r1.addingProduct(Vec(repeating: q.1[c]), kv)
            r2 = r2.addingProduct(Vec(repeating: q.2[c]), kv); r3 = r3.addingProduct(Vec(repeating: q.3[c]), kv)
            r4 = r4.addingProduct(Vec(repeating: q.4[c]), kv); r5 = r5.addingProduct(Vec(repeating: q.5[c]), kv)
            k += ldk
        }
        store(r0, sc + s); store(r1, sc + lds + s); store(r2, sc + 2 * lds + s)
        store(r3, sc + 3 * lds + s); store(r4, sc + 4 * lds + s); store(r5, sc + 5 * lds + s)
    }
}

/// Six rows of `P·V` over `lk` keys (P: exponentiated scores, rows `lds` apart; V: `[lk, 64]`), each row times
/// its 1 / sum, into the first `rows` rows of `o` (rows `ldo` apart).
@inline(__always)
private func values6x64(_ p: UnsafePointer<Float>, _ lds: Int, _ lk: Int, _ v: UnsafePointer<Float>,
                        _ inv: (Float, Float, Float, Float, Float, Float), _ o: UnsafeMutablePointer<Float>, _ ldo: Int,
                        rows: Int) {
    let p1 = p + lds, p2 = p + 2 * lds, p3 = p + 3 * lds, p4 = p + 4 * lds, p5 = p + 5 * lds
    for s in stride(from: 0, to: 64, by: 16) {
        var r0 = Vec(), r1 = Vec(), r2 = Vec(), r3 = Vec(), r4 = Vec(), r5 = Vec()
        var vj = v + s
        for j in 0..<lk {
            let vv = load(vj)
            r0 = r0.addingProduct(Vec(repeating: p[j]), vv); r1 = r1.addingProduct(Vec(repeating: p1[j]), vv)
            r2 = r2.addingProduct(Vec(repeating: p2[j]), vv); r3 = r3.addingProduct(Vec(repeating: p3[j]), vv)
            r4 = r4.addingProduct(Vec(repeating: p4[j]), vv); r5 = r5.addingProduct(Vec(repeating: p5[j]), vv)
            vj += 64
        }
        store(r0 * Vec(repeating: inv.0), o + s)
        if rows > 1 { store(r1 * Vec(repeating: inv.1), o + ldo + s) }
        if rows > 2 { store(r2 * Vec(repeating: inv.2), o + 2 * ldo + s) }
        if rows > 3 { store(r3 * Vec(repeating: inv.3), o + 3 * ldo + s) }
        if rows > 4 { store(r4 * Vec(repeating: inv.4), o + 4 * ldo + s) }
        if rows > 5 { store(r5 * Vec(repeating: inv.5), o + 5 * ldo + s) }
    }
}
#endif
