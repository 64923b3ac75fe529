/// The depthwise kernel for the common shapes: 3×3 and 5×5 windows, stride 1 or 2, no dilation.
///
/// Per output row and block of 16 channels, interior pixels go eight (then four, then one) at a time with
/// the window size and stride as constants, so the tap loops unroll and each input vector loaded feeds every
/// pixel of the block whose window covers it (3×3/1: ten input loads per kernel row for 24 FMAs, where one
/// pixel at a time loads 24). Kernel rows that fall in the padding read a row of zeros instead of being
/// skipped, so the top and bottom rows take the same path; only the left and right edge columns, whose
/// windows are cut, run a per-pixel loop over their valid taps.
extension Conv2D {
    /// Runs the depthwise convolution if this layer has one of the unrolled shapes; false otherwise.
    func depthwiseUnrolled(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation,
                           means: UnsafeMutablePointer<Float>?) -> Bool {
        let (kh, kw) = kernel
        guard kh == kw, kh == 3 || kh == 5, stride.h == stride.w, stride.h == 1 || stride.h == 2,
              dilation == (1, 1) else { return false }
        let vact = VectorActivation(act)
        guard !vact.needsRowPass else { return false }
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (out.shape[1], out.shape[2])
        let k = kh, s = stride.h
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
                let outRow = dst + r &* ow &* c
                var cb = 0
                while cb &+ 16 <= c {
                    let bv = b.map { load($0 + cb) } ?? Vec()
                    let slope = vact.slopes.map { load($0 + cb) } ?? Vec()
                    var sum = Vec()
                    let edge = DepthwiseRow(rows: rows, weights: wt + cb, c: c, bias: bv)
                    for ox in 0..<oxLo {
                        let v = vact(edge.clipped(ox &* s &- padLeft, k: k, w: w, cb: cb), slope)
                        sum += v
                        store(v, outRow + (ox &* c &+ cb))
                    }
                    let interior = DepthwiseRow(rows: rows, weights: wt + cb, c: c, bias: bv)
                    switch (k, s) {
                    case (3, 1): interior.run(k: 3, s: 1, oxLo, oxHi, padLeft: padLeft, cb: cb, out: outRow, vact, slope, &sum)
                    case (3, 2): interior.run(k: 3, s: 2, oxLo, oxHi, padLeft: padLeft, cb: cb, out: outRow, vact, slope, &sum)
                    case (5, 1): interior.run(k: 5, s: 1, oxLo, oxHi, padLeft: padLeft, cb: cb, out: outRow, vact, slope, &sum)
                    default: interior.run(k: 5, s: 2, oxLo, oxHi, padLeft: padLeft, cb: cb, out: outRow, vact, slope, &sum)
                    }
                    for ox in oxHi..<ow {
                        let v = vact(edge.clipped(ox &* s &- padLeft, k: k, w: w, cb: cb), slope)
                        sum += v
                        store(v, outRow + (ox &* c &+ cb))
                    }
                    if let m = means { store(sum, m + (r &* c &+ cb)) }
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
                            m[r &* c &+ ch] = t
                        }
                    }
                }
            }
        }
        withExtendedLifetime(zeros) {}
        return true
    }
}

/// One output row of a depthwise convolution, for one block of 16 channels.
struct DepthwiseRow {
    /// The window's `k` input rows (a row of zeros where the window is in the padding).
    let rows: UnsafeMutablePointer<UnsafePointer<Float>>
    /// `[k, k, c]` weights, offset to this channel block.
    let weights: UnsafePointer<Float>
    let c: Int
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
                acc = acc.addingProduct(load(rp + (ix0 &+ j) &* c), load(weights + (i &* k &+ j) &* c))
                j &+= 1
            }
        }
        return acc
    }

    /// Interior output columns `ox0..<ox1`, activated and stored, their sum added to `sum`. Always inlined
    /// (`@_transparent`; `@inline(__always)` was not honoured here), where `k` and `s` are literals.
    @_transparent
    func run(k: Int, s: Int, _ ox0: Int, _ ox1: Int, padLeft: Int, cb: Int, out: UnsafeMutablePointer<Float>,
             _ vact: VectorActivation, _ slope: Vec, _ sum: inout Vec) {
        var ox = ox0
        while ox &+ 8 <= ox1 {
            var a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias
            let x0 = (ox &* s &- padLeft) &* c &+ cb
            for i in 0..<k {
                let rp = rows[i] + x0
                for j in 0..<k {
                    let wv = load(weights + (i &* k &+ j) &* c)
                    a0 = a0.addingProduct(load(rp + j &* c), wv)
                    a1 = a1.addingProduct(load(rp + (s &+ j) &* c), wv)
                    a2 = a2.addingProduct(load(rp + (2 &* s &+ j) &* c), wv)
                    a3 = a3.addingProduct(load(rp + (3 &* s &+ j) &* c), wv)
                    a4 = a4.addingProduct(load(rp + (4 &* s &+ j) &* c), wv)
                    a5 = a5.addingProduct(load(rp + (5 &* s &+ j) &* c), wv)
                    a6 = a6.addingProduct(load(rp + (6 &* s &+ j) &* c), wv)
                    a7 = a7.addingProduct(load(rp + (7 &* s &+ j) &* c), wv)
                }
            }
            a0 = vact(a0, slope); a1 = vact(a1, slope); a2 = vact(a2, slope); a3 = vact(a3, slope)
            a4 = vact(a4, slope); a5 = vact(a5, slope); a6 = vact(a6, slope); a7 = vact(a7, slope)
            sum += ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))
            let o = out + (ox &* c &+ cb)
            store(a0, o); store(a1, o + c); store(a2, o + 2 &* c); store(a3, o + 3 &* c)
            store(a4, o + 4 &* c); store(a5, o + 5 &* c); store(a6, o + 6 &* c); store(a7, o + 7 &* c)
            ox &+= 8
        }
        while ox &+ 4 <= ox1 {
            var a0 = bias, a1 = bias, a2 = bias, a3 = bias
            let x0 = (ox &* s &- padLeft) &* c &+ cb
            for i in 0..<k {
                let rp = rows[i] + x0
                for j in 0..<k {
                    let wv = load(weights + (i &* k &+ j) &* c)
                    a0 = a0.addingProduct(load(rp + j &* c), wv)
                    a1 = a1.addingProduct(load(rp + (s &+ j) &* c), wv)
                    a2 = a2.addingProduct(load(rp + (2 &* s &+ j) &* c), wv)
                    a3 = a3.addingProduct(load(rp + (3 &* s &+ j) &* c), wv)
                }
            }
            a0 = vact(a0, slope); a1 = vact(a1, slope); a2 = vact(a2, slope); a3 = vact(a3, slope)
            sum += (a0 + a1) + (a2 + a3)
            let o = out + (ox &* c &+ cb)
            store(a0, o); store(a1, o + c); store(a2, o + 2 &* c); store(a3, o + 3 &* c)
            ox &+= 4
        }
        while ox < ox1 {
            var a0 = bias
            let x0 = (ox &* s &- padLeft) &* c &+ cb
            for i in 0..<k {
                let rp = rows[i] + x0
                for j in 0..<k { a0 = a0.addingProduct(load(rp + j &* c), load(weights + (i &* k &+ j) &* c)) }
            }
            a0 = vact(a0, slope)
            sum += a0
            store(a0, out + (ox &* c &+ cb))
            ox &+= 1
        }
    }
}
