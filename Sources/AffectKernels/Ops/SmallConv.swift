import Foundation

/// A direct k×k convolution (stride 1, no padding) for layers with few channels, such as MTCNN's P-Net
/// (3 → 10 → 16 → 32 channels on every level of an image pyramid), with bias and PReLU fused.
///
/// im2col + GEMM spends most of its time copying when K = k·k·C is small; here each output pixel
/// accumulates its output channels straight from the input, in a register tile of 8 pixels × up to 48
/// channels (6 × 16 on AVX2, ``SmallConvTile``) so every weight vector loaded feeds 8 FMAs and enough FMA
/// chains are in flight. Tensors are `[H, W, stride]` with a channel stride ≥ the channel count:
/// outputs are padded to a multiple of 16 channels (the padding holds zeros) and the next layer reads
/// only the real ones.
public struct SmallConv: Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    /// Output channel stride: `outChannels` rounded up to 16.
    public let outStride: Int
    let weights: [Float]        // [k][k][inChannels][outStride], zero-padded
    let bias: [Float]           // [outStride]
    let slopes: [Float]         // PReLU slopes [outStride]
    let hasPReLU: Bool
    /// Winograd weights (F(2×2, 3×3) and F(4×4, 3×3)) for 3×3 layers with at least ``winogradMinChannels`` input channels (nil otherwise).
    let winogradWeights: WinogradWeights?
    /// Fewest input channels for which a 3×3 layer runs by Winograd: below, the transforms cost more than the
    /// multiply-adds they save.
    public static let winogradMinChannels = 8

    /// - Parameters:
    ///   - weight: PyTorch layout `[out, in, k, k]`.
    ///   - prelu: per-output-channel PReLU slopes, if the layer is followed by PReLU.
    public init(weight: Tensor, bias: Tensor?, prelu: [Float]? = nil) {
        precondition(weight.rank == 4 && weight.shape[2] == weight.shape[3], "SmallConv expects a square [out, in, k, k] weight, got \(weight.shape)")
        let (o, ci, k) = (weight.shape[0], weight.shape[1], weight.shape[2])
        precondition(bias == nil || bias!.count == o, "SmallConv: bias of \(bias!.count) for \(o) channels")
        precondition(prelu == nil || prelu!.count == o, "SmallConv: \(prelu!.count) PReLU slopes for \(o) channels")
        inChannels = ci; outChannels = o; kernel = k
        outStride = (o + 15) / 16 * 16
        var w = [Float](repeating: 0, count: k * k * ci * outStride)
        for oc in 0..<o { for ic in 0..<ci { for i in 0..<k { for j in 0..<k {
            w[((i * k + j) * ci + ic) * outStride + oc] = weight.data[((oc * ci + ic) * k + i) * k + j]
        } } } }
        weights = w
        var b = [Float](repeating: 0, count: outStride)
        if let bias { for c in 0..<o { b[c] = bias.data[c] } }
        self.bias = b
        hasPReLU = prelu != nil
        slopes = (prelu ?? [Float](repeating: 1, count: o)) + [Float](repeating: 1, count: outStride - o)
        winogradWeights = k == 3 && ci >= Self.winogradMinChannels ? WinogradWeights(weight: weight, outStride: outStride) : nil
    }

    /// Whether ``callAsFunction(_:)`` runs this layer by Winograd (``winograd(_:outputTile:)``) on inputs
    /// whose channel stride is at least the input channels rounded up to 16.
    public var usesWinograd: Bool { winogradWeights != nil }

    /// `x`: `[H, W, S]` with S ≥ `inChannels` → `[H − k + 1, W − k + 1, outStride]`: by Winograd when
    /// ``usesWinograd`` and S allows it, else directly (``direct(_:)``).
    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let wg = winogradWeights, x.rank == 3, x.shape[2] >= wg.inStride { return winograd(x) }
        return direct(x)
    }

    /// The direct convolution: `x`: `[H, W, S]` with S ≥ `inChannels` → `[H − k + 1, W − k + 1, outStride]`.
    /// Output pixels, in row-major order across rows, are taken ``SmallConvTile/rows`` at a time: each is one
    /// row of a register tile whose k steps walk its k×k window (``WindowWalk``). Tiles are split across
    /// threads (serially when called from inside another parallel loop).
    public func direct(_ x: Tensor) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] >= inChannels, "SmallConv expects [H, W, ≥\(inChannels)], got \(x.shape)")
        let (h, w, cs) = (x.shape[0], x.shape[1], x.shape[2])
        let (oh, ow) = (h - kernel + 1, w - kernel + 1)
        let out = Tensor(uninitialized: [max(oh, 0), max(ow, 0), outStride])
        if oh <= 0 || ow <= 0 { return out }
        let (k, cin, os) = (kernel, inChannels, outStride)
        // Unpadded input: a window row's k pixels are k·cin contiguous values, one run.
        let walk = cs == cin ? WindowWalk(rowRuns: k, rowStep: w * cs, runsPerRow: 1, runStep: 0, runLength: k * cin)
                             : WindowWalk(rowRuns: k, rowStep: w * cs, runsPerRow: k, runStep: cs, runLength: cin)
        let src = UnsafePointer(x.data), dst = out.data
        let prelu = hasPReLU
        let pixels = oh * ow, tr = SmallConvTile.rows
        weights.withUnsafeBufferPointer { wB in bias.withUnsafeBufferPointer { bB in slopes.withUnsafeBufferPointer { sB in
            let wt = wB.baseAddress!, bp = bB.baseAddress!, sp = sB.baseAddress!
            parallelFor((pixels + tr - 1) / tr, minChunk: 4) { t0, t1 in
                withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: tr) { rowsA in
                    let a = rowsA.baseAddress!
                    // The next pixel's row and column, stepped rather than divided out per pixel (an integer
                    // division per pixel was about a third of this function's own time).
                    var q = t0 * tr
                    var (y, px) = (q / ow, q % ow)
                    for _ in t0..<t1 {
                        let n = min(tr, pixels - q)
                        for r in 0..<n {
                            (a + r).initialize(to: src + (y * w + px) * cs)
                            px += 1
                            if px == ow { px = 0; y += 1 }
                        }
                        SmallConvTile.run(a: UnsafePointer(a), rows: n, walk: walk, w: wt, ldw: os, cols: os, bias: bp,
                                          slopes: prelu ? sp : nil, out: dst + q * os, ldo: os)
                        q += n
                    }
                }
            }
        } } }
        return out
    }
}

extension SmallConv {
    /// ``direct(_:)`` followed by ``maxPoolCeil(_:kernel:stride:)``, without the convolution's map ever being
    /// whole: each pooled row computes the `kernel` convolution rows it needs (those it shares with the
    /// previous pooled row are kept in a ring of `kernel` rows) and pools them while they are in L1/L2.
    /// MTCNN's P-Net pools its first layer's 16-channel map at the pyramid's full resolution (11.8 MB for the
    /// first level of a 1080p frame): written out and read back, it went through memory twice.
    /// Results are those of the two calls, bit for bit. Bands of pooled rows are split across threads (a
    /// band's first rows recompute the convolution rows it shares with the previous band).
    public func directMaxPooled(_ x: Tensor, kernel pk: Int, stride ps: Int) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] >= inChannels, "SmallConv expects [H, W, ≥\(inChannels)], got \(x.shape)")
        precondition(pk >= 1 && ps >= 1, "directMaxPooled: pooling kernel and stride must be positive")
        let (h, w, cs) = (x.shape[0], x.shape[1], x.shape[2])
        let (oh, ow) = (h - kernel + 1, w - kernel + 1)
        guard oh > 0 && ow > 0 else { return maxPoolCeil(direct(x), kernel: pk, stride: ps) }
        let (ph, pw) = (maxPoolCeilSize(oh, kernel: pk, stride: ps), maxPoolCeilSize(ow, kernel: pk, stride: ps))
        let out = Tensor(uninitialized: [ph, pw, outStride])
        let (k, cin, os) = (kernel, inChannels, outStride)
        let walk = cs == cin ? WindowWalk(rowRuns: k, rowStep: w * cs, runsPerRow: 1, runStep: 0, runLength: k * cin)
                             : WindowWalk(rowRuns: k, rowStep: w * cs, runsPerRow: k, runStep: cs, runLength: cin)
        let src = UnsafePointer(x.data), dst = out.data
        let prelu = hasPReLU
        let tr = SmallConvTile.rows, rowLength = ow * os
        weights.withUnsafeBufferPointer { wB in bias.withUnsafeBufferPointer { bB in slopes.withUnsafeBufferPointer { sB in
            let wt = wB.baseAddress!, bp = bB.baseAddress!, sp = sB.baseAddress!
            parallelFor(ph) { p0, p1 in
                // Convolution row r lives in slot r % pk while it is needed.
                let ring = UnsafeMutablePointer<Float>.allocate(capacity: pk * rowLength)
                let a = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: tr)
                defer { ring.deallocate(); a.deallocate() }
                var next = p0 * ps                      // first convolution row not yet computed by this band
                for py in p0..<p1 {
                    let y0 = py * ps, y1 = min(y0 + pk, oh)
                    next = max(next, y0)
                    while next < y1 {
                        let row = ring + (next % pk) * rowLength, input = src + next * w * cs
                        var px = 0
                        while px < ow {
                            let n = min(tr, ow - px)
                            for r in 0..<n { (a + r).initialize(to: input + (px + r) * cs) }
                            SmallConvTile.run(a: UnsafePointer(a), rows: n, walk: walk, w: wt, ldw: os, cols: os, bias: bp,
                                              slopes: prelu ? sp : nil, out: row + px * os, ldo: os)
                            px += n
                        }
                        next += 1
                    }
                    // The window's rows, then each pooled pixel's maximum over them (2×2 and 3×3 windows
                    // unrolled, in the order ``maxPoolCeil(_:kernel:stride:)`` takes them).
                    let wr = y1 - y0
                    let r0 = UnsafePointer(ring + (y0 % pk) * rowLength)
                    let r1 = wr > 1 ? UnsafePointer(ring + ((y0 + 1) % pk) * rowLength) : r0
                    let r2 = wr > 2 ? UnsafePointer(ring + ((y0 + 2) % pk) * rowLength) : r0
                    let o = dst + py * pw * os
                    for qx in 0..<pw {
                        let x0 = qx * ps, x1 = min(x0 + pk, ow)
                        let c0 = x0 * os, oq = o + qx * os
                        var cb = 0
                        if wr == pk && x1 - x0 == pk && (pk == 2 || pk == 3) {
                            let (c1, c2) = (c0 + os, c0 + 2 * os)
                            while cb < os {
                                var v = vmax(load(r0 + c0 + cb), load(r0 + c1 + cb))
                                if pk == 3 { v = vmax(v, load(r0 + c2 + cb)) }
                                v = vmax(v, load(r1 + c0 + cb)); v = vmax(v, load(r1 + c1 + cb))
                                if pk == 3 {
                                    v = vmax(v, load(r1 + c2 + cb))
                                    v = vmax(v, load(r2 + c0 + cb)); v = vmax(v, load(r2 + c1 + cb)); v = vmax(v, load(r2 + c2 + cb))
                                }
                                store(v, oq + cb)
                                cb += 16
                            }
                            continue
                        }
                        while cb < os {
                            var v = load(r0 + c0 + cb)
                            for yy in y0..<y1 {
                                var p = UnsafePointer(ring + (yy % pk) * rowLength + c0 + cb)
                                for _ in x0..<x1 { v = vmax(v, load(p)); p += os }
                            }
                            store(v, oq + cb)
                            cb += 16
                        }
                    }
                }
            }
        } } }
        return out
    }
}

/// Pooled length of `n` values with `kernel`, `stride`, ceil mode and no padding: no window starts past the end.
func maxPoolCeilSize(_ n: Int, kernel k: Int, stride s: Int) -> Int {
    var o = (max(n - k, 0) + s - 1) / s + 1
    if (o - 1) * s >= n { o -= 1 }
    return o
}

/// Max pooling with a `kernel × kernel` window and `stride`, ceil mode (windows at the end pool what is
/// left of the input, and none starts past it, as PyTorch's `ceil_mode=True` without padding) on `[H, W, C]`,
/// C a multiple of 16. Runs on the calling thread.
public func maxPoolCeil(_ x: Tensor, kernel k: Int, stride s: Int) -> Tensor {
    let (h, w, c) = (x.shape[0], x.shape[1], x.shape[2])
    precondition(x.rank == 3 && c % 16 == 0 && h >= 1 && w >= 1, "maxPoolCeil expects [H, W, 16·n], got \(x.shape)")
    let (oh, ow) = (maxPoolCeilSize(h, kernel: k, stride: s), maxPoolCeilSize(w, kernel: k, stride: s))
    let out = Tensor(uninitialized: [oh, ow, c])
    let src = x.data, dst = out.data
    for oy in 0..<oh {
        let y0 = oy * s, y1 = min(y0 + k, h)
        for ox in 0..<ow {
            let x0 = ox * s, x1 = min(x0 + k, w)
            let o = dst + (oy * ow + ox) * c
            var j = 0
            while j < c {
                var m = load(src + (y0 * w + x0) * c + j)
                for yy in y0..<y1 { for xx in x0..<x1 { m = vmax(m, load(src + (yy * w + xx) * c + j)) } }
                store(m, o + j)
                j += 16
            }
        }
    }
    return out
}
