import Foundation

/// 3×3 stride-1 convolution by Winograd's F(2×2, 3×3) for the small-channel layers of ``SmallConv`` (MTCNN's
/// P-Net conv2/conv3, R-Net conv2, O-Net conv2/conv3), with bias and PReLU fused.
///
/// Each 2×2 block of outputs comes from a 4×4 input tile: V = Bᵀ d B (adds only), M = U ⊙ V summed over input
/// channels (U = G g Gᵀ, transformed once at load), Y = Aᵀ M A (adds only). That is 16 multiply-adds per input
/// channel and output channel for 4 outputs instead of 36: 2.25× fewer, which is what these layers, bound by
/// the FMA units in the direct kernel, gain. The transforms are exact in binary (±1 and ½), so results differ
/// from the direct convolution by rounding only (about 1e-6 relative; `SmallConvTests` bounds it against
/// `Reference.conv2d`).
///
/// Layout as ``SmallConv``: input `[H, W, S]` with S ≥ the input channels rounded up to 16 (the transforms read
/// whole 16-channel vectors; channels past the real ones are read but multiplied by nothing), output
/// `[H − 2, W − 2, outStride]` with zeros in the padding channels.
struct WinogradWeights: Sendable {
    let inChannels: Int
    /// Input channels rounded up to 16: the row stride of the transformed tiles.
    let inStride: Int
    let outStride: Int
    /// U: `[16][inChannels][outStride]`, zero in the padding output channels.
    let u: [Float]

    /// `weight`: PyTorch layout `[out, in, 3, 3]`.
    init(weight: Tensor, outStride: Int) {
        let (o, ci) = (weight.shape[0], weight.shape[1])
        inChannels = ci
        inStride = (ci + 15) / 16 * 16
        self.outStride = outStride
        // G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]; U = G g Gᵀ, in Double, rounded once.
        let g: [[Double]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        var u = [Float](repeating: 0, count: 16 * ci * outStride)
        for oc in 0..<o { for ic in 0..<ci {
            var k = [[Double]](repeating: [0, 0, 0], count: 3)
            for i in 0..<3 { for j in 0..<3 { k[i][j] = Double(weight.data[((oc * ci + ic) * 3 + i) * 3 + j]) } }
            for a in 0..<4 { for b in 0..<4 {
                var s = 0.0
                for i in 0..<3 { for j in 0..<3 { s += g[a][i] * k[i][j] * g[b][j] } }
                u[((a * 4 + b) * ci + ic) * outStride + oc] = Float(s)
            } }
        } }
        self.u = u
    }
}

extension SmallConv {
    /// The F(2×2, 3×3) convolution of `x` (`[H, W, S]`, S ≥ input channels rounded up to 16). Tile rows are
    /// split across threads (serially inside another parallel loop, e.g. per R/O-Net crop).
    public func winograd(_ x: Tensor) -> Tensor {
        guard let wg = winogradWeights else { preconditionFailure("SmallConv.winograd on a layer without Winograd weights") }
        let (h, w, cs) = (x.shape[0], x.shape[1], x.shape[2])
        precondition(x.rank == 3 && cs >= wg.inStride, "SmallConv.winograd expects [H, W, ≥\(wg.inStride)], got \(x.shape)")
        let (oh, ow) = (h - 2, w - 2)
        let out = Tensor(uninitialized: [max(oh, 0), max(ow, 0), outStride])
        if oh <= 0 || ow <= 0 { return out }
        let (tilesY, tilesX) = ((oh + 1) / 2, (ow + 1) / 2)
        let (cin, istr, os) = (inChannels, wg.inStride, outStride)
        let chunk = 8                                  // tiles per pass: V and M stay in L1/L2
        let src = x.data, dst = out.data
        let prelu = hasPReLU
        wg.u.withUnsafeBufferPointer { uB in bias.withUnsafeBufferPointer { bB in slopes.withUnsafeBufferPointer { sB in
            let ut = uB.baseAddress!, bp = bB.baseAddress!, sp = sB.baseAddress!
            parallelFor(tilesY) { t0, t1 in
                // V: [16][chunk][istr] transformed input; M: [16][chunk][os] products summed over channels.
                let v = UnsafeMutablePointer<Float>.allocate(capacity: 16 * chunk * istr)
                let m = UnsafeMutablePointer<Float>.allocate(capacity: 16 * chunk * os)
                // d, e: one tile's 16 input vectors and their row transform.
                let d = UnsafeMutablePointer<Vec>.allocate(capacity: 16), e = UnsafeMutablePointer<Vec>.allocate(capacity: 16)
                defer { v.deallocate(); m.deallocate(); d.deallocate(); e.deallocate() }
                let zero = Vec(repeating: 0)
                for ty in t0..<t1 {
                    var tx0 = 0
                    while tx0 < tilesX {
                        let n = min(chunk, tilesX - tx0)
                        // Input transform, 16 channels at a time; rows/columns past the input read as zeros.
                        for t in 0..<n {
                            let (y0, x0) = (2 * ty, 2 * (tx0 + t))
                            var cb = 0
                            while cb < istr {
                                for r in 0..<4 {
                                    for c in 0..<4 {
                                        d[r * 4 + c] = y0 + r < h && x0 + c < w ? load(src + ((y0 + r) * w + x0 + c) * cs + cb) : zero
                                    }
                                }
                                // Bᵀ d: rows (d0 − d2, d1 + d2, d2 − d1, d1 − d3), then the same over columns.
                                for c in 0..<4 {
                                    let (r0, r1, r2, r3) = (d[c], d[4 + c], d[8 + c], d[12 + c])
                                    e[c] = r0 - r2; e[4 + c] = r1 + r2; e[8 + c] = r2 - r1; e[12 + c] = r1 - r3
                                }
                                for r in 0..<4 {
                                    let q = r * 4
                                    let (c0, c1, c2, c3) = (e[q], e[q + 1], e[q + 2], e[q + 3])
                                    let o = v + (q * chunk + t) * istr + cb, step = chunk * istr
                                    store(c0 - c2, o); store(c1 + c2, o + step)
                                    store(c2 - c1, o + 2 * step); store(c1 - c3, o + 3 * step)
                                }
                                cb += 16
                            }
                        }
                        // M[ξ] = V[ξ] · U[ξ]: four tiles per step, one weight vector feeding four FMAs.
                        for xi in 0..<16 {
                            let vx = v + xi * chunk * istr, ux = ut + xi * cin * os, mx = m + xi * chunk * os
                            var cb = 0
                            while cb < os {
                                var t = 0
                                while t < n {
                                    let q0 = vx + t * istr
                                    let q1 = t + 1 < n ? q0 + istr : q0, q2 = t + 2 < n ? q0 + 2 * istr : q0
                                    let q3 = t + 3 < n ? q0 + 3 * istr : q0
                                    var a0 = zero, a1 = zero, a2 = zero, a3 = zero
                                    var wo = cb
                                    for ci in 0..<cin {
                                        let wv = load(ux + wo)
                                        a0 = a0.addingProduct(Vec(repeating: q0[ci]), wv)
                                        a1 = a1.addingProduct(Vec(repeating: q1[ci]), wv)
                                        a2 = a2.addingProduct(Vec(repeating: q2[ci]), wv)
                                        a3 = a3.addingProduct(Vec(repeating: q3[ci]), wv)
                                        wo &+= os
                                    }
                                    store(a0, mx + t * os + cb)
                                    if t + 1 < n { store(a1, mx + (t + 1) * os + cb) }
                                    if t + 2 < n { store(a2, mx + (t + 2) * os + cb) }
                                    if t + 3 < n { store(a3, mx + (t + 3) * os + cb) }
                                    t += 4
                                }
                                cb += 16
                            }
                        }
                        // Output transform Aᵀ M A (Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]), bias, PReLU.
                        for t in 0..<n {
                            let (y0, x0) = (2 * ty, 2 * (tx0 + t))
                            var cb = 0
                            while cb < os {
                                let mt = m + t * os + cb, step = chunk * os
                                var s0 = (zero, zero, zero, zero), s1 = (zero, zero, zero, zero)
                                // Aᵀ over rows: (m0 + m1 + m2, m1 − m2 − m3) for each of the 4 columns.
                                func rows(_ c: Int) -> (Vec, Vec) {
                                    let (r0, r1, r2, r3) = (load(mt + c * step), load(mt + (4 + c) * step),
                                                            load(mt + (8 + c) * step), load(mt + (12 + c) * step))
                                    return (r0 + r1 + r2, r1 - r2 - r3)
                                }
                                (s0.0, s1.0) = rows(0); (s0.1, s1.1) = rows(1); (s0.2, s1.2) = rows(2); (s0.3, s1.3) = rows(3)
                                let bv = load(bp + cb), sv = load(sp + cb)
                                var y00 = s0.0 + s0.1 + s0.2 + bv, y01 = s0.1 - s0.2 - s0.3 + bv
                                var y10 = s1.0 + s1.1 + s1.2 + bv, y11 = s1.1 - s1.2 - s1.3 + bv
                                if prelu {
                                    y00 = y00.replacing(with: y00 * sv, where: y00 .< 0); y01 = y01.replacing(with: y01 * sv, where: y01 .< 0)
                                    y10 = y10.replacing(with: y10 * sv, where: y10 .< 0); y11 = y11.replacing(with: y11 * sv, where: y11 .< 0)
                                }
                                let o = dst + (y0 * ow + x0) * os + cb
                                let right = x0 + 1 < ow, below = y0 + 1 < oh
                                store(y00, o)
                                if right { store(y01, o + os) }
                                if below { store(y10, o + ow * os) }
                                if right && below { store(y11, o + (ow + 1) * os) }
                                cb += 16
                            }
                        }
                        tx0 += n
                    }
                }
            }
        } } }
        return out
    }
}
