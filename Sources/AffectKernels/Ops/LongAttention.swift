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
/// One task per (item, head) across threads. Per task the keys are packed transposed in strips of 16 (16
/// neighbouring keys form one vector) and the values in strips of 16 channels, both staying in L2; then for
/// each block of six queries the scores against 64 keys at a time are accumulated in registers, the block's
/// rows are exponentiated in place (max-subtracted, the scale applied inside the exponent as in
/// ``tileAttention(qkv:heads:scale:)``), multiplied into the values, and divided by their sums only when
/// stored. With AVX-512 six rows of 64 columns make both products 24 accumulators, 4 vector loads and 6
/// broadcasts per step; with AVX2 the strips go through the GEMM's 6 × 16 micro-kernel. Either way they run
/// at the multiply-add units' rate, and the scores of a block (6 × L floats) never leave L1. Per (item, head)
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
                // Kᵀ in strips of 16 keys, `[ld / 16][64][16]` (zero past lk), and V in strips of 16 channels,
                // `[4][lk][16]`: each strip is a GEMM panel (a k step is one contiguous 16-float row), which is the
                // layout the AVX2 build's 6 × 16 micro-kernel reads. Wrapping arithmetic: the offsets are bounded
                // by the tensors' sizes, and overflow checks would dominate this scalar transpose.
                let full = lk >> 4
                (kt + full &* 1024).update(repeating: 0, count: (ld >> 4 &- full) &* 1024)
                for j in 0..<lk {
                    let kr = base + (j &* w &+ hd)
                    var kc = kt + ((j >> 4) &* 1024 &+ (j & 15))
                    for c in 0..<64 { kc.pointee = kr[c]; kc += 16 }
                    let vr = base + (j &* w &+ 2 &* hd)
                    for sv in 0..<4 { (vp + (sv &* lk &+ j) &* 16).update(from: vr + sv &* 16, count: 16) }
                }
                var i = 0
                while i < l {
                    let rows = min(6, l - i)
                    var j = 0
                    while j < ld { scores6x64(base + i * w, w, rows: rows, kt + (j >> 4) * 1024, sc + j, ld); j += 64 }
                    var inv = SIMD8<Float>()
                    for r in 0..<rows { inv[r] = exponentiateRow(sc + r * ld, lk, s) }
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

/// Raw scores of `rows` queries (64 channels each, rows `ldq` apart from `q`) against the 64 keys of four Kᵀ
/// strips (`kt`, 1024 floats each): `sc[r·lds + j] = q_r · k_j` for six rows. A short block repeats its first
/// query in the spare rows (finite values, never stored).
@inline(__always)
private func scores6x64(_ q: UnsafePointer<Float>, _ ldq: Int, rows: Int, _ kt: UnsafePointer<Float>,
                        _ sc: UnsafeMutablePointer<Float>, _ lds: Int) {
    let q0 = q, q1 = rows > 1 ? q + ldq : q, q2 = rows > 2 ? q + 2 * ldq : q
    let q3 = rows > 3 ? q + 3 * ldq : q, q4 = rows > 4 ? q + 4 * ldq : q, q5 = rows > 5 ? q + 5 * ldq : q
    var r0 = Row64(), r1 = Row64(), r2 = Row64(), r3 = Row64(), r4 = Row64(), r5 = Row64()
    var k = kt
    for c in 0..<64 {
        let k0 = load(k), k1 = load(k + 1024), k2 = load(k + 2048), k3 = load(k + 3072)
        r0.fma(q0[c], k0, k1, k2, k3); r1.fma(q1[c], k0, k1, k2, k3); r2.fma(q2[c], k0, k1, k2, k3)
        r3.fma(q3[c], k0, k1, k2, k3); r4.fma(q4[c], k0, k1, k2, k3); r5.fma(q5[c], k0, k1, k2, k3)
        k += 16
    }
    r0.store(to: sc); r1.store(to: sc + lds); r2.store(to: sc + 2 * lds)
    r3.store(to: sc + 3 * lds); r4.store(to: sc + 4 * lds); r5.store(to: sc + 5 * lds)
}

/// Six rows of `P·V` over `lk` keys (P: exponentiated scores, rows `lds` apart; V: four strips `[lk][16]`), each
/// row times its 1 / sum, into the first `rows` rows of `o` (rows `ldo` apart).
@inline(__always)
private func values6x64(_ p: UnsafePointer<Float>, _ lds: Int, _ lk: Int, _ v: UnsafePointer<Float>,
                        _ inv: SIMD8<Float>, _ o: UnsafeMutablePointer<Float>, _ ldo: Int, rows: Int) {
    var r0 = Row64(), r1 = Row64(), r2 = Row64(), r3 = Row64(), r4 = Row64(), r5 = Row64()
    let p1 = p + lds, p2 = p + 2 * lds, p3 = p + 3 * lds, p4 = p + 4 * lds, p5 = p + 5 * lds
    let strip = lk * 16
    var vj = v
    for j in 0..<lk {
        let v0 = load(vj), v1 = load(vj + strip), v2 = load(vj + 2 * strip), v3 = load(vj + 3 * strip)
        r0.fma(p[j], v0, v1, v2, v3); r1.fma(p1[j], v0, v1, v2, v3); r2.fma(p2[j], v0, v1, v2, v3)
        r3.fma(p3[j], v0, v1, v2, v3); r4.fma(p4[j], v0, v1, v2, v3); r5.fma(p5[j], v0, v1, v2, v3)
        vj += 16
    }
    r0.store(to: o, times: inv[0])
    if rows > 1 { r1.store(to: o + ldo, times: inv[1]) }
    if rows > 2 { r2.store(to: o + 2 * ldo, times: inv[2]) }
    if rows > 3 { r3.store(to: o + 3 * ldo, times: inv[3]) }
    if rows > 4 { r4.store(to: o + 4 * ldo, times: inv[4]) }
    if rows > 5 { r5.store(to: o + 5 * ldo, times: inv[5]) }
}
#else
// AVX2 has 16 ymm registers: six rows of 64 columns would be 48 accumulators and spill on every step (the
// attention ran at about 45 GFLOP/s in wav2vec 2.0). Both products go strip by strip through the GEMM's 6 × 16
// micro-kernel instead (12 ymm accumulators), which reads the strips as its weight panels.

/// Raw scores of `rows` queries (rows `ldq` apart from `q`) against the 64 keys of four Kᵀ strips:
/// `sc[r·lds + j] = q_r · k_j` for the first `rows` rows.
@inline(__always)
private func scores6x64(_ q: UnsafePointer<Float>, _ ldq: Int, rows: Int, _ kt: UnsafePointer<Float>,
                        _ sc: UnsafeMutablePointer<Float>, _ lds: Int) {
    for t in 0..<4 {
        kernel6x16(kLen: 64, a: q, lda: ldq, rows: rows, b: kt + t * 1024, initial: nil, ldi: 0, bias: nil,
                   out: sc + t * 16, ldo: lds)
    }
}

/// The first `rows` rows of `P·V` over `lk` keys (P: exponentiated scores, rows `lds` apart; V: four strips
/// `[lk][16]`), each row times its 1 / sum, into `o` (rows `ldo` apart).
@inline(__always)
private func values6x64(_ p: UnsafePointer<Float>, _ lds: Int, _ lk: Int, _ v: UnsafePointer<Float>,
                        _ inv: SIMD8<Float>, _ o: UnsafeMutablePointer<Float>, _ ldo: Int, rows: Int) {
    for t in 0..<4 {
        kernel6x16(kLen: lk, a: p, lda: lds, rows: rows, b: v + t * lk * 16, initial: nil, ldi: 0, bias: nil,
                   out: o + t * 16, ldo: ldo)
    }
    for r in 0..<rows {
        let row = o + r * ldo, f = Vec(repeating: inv[r])
        for c in stride(from: 0, to: 64, by: 16) { store(load(row + c) * f, row + c) }
    }
}
#endif
