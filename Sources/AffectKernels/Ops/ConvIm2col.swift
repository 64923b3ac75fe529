/// im2col convolutions: each output pixel's receptive field gathered into a row, then one matrix product per
/// group over those rows. Everything the specialised kernels do not take runs here.
extension Conv2D {
    /// im2col: the receptive fields of output pixels `p0..<p1` (flat over N·H'·W'), group `g`, as rows of `col`.
    private func gather(_ x: Tensor, _ col: UnsafeMutablePointer<Float>, pixels p0: Int, _ p1: Int, group g: Int,
                        outSize: (h: Int, w: Int), padTop: Int, padLeft: Int) {
        let (h, w, cin) = (x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = outSize
        let (kh, kw) = kernel
        let ipg = cin / groups
        let kDim = kh * kw * ipg
        let src = x.data
        // Pixel coordinates advance incrementally: integer division per row was a visible cost.
        var img = p0 / (oh * ow), oy = (p0 / ow) % oh, ox = p0 % ow
        for r in 0..<(p1 - p0) {
            defer {
                ox += 1
                if ox == ow { ox = 0; oy += 1; if oy == oh { oy = 0; img += 1 } }
            }
            let dstRow = col + r * kDim
            for i in 0..<kh {
                let iy = oy * stride.h - padTop + i * dilation.h
                for j in 0..<kw {
                    let d = dstRow + (i * kw + j) * ipg
                    let ix = ox * stride.w - padLeft + j * dilation.w
                    if iy < 0 || iy >= h || ix < 0 || ix >= w {
                        for c in 0..<ipg { d[c] = 0 }
                    } else {
                        // A plain loop: for the stem's 3 channels a memmove call costs more than the copy.
                        let s = src + ((img * h + iy) * w + ix) * cin + g * ipg
                        for c in 0..<ipg { d[c] = s[c] }
                    }
                }
            }
        }
    }

    /// im2col + packed GEMM (ungrouped, no PReLU), bias and activation in the GEMM's tile epilogue. With
    /// enough pixels each thread gathers and multiplies whole row tiles (about 256 KB gathered); otherwise one
    /// gather of every pixel, then the GEMM split across the threads.
    func im2colPacked(_ x: Tensor, _ out: Tensor, _ g: PackedWeights, padTop: Int, padLeft: Int, act: Activation) {
        let (oh, ow) = (out.shape[1], out.shape[2])
        let kDim = g.k, cout = outChannels
        let pixels = x.shape[0] * oh * ow
        let dst = out.data
        let (tileRows, tiles, threaded) = Self.rowTiles(pixels: pixels, kDim: kDim)
        if threaded {
            parallelFor(tiles, minChunk: 1) { t0, t1 in
                let work = Tensor(uninitialized: [tileRows, kDim])
                for t in t0..<t1 {
                    let p0 = t * tileRows, rows = min(tileRows, pixels - p0)
                    gather(x, work.data, pixels: p0, p0 + rows, group: 0, outSize: (oh, ow), padTop: padTop, padLeft: padLeft)
                    // Inside a parallel loop the packed GEMM runs on this thread.
                    packedGEMM(m: rows, a: work.data, lda: kDim, weights: g, c: dst + p0 * cout, ldc: cout, activation: act)
                }
            }
            return
        }
        let work = Tensor(uninitialized: [pixels, kDim])
        parallelFor(pixels, minChunk: 16) { r0, r1 in
            gather(x, work.data + r0 * kDim, pixels: r0, r1, group: 0, outSize: (oh, ow), padTop: padTop, padLeft: padLeft)
        }
        packedGEMM(m: pixels, a: work.data, lda: kDim, weights: g, c: dst, ldc: cout, activation: act)
    }

    /// Row tiles for im2col: about 256 KB of gathered rows (at least 64) and at most one tile per thread's
    /// share; `threaded` when there are enough tiles for every thread to take whole ones.
    private static func rowTiles(pixels: Int, kDim: Int) -> (rows: Int, tiles: Int, threaded: Bool) {
        let threads = Threading.threads
        let rows = max(64, min((pixels + threads - 1) / threads, (64 << 10) / max(kDim, 1)))
        let tiles = (pixels + rows - 1) / rows
        return (rows, tiles, threads > 1 && tiles >= threads)
    }

    /// im2col + GEMM. With enough pixels each thread takes whole row tiles (about 256 KB of gathered rows,
    /// at least 64): gather, GEMM onto the bias (beta = 1, no separate zeroing or bias pass) and activation,
    /// all while the tile is in cache and without a fork-join per step. Few pixels (late layers at batch 1):
    /// gather once, then split each GEMM across the threads.
    func im2col(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation) {
        let (oh, ow) = (out.shape[1], out.shape[2])
        let ipg = inChannels / groups, opg = outChannels / groups
        let kDim = kernel.h * kernel.w * ipg
        let pixels = x.shape[0] * oh * ow
        let dst = out.data, wt = packed.data, b = bias?.data
        let cout = outChannels
        let (tileRows, tiles, threaded) = Self.rowTiles(pixels: pixels, kDim: kDim)
        if threaded {
            parallelFor(tiles, minChunk: 1) { t0, t1 in
                let work = Tensor(uninitialized: [tileRows, kDim])
                for t in t0..<t1 {
                    let p0 = t * tileRows, rows = min(tileRows, pixels - p0)
                    let c = dst + p0 * cout
                    if let bb = b {
                        for r in 0..<rows { (c + r * cout).update(from: bb, count: cout) }
                    }
                    for g in 0..<groups {
                        gather(x, work.data, pixels: p0, p0 + rows, group: g, outSize: (oh, ow), padTop: padTop, padLeft: padLeft)
                        sgemmBlock(m: rows, n: opg, k: kDim, a: work.data, lda: kDim, b: wt + g * kDim * opg, ldb: opg,
                                   bTransposed: false, c: c + g * opg, ldc: cout, accumulate: b != nil)
                    }
                    applyActivation(act, c, count: rows * cout, channels: cout)
                }
            }
            return
        }
        // Row tiles keep the im2col workspace near 8 MB whatever the image size.
        let bigTile = max(64, min(pixels, (2 << 20) / max(kDim, 1)))
        let work = Tensor(uninitialized: [bigTile, kDim])
        var t0 = 0
        while t0 < pixels {
            let rows = min(bigTile, pixels - t0)
            for g in 0..<groups {
                parallelFor(rows, minChunk: 16) { r0, r1 in
                    gather(x, work.data + r0 * kDim, pixels: t0 + r0, t0 + r1, group: g, outSize: (oh, ow),
                           padTop: padTop, padLeft: padLeft)
                }
                sgemm(m: rows, n: opg, k: kDim, a: work.data, lda: kDim, b: wt + g * kDim * opg, ldb: opg,
                      bTransposed: false, c: dst + t0 * cout + g * opg, ldc: cout)
            }
            biasActivation(dst + t0 * cout, rows: rows, cols: cout, bias: b.map { UnsafePointer($0) }, act: act)
            t0 += rows
        }
    }
}
