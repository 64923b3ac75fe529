/// Channels-last kernels for one image's small maps, on the calling thread.
///
/// A 64×64 face through mini-Xception is ~20 MFLOP in ~25 layers: a layer is a few microseconds. Models that
/// size split a batch by image and call these on raw buffers they lay out once per pass, with no tensor
/// allocation per layer; a single image splits each layer's output rows across threads (the `rows:`
/// parameters), each call writing only its own rows.
/// Channel counts are multiples of 16 (one vector per pixel and 16-channel block).

/// Whether this build's vector registers hold sixteen 16-lane accumulators (AVX-512: 32 zmm) or eight (AVX2:
/// 16 ymm, two per 16-lane vector). Kernels that keep one accumulator per pixel or output channel size their
/// blocks by it: the depthwise interior here, the planar stem conv and pointwise (`PlanarConv.swift`).
@inline(__always) var wideRegisterFile: Bool {
    #if AFFECT_AVX512
    return true
    #else
    return false
    #endif
}

/// Depthwise 3×3, stride 1, TF "SAME" (one pixel of zero padding each side), no bias or activation.
///
/// - Parameters:
///   - x: `[height, width, c]`; `out` the same shape.
///   - weights: `[9][c]`, taps in row-major order.
///   - rows: the output rows to compute (all by default): disjoint ranges can run on different threads.
public func depthwise3x3Same(_ x: UnsafePointer<Float>, height h: Int, width w: Int, channels c: Int,
                             weights: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows: Range<Int>? = nil) {
    precondition(c % 16 == 0 && h > 0 && w > 0)
    let rows = rows ?? 0..<h
    precondition(rows.lowerBound >= 0 && rows.upperBound <= h, "depthwise3x3Same: rows \(rows) of \(h)")
    let rowStride = w &* c
    for oy in rows {
        // Kernel rows inside the image.
        let i0 = oy == 0 ? 1 : 0, i1 = oy == h - 1 ? 2 : 3
        let outRow = out + oy &* rowStride
        var cb = 0
        while cb < c {
            let wt = weights + cb
            /// Bounds-checked pixel (the first and last column).
            @inline(__always) func edge(_ ox: Int) {
                var acc = Vec()
                for i in i0..<i1 {
                    let row = x + ((oy + i - 1) &* rowStride &+ cb)
                    for j in 0..<3 where ox + j - 1 >= 0 && ox + j - 1 < w {
                        acc = acc.addingProduct(load(row + (ox + j - 1) &* c), load(wt + (i * 3 + j) &* c))
                    }
                }
                store(acc, outRow + (ox &* c &+ cb))
            }
            edge(0)
            var ox = 1
            // Interior, eight pixels per step: ten loaded pixels per kernel row feed 24 FMAs. AVX-512 only: eight
            // 16-lane accumulators are all 16 of AVX2's ymm registers, and the block spilled there.
            while wideRegisterFile && ox + 8 <= w - 1 {
                var a0 = Vec(), a1 = Vec(), a2 = Vec(), a3 = Vec(), a4 = Vec(), a5 = Vec(), a6 = Vec(), a7 = Vec()
                for i in i0..<i1 {
                    let p = x + ((oy + i - 1) &* rowStride &+ (ox - 1) &* c &+ cb)
                    let wl = load(wt + (i * 3) &* c), wm = load(wt + (i * 3 + 1) &* c), wr = load(wt + (i * 3 + 2) &* c)
                    let p0 = load(p), p1 = load(p + c), p2 = load(p + 2 &* c), p3 = load(p + 3 &* c), p4 = load(p + 4 &* c)
                    let p5 = load(p + 5 &* c), p6 = load(p + 6 &* c), p7 = load(p + 7 &* c), p8 = load(p + 8 &* c)
                    let p9 = load(p + 9 &* c)
                    a0 = a0.addingProduct(p0, wl).addingProduct(p1, wm).addingProduct(p2, wr)
                    a1 = a1.addingProduct(p1, wl).addingProduct(p2, wm).addingProduct(p3, wr)
                    a2 = a2.addingProduct(p2, wl).addingProduct(p3, wm).addingProduct(p4, wr)
                    a3 = a3.addingProduct(p3, wl).addingProduct(p4, wm).addingProduct(p5, wr)
                    a4 = a4.addingProduct(p4, wl).addingProduct(p5, wm).addingProduct(p6, wr)
                    a5 = a5.addingProduct(p5, wl).addingProduct(p6, wm).addingProduct(p7, wr)
                    a6 = a6.addingProduct(p6, wl).addingProduct(p7, wm).addingProduct(p8, wr)
                    a7 = a7.addingProduct(p7, wl).addingProduct(p8, wm).addingProduct(p9, wr)
                }
                let o = outRow + (ox &* c &+ cb)
                store(a0, o); store(a1, o + c); store(a2, o + 2 &* c); store(a3, o + 3 &* c)
                store(a4, o + 4 &* c); store(a5, o + 5 &* c); store(a6, o + 6 &* c); store(a7, o + 7 &* c)
                ox += 8
            }
            // Four pixels per step: six loaded pixels per kernel row feed twelve FMAs.
            while ox + 4 <= w - 1 {
                var a0 = Vec(), a1 = Vec(), a2 = Vec(), a3 = Vec()
                for i in i0..<i1 {
                    let p = x + ((oy + i - 1) &* rowStride &+ (ox - 1) &* c &+ cb)
                    let wl = load(wt + (i * 3) &* c), wm = load(wt + (i * 3 + 1) &* c), wr = load(wt + (i * 3 + 2) &* c)
                    let p0 = load(p), p1 = load(p + c), p2 = load(p + 2 &* c)
                    let p3 = load(p + 3 &* c), p4 = load(p + 4 &* c), p5 = load(p + 5 &* c)
                    a0 = a0.addingProduct(p0, wl).addingProduct(p1, wm).addingProduct(p2, wr)
                    a1 = a1.addingProduct(p1, wl).addingProduct(p2, wm).addingProduct(p3, wr)
                    a2 = a2.addingProduct(p2, wl).addingProduct(p3, wm).addingProduct(p4, wr)
                    a3 = a3.addingProduct(p3, wl).addingProduct(p4, wm).addingProduct(p5, wr)
                }
                let o = outRow + (ox &* c &+ cb)
                store(a0, o); store(a1, o + c); store(a2, o + 2 &* c); store(a3, o + 3 &* c)
                ox += 4
            }
            while ox < w - 1 {
                var a = Vec()
                for i in i0..<i1 {
                    let p = x + ((oy + i - 1) &* rowStride &+ (ox - 1) &* c &+ cb)
                    for j in 0..<3 { a = a.addingProduct(load(p + j &* c), load(wt + (i * 3 + j) &* c)) }
                }
                store(a, outRow + (ox &* c &+ cb))
                ox += 1
            }
            if w > 1 { edge(w - 1) }
            cb += 16
        }
    }
}

/// Max pooling `kernel × kernel`, stride 2, TF "SAME" (padding never wins the max): `[h, w, c]` →
/// `[⌈h/2⌉, ⌈w/2⌉, c]`; only the output rows `rows` (all by default), so disjoint ranges can run on different
/// threads.
public func maxPoolStride2Same(_ x: UnsafePointer<Float>, height h: Int, width w: Int, channels c: Int, kernel k: Int,
                               _ out: UnsafeMutablePointer<Float>, rows: Range<Int>? = nil) {
    precondition(c % 16 == 0 && h > 0 && w > 0 && k > 0)
    let (oh, ow) = ((h + 1) / 2, (w + 1) / 2)
    let rows = rows ?? 0..<oh
    precondition(rows.lowerBound >= 0 && rows.upperBound <= oh, "maxPoolStride2Same: rows \(rows) of \(oh)")
    let top = max((oh - 1) * 2 + k - h, 0) / 2, left = max((ow - 1) * 2 + k - w, 0) / 2
    for oy in rows {
        let ys = max(oy * 2 - top, 0), ye = min(oy * 2 - top + k, h)
        for ox in 0..<ow {
            let xs = max(ox * 2 - left, 0), xe = min(ox * 2 - left + k, w)
            let o = out + ((oy &* ow &+ ox) &* c)
            var cb = 0
            if k == 3 && ye - ys == 3 && xe - xs == 3 {
                // A whole 3×3 window: nine loads, no loop bookkeeping.
                let r0 = x + ((ys &* w &+ xs) &* c), r1 = r0 + w &* c, r2 = r1 + w &* c
                let c2 = 2 &* c
                while cb < c {
                    let m0 = vmax(vmax(load(r0 + cb), load(r0 + (c &+ cb))), load(r0 + (c2 &+ cb)))
                    let m1 = vmax(vmax(load(r1 + cb), load(r1 + (c &+ cb))), load(r1 + (c2 &+ cb)))
                    let m2 = vmax(vmax(load(r2 + cb), load(r2 + (c &+ cb))), load(r2 + (c2 &+ cb)))
                    store(vmax(vmax(m0, m1), m2), o + cb)
                    cb += 16
                }
                continue
            }
            while cb < c {
                var m = load(x + ((ys &* w &+ xs) &* c &+ cb))
                for yy in ys..<ye {
                    let row = x + (yy &* w &* c &+ cb)
                    for xx in xs..<xe { m = vmax(m, load(row + xx &* c)) }
                }
                store(m, o + cb)
                cb += 16
            }
        }
    }
}

/// Global average of a `kh × kw`, stride-1, TF "SAME" convolution with bias, without computing the map:
/// the average is linear, so each tap's weights meet the sum of the input pixels that tap ever sees
/// (a sub-rectangle of the image) once.
///
/// - Parameters:
///   - x: `[h, w, c]`, `c` a multiple of 16.
///   - weights: `[outChannels][kh · kw][c]`.
///   - out: `outChannels` averages.
public func convSameGlobalAverage(_ x: UnsafePointer<Float>, height h: Int, width w: Int, channels c: Int,
                                  kernel: (h: Int, w: Int), weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                  outChannels: Int, _ out: UnsafeMutablePointer<Float>) {
    precondition(c % 16 == 0 && h > 0 && w > 0)
    let (kh, kw) = kernel
    let top = (kh - 1) / 2, left = (kw - 1) / 2
    let taps = kh * kw
    withUnsafeTemporaryAllocation(of: Float.self, capacity: taps * c) { sums in
        let s = sums.baseAddress!
        for i in 0..<kh {
            // Output rows 0..<h read input rows oy + i − top; the ones inside the image:
            let ys = max(i - top, 0), ye = min(h + i - top, h)
            for j in 0..<kw {
                let xs = max(j - left, 0), xe = min(w + j - left, w)
                let dst = s + (i * kw + j) * c
                var cb = 0
                while cb < c {
                    var acc = Vec()
                    if ys < ye && xs < xe {
                        for yy in ys..<ye { for xx in xs..<xe { acc += load(x + ((yy &* w &+ xx) &* c &+ cb)) } }
                    }
                    store(acc, dst + cb)
                    cb += 16
                }
            }
        }
        let inv = 1 / Float(h * w)
        for o in 0..<outChannels {
            var acc = Vec()
            let wo = weights + o * taps * c
            for t in 0..<(taps * c / 16) { acc = acc.addingProduct(load(s + t &* 16), load(wo + t &* 16)) }
            out[o] = acc.sum() * inv + (bias?[o] ?? 0)
        }
    }
}

/// The even pixels of `[h, w, c]` (rows and columns 0, 2, 4, …): `[⌈h/2⌉, ⌈w/2⌉, c]`, the input of a 1×1
/// stride-2 convolution, which TF "SAME" does not pad; only the output rows `rows` (all by default).
public func subsampleStride2(_ x: UnsafePointer<Float>, height h: Int, width w: Int, channels c: Int,
                             _ out: UnsafeMutablePointer<Float>, rows: Range<Int>? = nil) {
    precondition(c % 16 == 0)
    let (oh, ow) = ((h + 1) / 2, (w + 1) / 2)
    let rows = rows ?? 0..<oh
    precondition(rows.lowerBound >= 0 && rows.upperBound <= oh, "subsampleStride2: rows \(rows) of \(oh)")
    var o = out + rows.lowerBound &* ow &* c
    for oy in rows {
        for ox in 0..<ow {
            let p = x + ((2 &* oy &* w &+ 2 &* ox) &* c)
            var cb = 0
            while cb < c { store(load(p + cb), o + cb); cb += 16 }
            o += c
        }
    }
}
