/// Pointwise (1×1) convolutions: one matrix product over all pixels of the NHWC input, read in place.
extension Conv2D {
    /// Pointwise convolution on the packed GEMM. A squeeze-and-excitation scale multiplies the weights per
    /// image (one scaled copy of the packed panels) when an image has over twice as many pixels as output
    /// channels (early, wide maps: the weights are the smaller operand), the pixels otherwise.
    func packedPointwise(_ x: Tensor, _ out: Tensor, _ g: PackedWeights, residual: Tensor?, inputScale: Tensor?) {
        let k = inChannels, nOut = outChannels
        let m = x.count / k, images = x.shape[0], perImage = m / images
        let res = residual.map { UnsafePointer($0.data) }
        guard let scale = inputScale else {
            packedGEMM(m: m, a: x.data, lda: k, weights: g, residual: res, ldr: nOut, c: out.data, ldc: nOut,
                       activation: activation)
            return
        }
        let sc = scale.data
        if 2 * nOut < perImage {
            for img in 0..<images {
                let scaled = g.scaledAlongK(sc + img * k)
                let off = img * perImage
                packedGEMM(m: perImage, a: x.data + off * k, lda: k, weights: scaled,
                           residual: res.map { $0 + off * nOut }, ldr: nOut, c: out.data + off * nOut, ldc: nOut,
                           activation: activation)
            }
            return
        }
        let scaledX = Self.scaledPixels(x, by: scale)
        packedGEMM(m: m, a: scaledX.data, lda: k, weights: g, residual: res, ldr: nOut, c: out.data, ldc: nOut,
                   activation: activation)
    }

    /// `x[n, …, c] · scale[n, c]`: each pixel's channels times its image's factors, as a new tensor `[pixels, C]`.
    static func scaledPixels(_ x: Tensor, by scale: Tensor) -> Tensor {
        let k = x.shape[x.rank - 1], m = x.count / k, perImage = m / x.shape[0]
        let scaled = Tensor(uninitialized: [m, k])
        let src = x.data, sc = scale.data, dst = scaled.data
        parallelFor(m, minChunk: 16) { r0, r1 in
            for r in r0..<r1 {
                let xi = src + r * k, si = sc + (r / perImage) * k, o = dst + r * k
                var j = 0
                while j + 16 <= k { store(load(xi + j) * load(si + j), o + j); j += 16 }
                while j < k { o[j] = xi[j] * si[j]; j += 1 }
            }
        }
        return scaled
    }

    /// Pointwise convolution in int8: each pixel's channels (after the squeeze-and-excitation scale) quantised
    /// with one scale per pixel, multiplied by the per-channel int8 weights, and dequantised with the bias,
    /// residual and activation in the same pass (``int8Linear(m:x:weights:bias:residual:out:activation:)``).
    func int8Pointwise(_ x: Tensor, _ out: Tensor, _ q: Int8Weights, residual: Tensor?, inputScale: Tensor?) {
        let m = x.count / inChannels
        int8Linear(m: m, x: x.data, weights: q, bias: bias.map { UnsafePointer($0.data) },
                   residual: residual.map { UnsafePointer($0.data) }, out: out.data, activation: activation,
                   inputScale: inputScale.map { UnsafePointer($0.data) }, rowsPerScale: m / x.shape[0])
    }

    /// Pointwise convolution with a PReLU: one GEMM over all pixels, cut into tiles whose epilogue runs while the tile is
    /// still in cache. Each tile's output is first filled with bias (+ residual) and the product accumulated
    /// onto it (beta = 1), which replaces both OpenBLAS's zeroing of C (beta = 0 is a memset pass) and a
    /// separate bias pass; the activation follows on the same tile.
    func pointwise(_ x: Tensor, _ out: Tensor, residual: Tensor?, inputScale: Tensor?) {
        let k = inChannels, nOut = outChannels
        let m = x.count / k
        let perImage = m / x.shape[0]
        let threads = Threading.threads
        let src = x.data, dst = out.data
        let b = bias?.data, res = residual?.data, scale = inputScale?.data
        let wt = packed.data
        let act = activation

        let work = Double(m) * Double(nOut) * Double(k)
        let rowTiles = threads > 1 && work >= 1e6 && m >= 64 * threads
        // The SE scale multiplies K values per pixel, or K·N weights per image: scale the weights when an
        // image has more pixels than output channels (early, wide maps), the pixels otherwise.
        var imageWeights: Tensor?
        if let sc = scale, rowTiles, nOut < perImage {
            let t = Tensor(uninitialized: [x.shape[0], k, nOut])
            for img in 0..<x.shape[0] {
                for kk in 0..<k {
                    let f = Vec(repeating: sc[img * k + kk]), fs = sc[img * k + kk]
                    let wr = wt + kk * nOut, o = t.data + (img * k + kk) * nOut
                    var j = 0
                    while j + 16 <= nOut { store(load(wr + j) * f, o + j); j += 16 }
                    while j < nOut { o[j] = wr[j] * fs; j += 1 }
                }
            }
            imageWeights = t
        }

        /// Output rows `r0..<r1` (within one image when `imageWeights` is set), columns `c0..<c1`.
        func tile(_ r0: Int, _ r1: Int, _ c0: Int, _ c1: Int, _ tileAct: Activation) {
            let rows = r1 - r0, cols = c1 - c0
            var a = UnsafePointer(src + r0 * k)
            var bw = UnsafePointer(wt)
            var scratch: Tensor?
            if let iw = imageWeights {
                bw = UnsafePointer(iw.data + (r0 / perImage) * k * nOut)
            } else if let sc = scale {
                let t = Tensor(uninitialized: [rows, k])
                for r in 0..<rows {
                    let xi = src + (r0 + r) * k, si = sc + ((r0 + r) / perImage) * k, o = t.data + r * k
                    var j = 0
                    while j + 16 <= k { store(load(xi + j) * load(si + j), o + j); j += 16 }
                    while j < k { o[j] = xi[j] * si[j]; j += 1 }
                }
                scratch = t
                a = UnsafePointer(t.data)
            }
            let accumulate = b != nil || res != nil
            if accumulate {
                for r in r0..<r1 {
                    let o = dst + r * nOut
                    var j = c0
                    switch (b, res) {
                    case let (bb?, rr?):
                        let ri = rr + r * nOut
                        while j + 16 <= c1 { store(load(bb + j) + load(ri + j), o + j); j += 16 }
                        while j < c1 { o[j] = bb[j] + ri[j]; j += 1 }
                    case let (bb?, nil):
                        while j + 16 <= c1 { store(load(bb + j), o + j); j += 16 }
                        while j < c1 { o[j] = bb[j]; j += 1 }
                    case let (nil, rr?):
                        (o + c0).update(from: rr + r * nOut + c0, count: cols)
                    default: break
                    }
                }
            }
            sgemmBlock(m: rows, n: cols, k: k, a: a, lda: k, b: bw + c0, ldb: nOut, bTransposed: false,
                       c: dst + r0 * nOut + c0, ldc: nOut, accumulate: accumulate)
            withExtendedLifetime(scratch) {}
            if tileAct != .none {
                if cols == nOut {
                    applyActivation(tileAct, dst + r0 * nOut, count: rows * nOut, channels: nOut)
                } else {
                    for r in r0..<r1 { applyActivation(tileAct, dst + r * nOut + c0, count: cols, channels: cols) }
                }
            }
        }

        if rowTiles {
            // Tiles of about 256 KB of A and C (in L2 between the GEMM and its epilogue), at least 128 rows
            // so that repacking B per call stays small, and at least one per thread. With per-image
            // weights, tiles do not cross images.
            let span = imageWeights == nil ? m : perImage
            let rows = min(max(128, (64 << 10) / (k + nOut)), (span + threads - 1) / threads)
            let perSpan = (span + rows - 1) / rows
            let tiles = perSpan * (m / span)
            parallelFor(tiles, minChunk: 1) { t0, t1 in
                for t in t0..<t1 {
                    let start = (t / perSpan) * span + (t % perSpan) * rows
                    tile(start, min((t / perSpan) * span + span, start + rows), 0, nOut, act)
                }
            }
        } else if threads <= 1 || work < 1e6 {
            tile(0, m, 0, nOut, act)
        } else {
            // Few pixels (late layers at batch 1): split the output channels instead.
            let blocks = min(threads, max(1, nOut / 16))
            // A PReLU's slopes follow the column block.
            parallelFor(blocks, minChunk: 1) { b0, b1 in
                for blk in b0..<b1 {
                    let c0 = (nOut * blk / blocks) & ~15, c1 = blk == blocks - 1 ? nOut : (nOut * (blk + 1) / blocks) & ~15
                    guard c1 > c0 else { continue }
                    var tileAct = act
                    if case .prelu(let s) = act, s.count == nOut { tileAct = .prelu(Array(s[c0..<c1])) }
                    tile(0, m, c0, c1, tileAct)
                }
            }
        }
    }
}
