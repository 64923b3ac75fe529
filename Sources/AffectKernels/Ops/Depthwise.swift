/// Depthwise convolutions (one input channel per output channel), 16 channels per vector.
///
/// ``Conv2D/depthwise(_:_:_:narrow:unrolled:act:means:)`` runs the kernel chosen at load: the narrow one for
/// fewer than 16 channels (NarrowDepthwise.swift), the unrolled one for 3×3 and 5×5 windows at stride 1 or 2
/// (below), and the general loop for every other window, stride and dilation, or an activation without a
/// vector form (tanh, GELU).
extension Conv2D {
    /// `act(depthwise(x) + bias)` into `out` with the kernel chosen at load (`narrow`, `unrolled`: see
    /// ``Conv2D/Kernel``), and, if `means` is given (`[N·H', C]`), each output row's channel sums there (the
    /// narrow kernel does not sum, so those calls take the next one).
    func depthwise(_ x: Tensor, _ out: Tensor, _ geo: Geometry, narrow: Bool, unrolled: Bool, act: Activation,
                   means: UnsafeMutablePointer<Float>?) {
        if narrow && means == nil {
            depthwiseNarrow(x, out, padTop: geo.padTop, padLeft: geo.padLeft, act: act)
        } else if unrolled && !act.needsRowPass {
            depthwiseUnrolled(x, out, padTop: geo.padTop, padLeft: geo.padLeft, act: act, means: means)
        } else {
            depthwiseGeneral(x, out, padTop: geo.padTop, padLeft: geo.padLeft, act: act, means: means)
        }
    }

    /// Any depthwise window, stride and dilation: 16 channels per vector, channel blocks outermost so a
    /// block's k×k weight vectors stay in L1 across the row; interior output pixels four at a time (each weight
    /// vector loaded once for four FMAs), the activation applied in registers before the store, and, if
    /// `means` is given (`[N·H', C]`), each output row's channel sums written there.
    func depthwiseGeneral(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation,
                          means: UnsafeMutablePointer<Float>?) {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (out.shape[1], out.shape[2])
        let (kh, kw) = kernel
        let (sh, sw, dh, dw) = (stride.h, stride.w, dilation.h, dilation.w)
        let src = x.data, dst = out.data, wt = packed.data
        let b = bias?.data
        let vact = VectorActivation(act)
        // Output columns whose whole window lies inside the input: no bounds checks there.
        let oxLo = min(ow, max(0, (padLeft + sw - 1) / sw))
        let lastStart = w - 1 - (kw - 1) * dw + padLeft   // (largest in-bounds window start) + padLeft
        let oxHi = lastStart < 0 ? oxLo : max(oxLo, min(ow, lastStart / sw + 1))
        parallelFor(n * oh, minChunk: 1) { r0, r1 in
            for r in r0..<r1 {
                let img = r / oh, oy = r % oh
                let iy0 = oy * sh - padTop
                let ky0 = iy0 >= 0 ? 0 : (-iy0 + dh - 1) / dh
                let ky1 = max(ky0, min(kh, (h - 1 - iy0) / dh + 1))
                let inImg = src + img * h * w * c
                let outRow = dst + r * ow * c
                var cb = 0
                while cb + 16 <= c {
                    let bv = b.map { load($0 + cb) } ?? Vec()
                    let slope = vact.slopes.map { load($0 + cb) } ?? Vec()
                    var sum = Vec()
                    /// Bounds-checked window (edge columns); returns the stored vector.
                    func edge(_ ox: Int) -> Vec {
                        let ix0 = ox * sw - padLeft
                        var acc = bv
                        for i in ky0..<ky1 {
                            let iy = iy0 + i * dh
                            for j in 0..<kw {
                                let ix = ix0 + j * dw
                                if ix < 0 || ix >= w { continue }
                                acc = acc.addingProduct(load(inImg + (iy * w + ix) * c + cb), load(wt + (i * kw + j) * c + cb))
                            }
                        }
                        acc = vact(acc, slope)
                        store(acc, outRow + ox * c + cb)
                        return acc
                    }
                    for ox in 0..<oxLo { sum += edge(ox) }
                    var ox = oxLo
                    let step = sw * c
                    // Called with a constant width for 3×3 and 5×5 so that the tap loop unrolls.
                    // Mutable state passes as inout: captured vars shared by two local functions get boxed
                    // and checked for exclusive access at run time (~15 % of this kernel's instructions).
                    @inline(__always) func interior(_ kw: Int, _ ox: inout Int, _ sum: inout Vec) {
                        while ox + 4 <= oxHi {
                            var a0 = bv, a1 = bv, a2 = bv, a3 = bv
                            let base = inImg + (ox * sw - padLeft) * c + cb
                            for i in ky0..<ky1 {
                                let rowp = base + (iy0 + i * dh) * w * c
                                let wp = wt + i * kw * c + cb
                                for j in 0..<kw {
                                    let wv = load(wp + j * c)
                                    let p = rowp + j * dw * c
                                    a0 = a0.addingProduct(load(p), wv)
                                    a1 = a1.addingProduct(load(p + step), wv)
                                    a2 = a2.addingProduct(load(p + 2 * step), wv)
                                    a3 = a3.addingProduct(load(p + 3 * step), wv)
                                }
                            }
                            a0 = vact(a0, slope); a1 = vact(a1, slope); a2 = vact(a2, slope); a3 = vact(a3, slope)
                            sum += (a0 + a1) + (a2 + a3)
                            let o = outRow + ox * c + cb
                            store(a0, o); store(a1, o + c); store(a2, o + 2 * c); store(a3, o + 3 * c)
                            ox += 4
                        }
                        while ox < oxHi {
                            var acc = bv
                            let base = inImg + (ox * sw - padLeft) * c + cb
                            for i in ky0..<ky1 {
                                let rowp = base + (iy0 + i * dh) * w * c
                                let wp = wt + i * kw * c + cb
                                for j in 0..<kw { acc = acc.addingProduct(load(rowp + j * dw * c), load(wp + j * c)) }
                            }
                            acc = vact(acc, slope)
                            sum += acc
                            store(acc, outRow + ox * c + cb)
                            ox += 1
                        }
                    }
                    switch kw {
                    case 3: interior(3, &ox, &sum)
                    case 5: interior(5, &ox, &sum)
                    default: interior(kw, &ox, &sum)
                    }
                    for ox in max(oxLo, oxHi)..<ow { sum += edge(ox) }
                    if let m = means { store(sum, m + r * c + cb) }
                    cb += 16
                }
                // Channels past the last whole vector, one at a time.
                if cb < c {
                    for ox in 0..<ow {
                        let ix0 = ox * sw - padLeft
                        for ch in cb..<c {
                            var acc: Float = b?[ch] ?? 0
                            for i in ky0..<ky1 {
                                let iy = iy0 + i * dh
                                for j in 0..<kw {
                                    let ix = ix0 + j * dw
                                    if ix < 0 || ix >= w { continue }
                                    acc += inImg[(iy * w + ix) * c + ch] * wt[(i * kw + j) * c + ch]
                                }
                            }
                            outRow[ox * c + ch] = vact.scalar(acc, channel: ch)
                        }
                    }
                }
                // Activations without a vector form here (tanh, GELU) run over the finished row.
                if vact.needsRowPass { applyActivation(act, outRow, count: ow * c, channels: c) }
                if let m = means, vact.needsRowPass || cb < c {
                    for ch in (vact.needsRowPass ? 0 : cb)..<c {
                        var s: Float = 0
                        for ox in 0..<ow { s += outRow[ox * c + ch] }
                        m[r * c + ch] = s
                    }
                }
            }
        }
    }
}

/// The depthwise kernel for the common shapes: 3×3 and 5×5 windows, stride 1 or 2, no dilation.
///
/// Per output row and block of 16 channels, interior pixels go eight (then four, then one) at a time with
/// the window size and stride as constants, so the tap loops unroll and each input vector loaded feeds every
/// pixel of the block whose window covers it (3×3/1: ten input loads per kernel row for 24 FMAs, where one
/// pixel at a time loads 24). Kernel rows that fall in the padding read a row of zeros instead of being
/// skipped, so the top and bottom rows take the same path; only the left and right edge columns, whose
/// windows are cut, run a per-pixel loop over their valid taps.
extension Conv2D {
    /// The depthwise convolution of a layer with one of the unrolled shapes (`.depthwise(…, unrolled: true)`)
    /// and an activation that has a vector form.
    func depthwiseUnrolled(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation,
                           means: UnsafeMutablePointer<Float>?) {
        let vact = VectorActivation(act)
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (out.shape[1], out.shape[2])
        let k = kernel.h, s = stride.h
        if Self.tiledDepthwise(outputPixels: oh * ow, stride: s, channels: c) {
            depthwiseTiled(x, out, padTop: padTop, padLeft: padLeft, vact: vact, means: means)
            return
        }
        let src = UnsafePointer(x.data), dst = out.data, wt = UnsafePointer(packed.data)
        let b = bias.map { UnsafePointer($0.data) }
        // Stands in for kernel rows in the padding: same offsets as a real input row, all zeros.
        let zeros = Tensor.zeros([w * c])
        let zeroRow = UnsafePointer(zeros.data)
        // Output columns whose whole window lies inside the input.
        let oxLo = min(ow, (padLeft + s - 1) / s)
        let lastStart = w - k + padLeft
        let oxHi = lastStart < 0 ? oxLo : max(oxLo, min(ow, lastStart / s + 1))
        parallelFor(n * oh, minChunk: 1) { r0, r1 in
            let rows = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: k)
            defer { rows.deallocate() }
            for r in r0..<r1 {
                let img = r / oh, oy = r % oh
                let iy0 = oy &* s &- padTop
                for i in 0..<k {
                    let iy = iy0 &+ i
                    rows[i] = iy >= 0 && iy < h ? src + (img &* h &+ iy) &* w &* c : zeroRow
                }
                unrolledRow(rows, w: w, c: c, ow: ow, padLeft: padLeft, oxLo: oxLo, oxHi: oxHi, out: dst + r &* ow &* c,
                            vact: vact, weights: wt, bias: b, means: means.map { $0 + r &* c })
            }
        }
        withExtendedLifetime(zeros) {}
    }

    /// Whether an unrolled depthwise layer takes ``depthwiseTiled(_:_:padTop:padLeft:vact:means:)``: small maps
    /// whose channels fill whole vectors.
    static func tiledDepthwise(outputPixels: Int, stride s: Int, channels c: Int) -> Bool {
        outputPixels <= (s == 1 ? 28 * 28 : 14 * 14) && c % 16 == 0
    }

    /// One output row of ``depthwiseUnrolled(_:_:padTop:padLeft:act:means:)``: `rows` holds the window's `k`
    /// input rows (`w` pixels of `c` channels each, a row of zeros in the padding), `out` the row's `ow`
    /// pixels, `means` (if given) its `c` channel sums. Shared with the fused expansion
    /// (ExpandDepthwise.swift), whose input rows live in a ring buffer.
    @inline(__always)
    func unrolledRow(_ rows: UnsafeMutablePointer<UnsafePointer<Float>>, w: Int, c: Int, ow: Int, padLeft: Int,
                     oxLo: Int, oxHi: Int, out outRow: UnsafeMutablePointer<Float>, vact: VectorActivation,
                     weights wt: UnsafePointer<Float>, bias b: UnsafePointer<Float>?, means: UnsafeMutablePointer<Float>?) {
        let k = kernel.h, s = stride.h
        var cb = 0
        while cb &+ 16 <= c {
            let bv = b.map { load($0 + cb) } ?? Vec()
            let slope = vact.slopes.map { load($0 + cb) } ?? Vec()
            var sum = Vec()
            let edge = DepthwiseRow(rows: rows, weights: wt + cb, c: c, weightStride: c, bias: bv)
            for ox in 0..<oxLo {
                let v = vact(edge.clipped(ox &* s &- padLeft, k: k, w: w, cb: cb), slope)
                sum += v
                store(v, outRow + (ox &* c &+ cb))
            }
            let interior = DepthwiseRow(rows: rows, weights: wt + cb, c: c, weightStride: c, bias: bv)
            switch (k, s) {
            case (3, 1): interior.run(k: 3, s: 1, oxLo, oxHi, padLeft: padLeft, cb: cb, out: outRow, outStride: c, vact, slope, &sum)
            case (3, 2): interior.run(k: 3, s: 2, oxLo, oxHi, padLeft: padLeft, cb: cb, out: outRow, outStride: c, vact, slope, &sum)
            case (5, 1): interior.run(k: 5, s: 1, oxLo, oxHi, padLeft: padLeft, cb: cb, out: outRow, outStride: c, vact, slope, &sum)
            default: interior.run(k: 5, s: 2, oxLo, oxHi, padLeft: padLeft, cb: cb, out: outRow, outStride: c, vact, slope, &sum)
            }
            for ox in oxHi..<ow {
                let v = vact(edge.clipped(ox &* s &- padLeft, k: k, w: w, cb: cb), slope)
                sum += v
                store(v, outRow + (ox &* c &+ cb))
            }
            if let m = means { store(sum, m + cb) }
            cb &+= 16
        }
        // Channels past the last whole vector, one at a time.
        if cb < c {
            for ox in 0..<ow {
                let ix0 = ox &* s &- padLeft
                for ch in cb..<c {
                    var acc: Float = b?[ch] ?? 0
                    for i in 0..<k {
                        for j in max(0, -ix0)..<min(k, w &- ix0) {
                            acc += rows[i][(ix0 &+ j) &* c &+ ch] * wt[(i &* k &+ j) &* c &+ ch]
                        }
                    }
                    outRow[ox &* c &+ ch] = vact.scalar(acc, channel: ch)
                }
            }
            if let m = means {
                for ch in cb..<c {
                    var t: Float = 0
                    for ox in 0..<ow { t += outRow[ox &* c &+ ch] }
                    m[ch] = t
                }
            }
        }
    }
}

extension Conv2D {
    /// Small maps (late layers: 28×28 down to 7×7). Split by rows, a 7×7 map gave each thread three or four
    /// rows, and with a 5×5 window four of its seven columns were edge columns on the slow clipped path. Here
    /// each work item is one image's block of 16 channels: its input is copied into a zero-padded tile
    /// (`[(oh-1)·s+k] × [(ow-1)·s+k] × 16` floats, in L1/L2), so every output pixel takes the unrolled
    /// interior path, and there are enough items (C/16 per image) to keep both threads busy.
    func depthwiseTiled(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, vact: VectorActivation,
                        means: UnsafeMutablePointer<Float>?) {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let tiles = DepthwiseTiles(self, height: h, width: w, channels: c, padTop: padTop, padLeft: padLeft,
                                   out: out.data, vact: vact, means: means)
        let blocks = c / 16
        let src = UnsafePointer(x.data)
        parallelFor(n * blocks, minChunk: 1) { i0, i1 in
            let scratch = tiles.scratch()
            defer { scratch.deallocate() }
            for item in i0..<i1 {
                let img = item / blocks, cb = (item % blocks) &* 16
                tiles.run(image: img, channels: cb, from: src + img &* h &* w &* c + cb, pixelStride: c, scratch)
            }
        }
    }
}

/// The tiled depthwise kernel's layout (``Conv2D/depthwiseTiled(_:_:padTop:padLeft:vact:means:)``) and its
/// work item, one image's block of 16 channels, shared with the fused expansion (ExpandDepthwise.swift), which
/// hands each block over from its own output rather than from a whole input map.
struct DepthwiseTiles {
    let h: Int, w: Int, c: Int, oh: Int, ow: Int, k: Int, s: Int, padTop: Int, padLeft: Int
    /// Tile rows and columns.
    let th: Int, tw: Int
    /// Output pixels per block, the columns run as rows of blocks, and where those rows end.
    let pb: Int, fullColumns: Int, rowEnd: Int
    /// Whether the last `ow % pb` columns run as vertical blocks.
    let vertical: Bool
    let weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?
    let out: UnsafeMutablePointer<Float>
    let vact: VectorActivation
    let means: UnsafeMutablePointer<Float>?

    /// The layout of `conv` (an unrolled depthwise layer) over `height` × `width` maps of `channels` channels,
    /// writing `out` (`[N, H', W', C]`) and, if given, each output row's channel sums to `means` (`[N·H', C]`).
    init(_ conv: Conv2D, height h: Int, width w: Int, channels c: Int, padTop: Int, padLeft: Int,
         out: UnsafeMutablePointer<Float>, vact: VectorActivation, means: UnsafeMutablePointer<Float>?) {
        let geo = conv.geometry(height: h, width: w)
        let (oh, ow) = (geo.height, geo.width)
        let k = conv.kernel.h, s = conv.stride.h
        // Pixels go eight at a time (eight independent FMA chains); the last block's extra pixels read the
        // tile's zero columns past the map and are not stored. A width that is not a multiple of eight
        // (EfficientNet-B2's 9, 17 and 33) leaves a remainder that costs a whole block on every row: when
        // it saves blocks, the last `ow % 8` columns run instead as vertical blocks of eight rows (the same
        // kernel with rows and columns swapped, on transposed weights). A 9 × 9 map: 11 blocks, not 18.
        // (Blocks are `DepthwiseRow.pixels` wide: eight with AVX-512, four with AVX2.)
        let pb = DepthwiseRow.pixels
        let fullColumns = ow / pb * pb, rest = ow - fullColumns
        let vertical = rest > 0 && fullColumns > 0
            && oh * (fullColumns / pb) + rest * ((oh + pb - 1) / pb) < oh * ((ow + pb - 1) / pb)
        (self.h, self.w, self.c, self.oh, self.ow, self.k, self.s) = (h, w, c, oh, ow, k, s)
        (self.padTop, self.padLeft) = (padTop, padLeft)
        th = ((vertical ? (oh + pb - 1) / pb * pb : oh) - 1) * s + k
        tw = ((ow + pb - 1) / pb * pb - 1) * s + k
        (self.pb, self.fullColumns, self.rowEnd, self.vertical) = (pb, fullColumns, vertical ? fullColumns : ow, vertical)
        weights = UnsafePointer(conv.packed.data)
        bias = conv.bias.map { UnsafePointer($0.data) }
        (self.out, self.vact, self.means) = (out, vact, means)
    }

    /// A thread's buffers: the tile, the window's row pointers and the transposed weights.
    struct Scratch {
        let tile: UnsafeMutablePointer<Float>
        let rows: UnsafeMutablePointer<UnsafePointer<Float>>
        let transposed: UnsafeMutablePointer<Float>
        func deallocate() { tile.deallocate(); rows.deallocate(); transposed.deallocate() }
    }

    /// A thread's buffers with the tile's padding zeroed. The padding is the same for every item: zeroed once
    /// per thread (only the padding: zeroing the whole tile cost as much as the convolution for a 3×3/2 over
    /// 28×28×240), and each item copies only its map in.
    func scratch() -> Scratch {
        let tile = UnsafeMutablePointer<Float>.allocate(capacity: th * tw * 16)
        let copyRows = min(h, th - padTop), copyCols = min(w, tw - padLeft)
        tile.initialize(repeating: 0, count: padTop * tw * 16)
        (tile + (padTop + copyRows) * tw * 16).initialize(repeating: 0, count: (th - padTop - copyRows) * tw * 16)
        for iy in padTop..<(padTop + copyRows) {
            let line = tile + iy * tw * 16
            line.initialize(repeating: 0, count: padLeft * 16)
            (line + (padLeft + copyCols) * 16).initialize(repeating: 0, count: (tw - padLeft - copyCols) * 16)
        }
        return Scratch(tile: tile, rows: .allocate(capacity: k), transposed: .allocate(capacity: k * k * 16))
    }

    /// Image `img`'s output channels `cb ..< cb + 16`, from its input map at `from`: pixel (y, x)'s 16 channels
    /// at `from + (y·w + x)·pixelStride`.
    @inline(__always)
    func run(image img: Int, channels cb: Int, from image: UnsafePointer<Float>, pixelStride ps: Int, _ b: Scratch) {
        let (tile, rows, transposed) = (b.tile, b.rows, b.transposed)
        let (k, s, oh, ow, c, tw) = (self.k, self.s, self.oh, self.ow, self.c, self.tw)
        let (vact, wt, dst) = (self.vact, weights, out)
        let copyRows = min(h, th - padTop), copyCols = min(w, tw - padLeft)
        for iy in 0..<copyRows {
            let from = image + iy &* w &* ps, to = tile + ((iy &+ padTop) &* tw &+ padLeft) &* 16
            for ix in 0..<copyCols { store(load(from + ix &* ps), to + ix &* 16) }
        }
        let bv = bias.map { load($0 + cb) } ?? Vec()
        let slope = vact.slopes.map { load($0 + cb) } ?? Vec()
        for oy in 0..<oh {
            for i in 0..<k { rows[i] = UnsafePointer(tile + (oy &* s &+ i) &* tw &* 16) }
            let row = DepthwiseRow(rows: rows, weights: wt + cb, c: 16, weightStride: c, bias: bv)
            let r: Int = img &* oh &+ oy
            let outRow = dst + (r &* ow &* c &+ cb)
            var sum = Vec()
            var ox = 0
            while ox < rowEnd {
                let count = min(pb, rowEnd - ox), o = outRow + ox &* c, x0 = ox &* s &* 16
                switch (k, s) {
                case (3, 1): row.block(k: 3, s: 1, at: x0, count: count, out: o, outStride: c, vact, slope, &sum)
                case (3, 2): row.block(k: 3, s: 2, at: x0, count: count, out: o, outStride: c, vact, slope, &sum)
                case (5, 1): row.block(k: 5, s: 1, at: x0, count: count, out: o, outStride: c, vact, slope, &sum)
                default: row.block(k: 5, s: 2, at: x0, count: count, out: o, outStride: c, vact, slope, &sum)
                }
                ox &+= pb
            }
            if let m = means { store(sum, m + (r &* c &+ cb)) }
        }
        guard vertical else { return }
        // Window row i of a vertical block is tile column ox·s + i; its taps step down the tile.
        for i in 0..<k {
            for j in 0..<k {
                let from: Int = (j &* k &+ i) &* c &+ cb, to: Int = (i &* k &+ j) &* 16
                store(load(wt + from), transposed + to)
            }
        }
        for ox in fullColumns..<ow {
            for i in 0..<k { rows[i] = UnsafePointer(tile + (ox &* s &+ i) &* 16) }
            let column = DepthwiseRow(rows: rows, weights: transposed, c: tw &* 16, weightStride: 16, bias: bv)
            var oy = 0
            while oy < oh {
                let count = min(pb, oh - oy), r = img &* oh &+ oy, y0 = oy &* s &* tw &* 16
                let o = dst + ((r &* ow &+ ox) &* c &+ cb)
                var sum = Vec()
                switch (k, s) {
                case (3, 1): column.block(k: 3, s: 1, at: y0, count: count, out: o, outStride: ow &* c, vact, slope, &sum)
                case (3, 2): column.block(k: 3, s: 2, at: y0, count: count, out: o, outStride: ow &* c, vact, slope, &sum)
                case (5, 1): column.block(k: 5, s: 1, at: y0, count: count, out: o, outStride: ow &* c, vact, slope, &sum)
                default: column.block(k: 5, s: 2, at: y0, count: count, out: o, outStride: ow &* c, vact, slope, &sum)
                }
                // The image's channel sums only need each pixel once: this block's go to its first row.
                if let m = means { let p = m + (r &* c &+ cb); store(load(p) + sum, p) }
                oy &+= pb
            }
        }
    }
}

/// One output row of a depthwise convolution, for one block of 16 channels.
struct DepthwiseRow {
    /// The window's `k` input rows (a row of zeros where the window is in the padding).
    let rows: UnsafeMutablePointer<UnsafePointer<Float>>
    /// `[k, k, C]` weights, offset to this channel block.
    let weights: UnsafePointer<Float>
    /// Floats between neighbouring pixels of an input row (between rows, for a vertical block).
    let c: Int
    /// Floats between neighbouring taps of `weights` (the layer's channel count).
    let weightStride: Int
    let bias: Vec

    /// A window starting at input column `ix0` that the left or right edge cuts: only its valid taps.
    @inline(__always)
    func clipped(_ ix0: Int, k: Int, w: Int, cb: Int) -> Vec {
        let j0 = max(0, -ix0), j1 = min(k, w &- ix0)
        var acc = bias
        for i in 0..<k {
            let rp = rows[i] + cb
            var j = j0
            while j < j1 {
                acc = acc.addingProduct(load(rp + (ix0 &+ j) &* c), load(weights + (i &* k &+ j) &* weightStride))
                j &+= 1
            }
        }
        return acc
    }

    /// `n` output pixels (4 or 8, a literal) whose first window starts `x0` floats into each row (the rows must
    /// be long enough for all of them), of which the first `count` are activated, stored (`oc` floats apart
    /// from `o`) and added to `sum`. Transparent, so the pixels past `n` and their branches compile away.
    @_transparent
    func pixelBlock(_ n: Int, k: Int, s: Int, at x0: Int, count: Int, out o: UnsafeMutablePointer<Float>, outStride oc: Int,
                    _ vact: VectorActivation, _ slope: Vec, _ sum: inout Vec) {
        var a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias
        for i in 0..<k {
            let rp = rows[i] + x0
            for j in 0..<k {
                let wv = load(weights + (i &* k &+ j) &* weightStride)
                a0 = a0.addingProduct(load(rp + j &* c), wv)
                a1 = a1.addingProduct(load(rp + (s &+ j) &* c), wv)
                a2 = a2.addingProduct(load(rp + (2 &* s &+ j) &* c), wv)
                a3 = a3.addingProduct(load(rp + (3 &* s &+ j) &* c), wv)
                if n > 4 {
                    a4 = a4.addingProduct(load(rp + (4 &* s &+ j) &* c), wv)
                    a5 = a5.addingProduct(load(rp + (5 &* s &+ j) &* c), wv)
                    a6 = a6.addingProduct(load(rp + (6 &* s &+ j) &* c), wv)
                    a7 = a7.addingProduct(load(rp + (7 &* s &+ j) &* c), wv)
                }
            }
        }
        a0 = vact(a0, slope); a1 = vact(a1, slope); a2 = vact(a2, slope); a3 = vact(a3, slope)
        if n > 4 { a4 = vact(a4, slope); a5 = vact(a5, slope); a6 = vact(a6, slope); a7 = vact(a7, slope) }
        if count == n {
            // One add at a time: written as a tree, this sum compiled into lane-by-lane shuffles (15 % of a
            // 5×5 over 9×9×1248 without activation; 83 → 71 µs at one thread this way).
            sum += a0; sum += a1; sum += a2; sum += a3
            store(a0, o); store(a1, o + oc); store(a2, o + 2 &* oc); store(a3, o + 3 &* oc)
            if n > 4 {
                sum += a4; sum += a5; sum += a6; sum += a7
                store(a4, o + 4 &* oc); store(a5, o + 5 &* oc); store(a6, o + 6 &* oc); store(a7, o + 7 &* oc)
            }
            return
        }
        sum += a0; store(a0, o)
        if count > 1 { sum += a1; store(a1, o + oc) }
        if count > 2 { sum += a2; store(a2, o + 2 &* oc) }
        if n > 4 {
            if count > 3 { sum += a3; store(a3, o + 3 &* oc) }
            if count > 4 { sum += a4; store(a4, o + 4 &* oc) }
            if count > 5 { sum += a5; store(a5, o + 5 &* oc) }
            if count > 6 { sum += a6; store(a6, o + 6 &* oc) }
        }
    }

    /// Output pixels per block on this build's vector width. Eight 16-lane accumulators are 8 of AVX-512's 32
    /// registers, but all 16 of AVX2's (each is two ymm): there the eight-pixel block spilled to the stack
    /// (a third of the depthwise samples in `perf` were stack loads and stores), so AVX2 takes four.
    #if AFFECT_AVX512
    static let pixels = 8
    #else
    static let pixels = 4
    #endif

    /// ``pixels`` output pixels (`count` of them valid) with the build's block kernel.
    @_transparent
    func block(k: Int, s: Int, at x0: Int, count: Int, out o: UnsafeMutablePointer<Float>, outStride oc: Int,
               _ vact: VectorActivation, _ slope: Vec, _ sum: inout Vec) {
        #if AFFECT_AVX512
        pixelBlock(8, k: k, s: s, at: x0, count: count, out: o, outStride: oc, vact, slope, &sum)
        #else
        pixelBlock(4, k: k, s: s, at: x0, count: count, out: o, outStride: oc, vact, slope, &sum)
        #endif
    }

    /// Interior output columns `ox0..<ox1`, activated and stored, their sum added to `sum`. Always inlined
    /// (`@_transparent`; `@inline(__always)` was not honoured here), where `k` and `s` are literals.
    @_transparent
    func run(k: Int, s: Int, _ ox0: Int, _ ox1: Int, padLeft: Int, cb: Int, out: UnsafeMutablePointer<Float>,
             outStride oc: Int, _ vact: VectorActivation, _ slope: Vec, _ sum: inout Vec) {
        var ox = ox0
        while DepthwiseRow.pixels == 8 && ox &+ 8 <= ox1 {
            pixelBlock(8, k: k, s: s, at: (ox &* s &- padLeft) &* c &+ cb, count: 8, out: out + (ox &* oc &+ cb), outStride: oc,
                       vact, slope, &sum)
            ox &+= 8
        }
        while ox &+ 4 <= ox1 {
            pixelBlock(4, k: k, s: s, at: (ox &* s &- padLeft) &* c &+ cb, count: 4, out: out + (ox &* oc &+ cb), outStride: oc,
                       vact, slope, &sum)
            ox &+= 4
        }
        while ox < ox1 {
            var a0 = bias
            let x0 = (ox &* s &- padLeft) &* c &+ cb
            for i in 0..<k {
                let rp = rows[i] + x0
                for j in 0..<k { a0 = a0.addingProduct(load(rp + j &* c), load(weights + (i &* k &+ j) &* weightStride)) }
            }
            a0 = vact(a0, slope)
            sum += a0
            store(a0, out + (ox &* oc &+ cb))
            ox &+= 1
        }
    }
}
