import Foundation

/// Multi-head self-attention for short sequences with narrow heads, reading q, k and v from one fused
/// projection, with no score matrix in memory beyond four rows.
///
/// - Parameters:
///   - qkv: `[B, L, 3·H·D]`: per token, all heads' queries, then keys, then values (as
///     ``attention(qkv:heads:keyMask:scale:)`` takes them).
///   - scale: defaults to 1/√D.
/// - Returns: `[B, L, H·D]`, heads interleaved along the last axis.
///
/// Built for MobileViT (16 to 256 tokens, heads of 16 to 60 channels), where each head's two products are
/// too small for BLAS to amortise its packing. Per (item, head) the keys are packed transposed (16 neighbouring
/// keys form one vector) and the values with rows padded to whole vectors; then for each block of four
/// queries the scores against all keys are accumulated in registers, exponentiated in place (max-subtracted,
/// as PyTorch's softmax), multiplied into the values, and divided by the row sums only at the end: `D`
/// divisions per row instead of `L`, and the scores stay in L1. Heads wider than 64 channels go to
/// ``attention(qkv:heads:keyMask:scale:)``.
public func tileAttention(qkv: Tensor, heads: Int, scale: Float? = nil) -> Tensor {
    let (b, l, w) = (qkv.shape[0], qkv.shape[1], qkv.shape[2])
    precondition(qkv.rank == 3 && w % (3 * heads) == 0, "tile attention: width \(w) is not 3 × \(heads) heads")
    let hd = w / 3, d = hd / heads
    guard d <= 64 else { return attention(qkv: qkv, heads: heads, scale: scale) }
    let s = scale ?? 1 / Float(d).squareRoot()
    let out = Tensor(uninitialized: [b, l, hd])
    guard l > 0 else { return out }
    let lp = (l + 15) & ~15, dp = (d + 15) & ~15
    let src = qkv.data, dst = out.data
    parallelFor(b * heads, minChunk: 1) { t0, t1 in
        let scratch = Tensor(uninitialized: [d * lp + l * dp + 4 * lp])
        let kt = scratch.data, vp = kt + d * lp, sc = vp + l * dp
        for task in t0..<t1 {
            let (bi, h) = (task / heads, task % heads)
            let base = src + bi * l * w + h * d
            // Kᵀ as [D, Lp] (zero beyond L) and V as [L, Dp] (zero beyond D).
            for c in 0..<d { (kt + c * lp + l).update(repeating: 0, count: lp - l) }
            for j in 0..<l {
                // Wrapping arithmetic: the offsets are bounded by the tensors' sizes, and overflow checks
                // made this scalar transpose cost as much as a tenth of the whole kernel.
                let kr = base + (j &* w &+ hd)
                var kc = kt + j
                for c in 0..<d { kc.pointee = kr[c]; kc += lp }
                (vp + j &* dp).update(from: base + (j &* w &+ 2 &* hd), count: d)
                (vp + (j &* dp &+ d)).update(repeating: 0, count: dp - d)
            }
            var i = 0
            while i < l {
                let rows = min(4, l - i)
                // A short last block repeats its first query in the spare rows (finite values, never stored).
                let q0 = UnsafePointer(base + i * w)
                let q1 = rows > 1 ? q0 + w : q0, q2 = rows > 2 ? q0 + 2 * w : q0, q3 = rows > 3 ? q0 + 3 * w : q0
                var j = 0
                #if AFFECT_AVX512
                while j + 64 <= lp { scoreTile(q0, q1, q2, q3, kt + j, lp, d, sc + j, vectors: 4); j += 64 }
                switch (lp - j) / 16 {
                case 3: scoreTile(q0, q1, q2, q3, kt + j, lp, d, sc + j, vectors: 3)
                case 2: scoreTile(q0, q1, q2, q3, kt + j, lp, d, sc + j, vectors: 2)
                case 1: scoreTile(q0, q1, q2, q3, kt + j, lp, d, sc + j, vectors: 1)
                default: break
                }
                #else
                // AVX2's 16 ymm registers hold four rows of one 16-lane vector (8 accumulators) and the operands;
                // four rows of four vectors (32) spilled on every step.
                while j < lp { scoreTile(q0, q1, q2, q3, kt + j, lp, d, sc + j, vectors: 1); j += 16 }
                #endif
                let inv = SIMD4<Float>(exponentiateRow(sc, l, s), exponentiateRow(sc + lp, l, s),
                                       exponentiateRow(sc + 2 * lp, l, s), exponentiateRow(sc + 3 * lp, l, s))
                let o = dst + (bi * l + i) * hd + h * d
                #if AFFECT_AVX512
                // Whole vectors, plus a half vector when at most 8 columns remain (d = 20, 24, 36: a quarter
                // fewer multiply-adds than padding to a whole one).
                switch (d / 16, d % 16) {
                case (4, _): valueTile(sc, lp, l, vp, dp, inv, o, hd, rows: rows, d: d, vectors: 4, half: false)
                case (3, 1...8): valueTile(sc, lp, l, vp, dp, inv, o, hd, rows: rows, d: d, vectors: 3, half: true)
                case (3, 0), (2, 9...): valueTile(sc, lp, l, vp, dp, inv, o, hd, rows: rows, d: d, vectors: 3, half: false)
                case (3, _): valueTile(sc, lp, l, vp, dp, inv, o, hd, rows: rows, d: d, vectors: 4, half: false)
                case (2, 1...8): valueTile(sc, lp, l, vp, dp, inv, o, hd, rows: rows, d: d, vectors: 2, half: true)
                case (2, 0), (1, 9...): valueTile(sc, lp, l, vp, dp, inv, o, hd, rows: rows, d: d, vectors: 2, half: false)
                case (1, 1...8): valueTile(sc, lp, l, vp, dp, inv, o, hd, rows: rows, d: d, vectors: 1, half: true)
                case (1, 0), (0, 9...): valueTile(sc, lp, l, vp, dp, inv, o, hd, rows: rows, d: d, vectors: 1, half: false)
                default: valueTile(sc, lp, l, vp, dp, inv, o, hd, rows: rows, d: d, vectors: 0, half: true)
                }
                #else
                // Strips of 16 columns (8 accumulators), the last one a half vector when at most 8 columns remain.
                var c = 0
                while c < d {
                    if d - c <= 8 {
                        valueTile(sc, lp, l, vp + c, dp, inv, o + c, hd, rows: rows, d: d - c, vectors: 0, half: true)
                    } else {
                        valueTile(sc, lp, l, vp + c, dp, inv, o + c, hd, rows: rows, d: min(16, d - c), vectors: 1,
                                  half: false)
                    }
                    c += 16
                }
                #endif
                i += 4
            }
        }
    }
    return out
}

/// Raw scores of four queries against `16·vectors` keys: `sc[r·lp + j] = q_r · k_j`. Inlined with a
/// constant `vectors` (transparent: always), so unused accumulators and their branches disappear and the 16 used stay in registers.
@_transparent
private func scoreTile(_ q0: UnsafePointer<Float>, _ q1: UnsafePointer<Float>, _ q2: UnsafePointer<Float>,
                       _ q3: UnsafePointer<Float>, _ kt: UnsafePointer<Float>, _ lp: Int, _ d: Int,
                       _ sc: UnsafeMutablePointer<Float>, vectors n: Int) {
    var a00 = Vec(), a01 = Vec(), a02 = Vec(), a03 = Vec()
    var a10 = Vec(), a11 = Vec(), a12 = Vec(), a13 = Vec()
    var a20 = Vec(), a21 = Vec(), a22 = Vec(), a23 = Vec()
    var a30 = Vec(), a31 = Vec(), a32 = Vec(), a33 = Vec()
    for c in 0..<d {
        let k = kt + c * lp
        let b0 = Vec(repeating: q0[c]), b1 = Vec(repeating: q1[c]), b2 = Vec(repeating: q2[c]), b3 = Vec(repeating: q3[c])
        let k0 = load(k)
        a00 = a00.addingProduct(b0, k0); a10 = a10.addingProduct(b1, k0)
        a20 = a20.addingProduct(b2, k0); a30 = a30.addingProduct(b3, k0)
        if n > 1 {
            let k1 = load(k + 16)
            a01 = a01.addingProduct(b0, k1); a11 = a11.addingProduct(b1, k1)
            a21 = a21.addingProduct(b2, k1); a31 = a31.addingProduct(b3, k1)
        }
        if n > 2 {
            let k2 = load(k + 32)
            a02 = a02.addingProduct(b0, k2); a12 = a12.addingProduct(b1, k2)
            a22 = a22.addingProduct(b2, k2); a32 = a32.addingProduct(b3, k2)
        }
        if n > 3 {
            let k3 = load(k + 48)
            a03 = a03.addingProduct(b0, k3); a13 = a13.addingProduct(b1, k3)
            a23 = a23.addingProduct(b2, k3); a33 = a33.addingProduct(b3, k3)
        }
    }
    store(a00, sc); store(a10, sc + lp); store(a20, sc + 2 * lp); store(a30, sc + 3 * lp)
    if n > 1 { store(a01, sc + 16); store(a11, sc + lp + 16); store(a21, sc + 2 * lp + 16); store(a31, sc + 3 * lp + 16) }
    if n > 2 { store(a02, sc + 32); store(a12, sc + lp + 32); store(a22, sc + 2 * lp + 32); store(a32, sc + 3 * lp + 32) }
    if n > 3 { store(a03, sc + 48); store(a13, sc + lp + 48); store(a23, sc + 2 * lp + 48); store(a33, sc + 3 * lp + 48) }
}

/// Replaces the first `n` raw scores of a row by `exp(scale·(x − max))` and returns 1 / their sum (shared with
/// ``longAttention(qkv:heads:keyMask:scale:)``).
@inline(__always)
func exponentiateRow(_ row: UnsafeMutablePointer<Float>, _ n: Int, _ scale: Float) -> Float {
    var mv = Vec(repeating: -.infinity)
    var j = 0
    while j + 16 <= n { mv = vmax(mv, load(row + j)); j += 16 }
    var m = hmax(mv)
    while j < n { m = max(m, row[j]); j += 1 }
    let sv = Vec(repeating: scale), shift = Vec(repeating: -m * scale)
    var sum = Vec()
    j = 0
    while j + 16 <= n { let e = vexp(shift.addingProduct(load(row + j), sv)); store(e, row + j); sum += e; j += 16 }
    var total = hsum(sum)
    while j < n { row[j] = expf(row[j] * scale - m * scale); total += row[j]; j += 1 }
    return 1 / total
}

/// Four rows of `P·V` over `l` keys (P: rows of exponentiated scores, V: `[l, dp]`), times each row's
/// 1 / sum, into the first `rows` rows of `o` (`d` columns; the padding columns are never written, as they
/// belong to the next head). `n` whole vectors of columns, then 8 more if `half`.
@_transparent
private func valueTile(_ p: UnsafePointer<Float>, _ lp: Int, _ l: Int, _ vp: UnsafePointer<Float>, _ dp: Int,
                       _ inv: SIMD4<Float>, _ o: UnsafeMutablePointer<Float>, _ ldo: Int, rows: Int, d: Int,
                       vectors n: Int, half: Bool) {
    typealias Half = SIMD8<Float>
    var h0 = Half(), h1 = Half(), h2 = Half(), h3 = Half()
    var a00 = Vec(), a01 = Vec(), a02 = Vec(), a03 = Vec()
    var a10 = Vec(), a11 = Vec(), a12 = Vec(), a13 = Vec()
    var a20 = Vec(), a21 = Vec(), a22 = Vec(), a23 = Vec()
    var a30 = Vec(), a31 = Vec(), a32 = Vec(), a33 = Vec()
    for j in 0..<l {
        let v = vp + j * dp
        let b0 = Vec(repeating: p[j]), b1 = Vec(repeating: p[lp + j])
        let b2 = Vec(repeating: p[2 * lp + j]), b3 = Vec(repeating: p[3 * lp + j])
        if n > 0 {
            let v0 = load(v)
            a00 = a00.addingProduct(b0, v0); a10 = a10.addingProduct(b1, v0)
            a20 = a20.addingProduct(b2, v0); a30 = a30.addingProduct(b3, v0)
        }
        if n > 1 {
            let v1 = load(v + 16)
            a01 = a01.addingProduct(b0, v1); a11 = a11.addingProduct(b1, v1)
            a21 = a21.addingProduct(b2, v1); a31 = a31.addingProduct(b3, v1)
        }
        if n > 2 {
            let v2 = load(v + 32)
            a02 = a02.addingProduct(b0, v2); a12 = a12.addingProduct(b1, v2)
            a22 = a22.addingProduct(b2, v2); a32 = a32.addingProduct(b3, v2)
        }
        if n > 3 {
            let v3 = load(v + 48)
            a03 = a03.addingProduct(b0, v3); a13 = a13.addingProduct(b1, v3)
            a23 = a23.addingProduct(b2, v3); a33 = a33.addingProduct(b3, v3)
        }
        if half {
            let vh = UnsafeRawPointer(v + 16 * n).loadUnaligned(as: Half.self)
            h0 = h0.addingProduct(b0.lowHalf, vh); h1 = h1.addingProduct(b1.lowHalf, vh)
            h2 = h2.addingProduct(b2.lowHalf, vh); h3 = h3.addingProduct(b3.lowHalf, vh)
        }
    }
    if half {
        let z = Half()
        switch n {
        case 0: (a00, a10, a20, a30) = (Vec(lowHalf: h0, highHalf: z), Vec(lowHalf: h1, highHalf: z), Vec(lowHalf: h2, highHalf: z), Vec(lowHalf: h3, highHalf: z))
        case 1: (a01, a11, a21, a31) = (Vec(lowHalf: h0, highHalf: z), Vec(lowHalf: h1, highHalf: z), Vec(lowHalf: h2, highHalf: z), Vec(lowHalf: h3, highHalf: z))
        case 2: (a02, a12, a22, a32) = (Vec(lowHalf: h0, highHalf: z), Vec(lowHalf: h1, highHalf: z), Vec(lowHalf: h2, highHalf: z), Vec(lowHalf: h3, highHalf: z))
        default: (a03, a13, a23, a33) = (Vec(lowHalf: h0, highHalf: z), Vec(lowHalf: h1, highHalf: z), Vec(lowHalf: h2, highHalf: z), Vec(lowHalf: h3, highHalf: z))
        }
    }
    storeRow(a00, a01, a02, a03, inv[0], o, d)
    if rows > 1 { storeRow(a10, a11, a12, a13, inv[1], o + ldo, d) }
    if rows > 2 { storeRow(a20, a21, a22, a23, inv[2], o + 2 * ldo, d) }
    if rows > 3 { storeRow(a30, a31, a32, a33, inv[3], o + 3 * ldo, d) }
}

/// The first `d` values of `(a, b, c, e) · f` into `row`.
@_transparent
private func storeRow(_ a: Vec, _ b: Vec, _ c: Vec, _ e: Vec, _ f: Float, _ row: UnsafeMutablePointer<Float>, _ d: Int) {
    let fv = Vec(repeating: f)
    if d == 64 {
        store(a * fv, row); store(b * fv, row + 16); store(c * fv, row + 32); store(e * fv, row + 48)
        return
    }
    var vs = (a * fv, b * fv, c * fv, e * fv)
    withUnsafeBytes(of: &vs) { row.update(from: $0.baseAddress!.assumingMemoryBound(to: Float.self), count: d) }
}
