import Foundation

/// 3×3 stride-1 convolution by Winograd's minimal filtering for the small-channel layers of ``SmallConv``
/// (MTCNN's P-Net conv2/conv3, R-Net conv2, O-Net conv2/conv3), with bias and PReLU fused.
///
/// Each m×m block of outputs comes from an (m+2)×(m+2) input tile: V = Bᵀ d B, M = U ⊙ V summed over input
/// channels (U = G g Gᵀ, transformed once at load), Y = Aᵀ M A. Per input and output channel that is
/// (m+2)² multiply-adds for m² outputs instead of 9·m²:
/// - F(2×2, 3×3): 16 for 4 outputs, 2.25× fewer. Its transforms are exact in binary (±1 and ½), so results
///   differ from the direct convolution by rounding only (about 1e-6 relative).
/// - F(4×4, 3×3): 36 for 16 outputs, 4× fewer, with transforms about three times dearer per output. Its
///   matrices (interpolation points 0, ±1, ±2) hold 4, 5 and 8, so rounding grows to a few 1e-6 relative to
///   the largest products summed. Maps too small for 4×4 tiles to pay (R-Net's 9×9) keep F(2×2).
/// `SmallConvTests` bounds both against `Reference.conv2d`.
///
/// Layout as ``SmallConv``: input `[H, W, S]` with S ≥ the input channels rounded up to 16 (the transforms read
/// whole 16-channel vectors; channels past the real ones are read but multiplied by nothing), output
/// `[H − 2, W − 2, outStride]` with zeros in the padding channels.
struct WinogradWeights: Sendable {
    let inChannels: Int
    /// Input channels rounded up to 16: the row stride of the transformed tiles.
    let inStride: Int
    let outStride: Int
    /// F(2×2, 3×3)'s U: `[16][inChannels][outStride]`, zero in the padding output channels.
    let u2: [Float]
    /// F(4×4, 3×3)'s U: `[36][inChannels][outStride]`.
    let u4: [Float]

    /// `weight`: PyTorch layout `[out, in, 3, 3]`.
    init(weight: Tensor, outStride: Int) {
        inChannels = weight.shape[1]
        inStride = (inChannels + 15) / 16 * 16
        self.outStride = outStride
        // G for F(2×2): [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
        u2 = Self.transform(weight, outStride: outStride,
                            g: [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
        // G for F(4×4), points 0, 1, −1, 2, −2, ∞.
        u4 = Self.transform(weight, outStride: outStride,
                            g: [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                                [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]])
    }

    /// U = G g Gᵀ for every channel pair, in Double, rounded once: `[α²][in][outStride]`, α = G's rows.
    static func transform(_ weight: Tensor, outStride: Int, g: [[Double]]) -> [Float] {
        let (o, ci, alpha) = (weight.shape[0], weight.shape[1], g.count)
        var u = [Float](repeating: 0, count: alpha * alpha * ci * outStride)
        for oc in 0..<o { for ic in 0..<ci {
            var k = [[Double]](repeating: [0, 0, 0], count: 3)
            for i in 0..<3 { for j in 0..<3 { k[i][j] = Double(weight.data[((oc * ci + ic) * 3 + i) * 3 + j]) } }
            for a in 0..<alpha { for b in 0..<alpha {
                var s = 0.0
                for i in 0..<3 { for j in 0..<3 { s += g[a][i] * k[i][j] * g[b][j] } }
                u[((a * alpha + b) * ci + ic) * outStride + oc] = Float(s)
            } }
        } }
        return u
    }
}

extension SmallConv {
    /// The output tile (2 or 4) ``winograd(_:outputTile:)`` takes for an `oh × ow` output map: the one with
    /// fewer estimated vector operations, counting each tile's products ((m+2)² per input channel and 16
    /// output channels) and its transforms (per 16 channels: F(2×2) about 40 in and 30 out, F(4×4) about
    /// 220 in and 130 out, loads and stores included).
    public func winogradOutputTile(outputHeight oh: Int, outputWidth ow: Int) -> Int {
        let (ib, ob) = ((inChannels + 15) / 16, outStride / 16)
        let tiles2 = ((oh + 1) / 2) * ((ow + 1) / 2), tiles4 = ((oh + 3) / 4) * ((ow + 3) / 4)
        let cost2 = tiles2 * (16 * inChannels * ob + 40 * ib + 30 * ob)
        let cost4 = tiles4 * (36 * inChannels * ob + 220 * ib + 130 * ob)
        return cost4 < cost2 ? 4 : 2
    }

    /// The Winograd convolution of `x` (`[H, W, S]`, S ≥ input channels rounded up to 16) with m×m output tiles,
    /// `outputTile` 2 or 4 (nil: ``winogradOutputTile(outputHeight:outputWidth:)``). Tiles are taken in
    /// row-major order across tile rows, `chunk` at a time (a small map's few tiles a row still fill the
    /// register tile), and chunks are split across threads (serially inside another parallel loop, e.g. per
    /// R/O-Net crop).
    public func winograd(_ x: Tensor, outputTile: Int? = nil) -> Tensor {
        guard let wg = winogradWeights else { preconditionFailure("SmallConv.winograd on a layer without Winograd weights") }
        let (h, w, cs) = (x.shape[0], x.shape[1], x.shape[2])
        precondition(x.rank == 3 && cs >= wg.inStride, "SmallConv.winograd expects [H, W, ≥\(wg.inStride)], got \(x.shape)")
        let (oh, ow) = (h - 2, w - 2)
        let out = Tensor(uninitialized: [max(oh, 0), max(ow, 0), outStride])
        if oh <= 0 || ow <= 0 { return out }
        let m = outputTile ?? winogradOutputTile(outputHeight: oh, outputWidth: ow)
        precondition(m == 2 || m == 4, "SmallConv.winograd: output tile \(m), not 2 or 4")
        let alpha = m + 2, products = alpha * alpha
        let (tilesY, tilesX) = ((oh + m - 1) / m, (ow + m - 1) / m)
        let tiles = tilesY * tilesX
        let (cin, istr, os) = (inChannels, wg.inStride, outStride)
        let tr = SmallConvTile.rows
        let chunk = 2 * tr                             // tiles per pass: V and M stay in L1/L2
        let src = UnsafePointer(x.data), dst = out.data
        let prelu = hasPReLU
        let walk = WindowWalk(rowRuns: 1, rowStep: 0, runsPerRow: 1, runStep: 0, runLength: cin)
        (m == 2 ? wg.u2 : wg.u4).withUnsafeBufferPointer { uB in
        bias.withUnsafeBufferPointer { bB in slopes.withUnsafeBufferPointer { sB in
            let ut = uB.baseAddress!, bp = bB.baseAddress!, sp = sB.baseAddress!
            parallelFor((tiles + chunk - 1) / chunk) { c0, c1 in
                // V: [α²][chunk][istr] transformed input; M: [α²][chunk][os] products summed over channels.
                let v = UnsafeMutablePointer<Float>.allocate(capacity: products * chunk * istr)
                let mp = UnsafeMutablePointer<Float>.allocate(capacity: products * chunk * os)
                // An edge tile's input, zero past the map: α² pixels of `istr` channels.
                let edge = UnsafeMutablePointer<Float>.allocate(capacity: products * istr)
                // F(4×4)'s half-transformed tile: 36 vectors of 16 lanes.
                let half = UnsafeMutablePointer<Float>.allocate(capacity: 36 * 16)
                // The register tile's row pointers into V.
                let a = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: tr)
                defer { v.deallocate(); mp.deallocate(); edge.deallocate(); half.deallocate(); a.deallocate() }
                for c in c0..<c1 {
                    let first = c * chunk, n = min(chunk, tiles - first)
                    // Input transform V = Bᵀ d B, 16 channels at a time.
                    for t in 0..<n {
                        let (y0, x0) = (m * ((first + t) / tilesX), m * ((first + t) % tilesX))
                        var p = src + (y0 * w + x0) * cs, rowStride = w * cs, pixelStride = cs
                        if y0 + alpha > h || x0 + alpha > w {
                            edge.initialize(repeating: 0, count: products * istr)
                            for r in 0..<min(alpha, h - y0) { for q in 0..<min(alpha, w - x0) {
                                (edge + (r * alpha + q) * istr).update(from: p + (r * w + q) * cs, count: istr)
                            } }
                            p = UnsafePointer(edge); rowStride = alpha * istr; pixelStride = istr
                        }
                        var cb = 0
                        while cb < istr {
                            if m == 2 {
                                winogradInputTile(p + cb, rowStride: rowStride, pixelStride: pixelStride,
                                                  into: v + t * istr + cb, step: chunk * istr)
                            } else {
                                winograd4InputTile(p + cb, rowStride: rowStride, pixelStride: pixelStride,
                                                   into: v + t * istr + cb, step: chunk * istr, half: half)
                            }
                            cb += 16
                        }
                    }
                    // M[ξ] = V[ξ] · U[ξ]: a register tile of ``SmallConvTile/rows`` tiles at a time.
                    for xi in 0..<products {
                        let vx = v + xi * chunk * istr, ux = ut + xi * cin * os, mx = mp + xi * chunk * os
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
                        let (y0, x0) = (m * ((first + t) / tilesX), m * ((first + t) % tilesX))
                        let (validRows, validColumns) = (min(m, oh - y0), min(m, ow - x0))
                        var cb = 0
                        while cb < os {
                            let bv = load(bp + cb), sv = load(sp + cb)
                            if m == 2 {
                                for row in 0..<validRows {
                                    var (ya, yb) = winogradOutputRow(row, mp + t * os + cb, step: chunk * os)
                                    ya += bv; yb += bv
                                    if prelu { ya = AffectKernels.prelu(ya, sv); yb = AffectKernels.prelu(yb, sv) }
                                    let o = dst + ((y0 + row) * ow + x0) * os + cb
                                    store(ya, o)
                                    if validColumns == 2 { store(yb, o + os) }
                                }
                            } else {
                                winograd4OutputColumns(mp + t * os + cb, step: chunk * os, into: half)
                                for row in 0..<validRows {
                                    let ys = winograd4OutputRow(row, half)
                                    let o = dst + ((y0 + row) * ow + x0) * os + cb
                                    @inline(__always) func put(_ y: Vec, _ j: Int) {
                                        let yb = y + bv
                                        store(prelu ? AffectKernels.prelu(yb, sv) : yb, o + j * os)
                                    }
                                    put(ys.0, 0)
                                    if validColumns > 1 { put(ys.1, 1) }
                                    if validColumns > 2 { put(ys.2, 2) }
                                    if validColumns > 3 { put(ys.3, 3) }
                                }
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

/// Bᵀ applied to six vectors, F(4×4, 3×3)'s input transform along one direction:
/// Bᵀ = [[4, 0, −5, 0, 1, 0], [0, −4, −4, 1, 1, 0], [0, 4, −4, −1, 1, 0],
///       [0, −2, −1, 2, 1, 0], [0, 2, −1, −2, 1, 0], [0, 4, 0, −5, 0, 1]],
/// in 12 operations by sharing d₄ − 4d₂, d₃ − 4d₁, d₄ − d₂ and d₃ − d₁.
@inline(__always)
func winograd4B(_ d0: Vec, _ d1: Vec, _ d2: Vec, _ d3: Vec, _ d4: Vec, _ d5: Vec) -> (Vec, Vec, Vec, Vec, Vec, Vec) {
    let t0 = d4.addingProduct(d2, Vec(repeating: -4)), t1 = d3.addingProduct(d1, Vec(repeating: -4))
    let t2 = d4 - d2, t3 = d3 - d1
    return (d4.addingProduct(d2, Vec(repeating: -5)).addingProduct(d0, Vec(repeating: 4)),
            t0 + t1, t0 - t1,
            t2.addingProduct(t3, Vec(repeating: 2)), t2.addingProduct(t3, Vec(repeating: -2)),
            d5.addingProduct(d3, Vec(repeating: -5)).addingProduct(d1, Vec(repeating: 4)))
}

/// Aᵀ applied to six vectors, F(4×4, 3×3)'s output transform along one direction:
/// Aᵀ = [[1, 1, 1, 1, 1, 0], [0, 1, −1, 2, −2, 0], [0, 1, 1, 4, 4, 0], [0, 1, −1, 8, −8, 1]].
@inline(__always)
func winograd4A(_ m0: Vec, _ m1: Vec, _ m2: Vec, _ m3: Vec, _ m4: Vec, _ m5: Vec) -> (Vec, Vec, Vec, Vec) {
    let a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4
    return (m0 + a + c, b.addingProduct(d, Vec(repeating: 2)), a.addingProduct(c, Vec(repeating: 4)),
            b.addingProduct(d, Vec(repeating: 8)) + m5)
}

/// Bᵀ d B for 16 channels of one 6×6 input tile (`p`: its top-left pixel), stored as 36 vectors `step` apart.
/// Two passes through `half` (36 vectors): Bᵀ down each column, then B along each row, so that at most six
/// inputs and six results are live (all 36 at once would spill on either vector width).
@inline(__always)
func winograd4InputTile(_ p: UnsafePointer<Float>, rowStride: Int, pixelStride: Int, into o: UnsafeMutablePointer<Float>,
                        step: Int, half: UnsafeMutablePointer<Float>) {
    @inline(__always) func d(_ r: Int, _ c: Int) -> Vec { load(p + r * rowStride + c * pixelStride) }
    for c in 0..<6 {
        let e = winograd4B(d(0, c), d(1, c), d(2, c), d(3, c), d(4, c), d(5, c))
        let h = half + c * 16
        store(e.0, h); store(e.1, h + 96); store(e.2, h + 192); store(e.3, h + 288); store(e.4, h + 384); store(e.5, h + 480)
    }
    for q in 0..<6 {
        let h = UnsafePointer(half + q * 96)
        let r = winograd4B(load(h), load(h + 16), load(h + 32), load(h + 48), load(h + 64), load(h + 80))
        let base = o + q * 6 * step
        store(r.0, base); store(r.1, base + step); store(r.2, base + 2 * step)
        store(r.3, base + 3 * step); store(r.4, base + 4 * step); store(r.5, base + 5 * step)
    }
}

/// Aᵀ M for 16 channels of one tile (`m`: its 36 products `step` apart): four rows of six vectors into `half`,
/// for ``winograd4OutputRow(_:_:)``.
@inline(__always)
func winograd4OutputColumns(_ m: UnsafePointer<Float>, step: Int, into half: UnsafeMutablePointer<Float>) {
    @inline(__always) func r(_ i: Int, _ c: Int) -> Vec { load(m + (6 * i + c) * step) }
    for c in 0..<6 {
        let s = winograd4A(r(0, c), r(1, c), r(2, c), r(3, c), r(4, c), r(5, c))
        let h = half + c * 16
        store(s.0, h); store(s.1, h + 96); store(s.2, h + 192); store(s.3, h + 288)
    }
}

/// Output row `row` (0…3) of Aᵀ M A: A across that row of ``winograd4OutputColumns(_:step:into:)``'s result.
@inline(__always)
func winograd4OutputRow(_ row: Int, _ half: UnsafeMutablePointer<Float>) -> (Vec, Vec, Vec, Vec) {
    let h = UnsafePointer(half + row * 96)
    return winograd4A(load(h), load(h + 16), load(h + 32), load(h + 48), load(h + 64), load(h + 80))
}
