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
    /// The F(2×2, 3×3) convolution of `x` (`[H, W, S]`, S ≥ input channels rounded up to 16). Tiles are taken in
    /// row-major order across tile rows, `chunk` at a time (a small map's few tiles a row still fill the
    /// register tile), and chunks are split across threads (serially inside another parallel loop, e.g. per
    /// R/O-Net crop).
    public func winograd(_ x: Tensor) -> Tensor {
        guard let wg = winogradWeights else { preconditionFailure("SmallConv.winograd on a layer without Winograd weights") }
        let (h, w, cs) = (x.shape[0], x.shape[1], x.shape[2])
        precondition(x.rank == 3 && cs >= wg.inStride, "SmallConv.winograd expects [H, W, ≥\(wg.inStride)], got \(x.shape)")
        let (oh, ow) = (h - 2, w - 2)
        let out = Tensor(uninitialized: [max(oh, 0), max(ow, 0), outStride])
        if oh <= 0 || ow <= 0 { return out }
        let (tilesY, tilesX) = ((oh + 1) / 2, (ow + 1) / 2)
        let tiles = tilesY * tilesX
        let (cin, istr, os) = (inChannels, wg.inStride, outStride)
        let tr = SmallConvTile.rows
        let chunk = 2 * tr                             // tiles per pass: V and M stay in L1/L2
        let src = UnsafePointer(x.data), dst = out.data
        let prelu = hasPReLU
        let walk = WindowWalk(rowRuns: 1, rowStep: 0, runsPerRow: 1, runStep: 0, runLength: cin)
        wg.u.withUnsafeBufferPointer { uB in bias.withUnsafeBufferPointer { bB in slopes.withUnsafeBufferPointer { sB in
            let ut = uB.baseAddress!, bp = bB.baseAddress!, sp = sB.baseAddress!
            parallelFor((tiles + chunk - 1) / chunk) { c0, c1 in
                // V: [16][chunk][istr] transformed input; M: [16][chunk][os] products summed over channels.
                let v = UnsafeMutablePointer<Float>.allocate(capacity: 16 * chunk * istr)
                let m = UnsafeMutablePointer<Float>.allocate(capacity: 16 * chunk * os)
                // An edge tile's input, zero past the map: 16 pixels of `istr` channels.
                let edge = UnsafeMutablePointer<Float>.allocate(capacity: 16 * istr)
                // The register tile's row pointers into V.
                let a = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: tr)
                defer { v.deallocate(); m.deallocate(); edge.deallocate(); a.deallocate() }
                for c in c0..<c1 {
                    let first = c * chunk, n = min(chunk, tiles - first)
                    // Input transform V = Bᵀ d B, 16 channels at a time.
                    for t in 0..<n {
                        let (y0, x0) = (2 * ((first + t) / tilesX), 2 * ((first + t) % tilesX))
                        var p = src + (y0 * w + x0) * cs, rowStride = w * cs, pixelStride = cs
                        if y0 + 4 > h || x0 + 4 > w {
                            edge.initialize(repeating: 0, count: 16 * istr)
                            for r in 0..<min(4, h - y0) { for q in 0..<min(4, w - x0) {
                                (edge + (r * 4 + q) * istr).update(from: p + (r * w + q) * cs, count: istr)
                            } }
                            p = UnsafePointer(edge); rowStride = 4 * istr; pixelStride = istr
                        }
                        var cb = 0
                        while cb < istr {
                            winogradInputTile(p + cb, rowStride: rowStride, pixelStride: pixelStride,
                                              into: v + t * istr + cb, step: chunk * istr)
                            cb += 16
                        }
                    }
                    // M[ξ] = V[ξ] · U[ξ]: a register tile of ``SmallConvTile/rows`` tiles at a time.
                    for xi in 0..<16 {
                        let vx = v + xi * chunk * istr, ux = ut + xi * cin * os, mx = m + xi * chunk * os
                        var t = 0
                        while t < n {
                            let rows = min(tr, n - t)
                            for r in 0..<rows { (a + r).initialize(to: UnsafePointer(vx + (t + r) * istr)) }
                            SmallConvTile.run(a: UnsafePointer(a), rows: rows, walk: walk, w: ux, ldw: os, cols: os,
                                              bias: nil, out: mx + t * os, ldo: os)
                            t += rows
                        }
                    }
                    // Output transform Y = Aᵀ M A, bias, PReLU.
                    for t in 0..<n {
                        let (y0, x0) = (2 * ((first + t) / tilesX), 2 * ((first + t) % tilesX))
                        let right = x0 + 1 < ow, below = y0 + 1 < oh
                        var cb = 0
                        while cb < os {
                            let bv = load(bp + cb), sv = load(sp + cb)
                            for row in 0..<(below ? 2 : 1) {
                                var (ya, yb) = winogradOutputRow(row, m + t * os + cb, step: chunk * os)
                                ya += bv; yb += bv
                                if prelu { ya = AffectKernels.prelu(ya, sv); yb = AffectKernels.prelu(yb, sv) }
                                let o = dst + ((y0 + row) * ow + x0) * os + cb
                                store(ya, o)
                                if right { store(yb, o + os) }
                            }
                            cb += 16
                        }
                    }
                }
            }
        } } }
        return out
    }
}

/// Bᵀ d B for 16 channels of one 4×4 input tile (`p`: its top-left pixel), stored as 16 vectors `step` apart.
/// Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]: adds only.
///
/// One row of Bᵀ d at a time (its four columns from two input rows each), then that row's four outputs: the
/// input rows are loaded twice, but at most eight vectors are live. Holding all sixteen of Bᵀ d, as the
/// first version did, is 32 registers on AVX2 and spilled to the stack.
@inline(__always)
func winogradInputTile(_ p: UnsafePointer<Float>, rowStride: Int, pixelStride: Int, into o: UnsafeMutablePointer<Float>, step: Int) {
    @inline(__always) func d(_ r: Int, _ c: Int) -> Vec { load(p + r * rowStride + c * pixelStride) }
    // Row q of Bᵀ d, column c: d0 − d2, d1 + d2, d2 − d1, d1 − d3 over the rows of column c.
    @inline(__always) func e(_ q: Int, _ c: Int) -> Vec {
        switch q {
        case 0: return d(0, c) - d(2, c)
        case 1: return d(1, c) + d(2, c)
        case 2: return d(2, c) - d(1, c)
        default: return d(1, c) - d(3, c)
        }
    }
    // (Bᵀ d) B, one row at a time: the same combination over the columns.
    @inline(__always) func row(_ q: Int) {
        let c0 = e(q, 0), c1 = e(q, 1), c2 = e(q, 2), c3 = e(q, 3)
        let base = o + q * 4 * step
        store(c0 - c2, base); store(c1 + c2, base + step); store(c2 - c1, base + 2 * step); store(c1 - c3, base + 3 * step)
    }
    row(0); row(1); row(2); row(3)
}

/// Row `row` (0 or 1) of Aᵀ M A for 16 channels of one tile (`m`: its 16 products `step` apart): that row's
/// two outputs. Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]: adds only. A row at a time, so that the caller's bias,
/// PReLU and stores of one row are done before the next is formed (the products are loaded twice): the
/// whole 2×2 block and its column sums at once were more vectors than AVX2's registers hold.
@inline(__always)
func winogradOutputRow(_ row: Int, _ m: UnsafePointer<Float>, step: Int) -> (Vec, Vec) {
    @inline(__always) func r(_ i: Int, _ c: Int) -> Vec { load(m + (4 * i + c) * step) }
    // Aᵀ over the rows of column c: m0 + m1 + m2 (output row 0) or m1 − m2 − m3 (output row 1); then the
    // same combination across the four column sums.
    @inline(__always) func sum(_ c: Int) -> Vec { row == 0 ? r(0, c) + r(1, c) + r(2, c) : r(1, c) - r(2, c) - r(3, c) }
    let s0 = sum(0), s1 = sum(1), s2 = sum(2), s3 = sum(3)
    return (s0 + s1 + s2, s1 - s2 - s3)
}
