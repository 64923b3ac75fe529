/// Kernels for the narrow first layers of a small CNN (mini-Xception's 8-channel stem), on *planar* maps.
///
/// With 8 channels, channels-last fills half an AVX-512 vector per pixel and every tap needs a broadcast per
/// pixel. Planar (one `rows × rowStride` plane per channel) lets one vector hold 16 neighbouring pixels of one
/// channel: a 3×3 tap is one unaligned load, and each load feeds one FMA per output channel with that tap's
/// weight broadcast from memory.
///
/// **Layout contract.** Every plane of a map has the same row stride `s`, a multiple of 16; kernels compute
/// all `s` columns of each row (columns past the map's width are don't-care values) and read up to two
/// columns past a row's end, which is the next row's start. Callers therefore keep one initialised guard
/// row after the last plane of every map a kernel reads. All kernels run on the calling thread.

/// Packs an OIHW `[8, cin, 3, 3]` weight for ``planarConv3x3x8(_:inChannels:inPlane:_:outPlane:rowStride:rows:weights:bias:relu:)``:
/// `[cin · 9][8]`, the eight outputs' weights for each (input channel, tap).
public func packPlanarConv8(_ weight: Tensor) -> Tensor {
    precondition(weight.rank == 4 && weight.shape[0] == 8 && weight.shape[2] == 3 && weight.shape[3] == 3,
                 "packPlanarConv8 expects [8, cin, 3, 3], got \(weight.shape)")
    let cin = weight.shape[1]
    let p = Tensor(uninitialized: [cin * 9, 8])
    for o in 0..<8 { for t in 0..<(cin * 9) { p.data[t * 8 + o] = weight.data[o * cin * 9 + t] } }
    return p
}

/// 3×3 convolution, stride 1, no padding, `cin` planes → 8 planes, with bias and optional ReLU.
///
/// `x` points at input pixel (0, 0) of plane 0 and `out` at output pixel (0, 0) of plane 0 (inside a
/// padded map if the caller wants one); both use row stride `s`. Output row `y` reads input rows `y … y+2`.
public func planarConv3x3x8(_ x: UnsafePointer<Float>, inChannels cin: Int, inPlane: Int,
                            _ out: UnsafeMutablePointer<Float>, outPlane: Int, rowStride s: Int, rows: Int,
                            weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, relu: Bool) {
    precondition(s % 16 == 0)
    let zero = Vec()
    // Output channels per pass of the 16-pixel loop: all eight with AVX-512; with AVX2, whose 16 ymm registers
    // hold eight 16-lane accumulators but not sixteen, four per pass over the same input rows.
    let perPass = wideRegisterFile ? 8 : 4
    for oy in 0..<rows {
        var x0 = 0
        // 32 pixels per step (AVX-512 only: 32 zmm registers): each broadcast weight feeds two FMAs (sixteen
        // accumulators), so the loads of weights no longer outnumber the FMAs.
        while wideRegisterFile && x0 + 32 <= s {
            var a0 = Vec(repeating: bias[0]), a1 = Vec(repeating: bias[1]), a2 = Vec(repeating: bias[2])
            var a3 = Vec(repeating: bias[3]), a4 = Vec(repeating: bias[4]), a5 = Vec(repeating: bias[5])
            var a6 = Vec(repeating: bias[6]), a7 = Vec(repeating: bias[7])
            var b0 = a0, b1 = a1, b2 = a2, b3 = a3, b4 = a4, b5 = a5, b6 = a6, b7 = a7
            var wp = weights
            for ic in 0..<cin {
                let plane = x + (ic &* inPlane &+ oy &* s &+ x0)
                for i in 0..<3 {
                    let r = plane + i &* s
                    for j in 0..<3 {
                        let u = load(r + j), v = load(r + j + 16)
                        var k = Vec(repeating: wp[0]); a0 = a0.addingProduct(u, k); b0 = b0.addingProduct(v, k)
                        k = Vec(repeating: wp[1]); a1 = a1.addingProduct(u, k); b1 = b1.addingProduct(v, k)
                        k = Vec(repeating: wp[2]); a2 = a2.addingProduct(u, k); b2 = b2.addingProduct(v, k)
                        k = Vec(repeating: wp[3]); a3 = a3.addingProduct(u, k); b3 = b3.addingProduct(v, k)
                        k = Vec(repeating: wp[4]); a4 = a4.addingProduct(u, k); b4 = b4.addingProduct(v, k)
                        k = Vec(repeating: wp[5]); a5 = a5.addingProduct(u, k); b5 = b5.addingProduct(v, k)
                        k = Vec(repeating: wp[6]); a6 = a6.addingProduct(u, k); b6 = b6.addingProduct(v, k)
                        k = Vec(repeating: wp[7]); a7 = a7.addingProduct(u, k); b7 = b7.addingProduct(v, k)
                        wp += 8
                    }
                }
            }
            if relu {
                a0 = vmax(a0, zero); a1 = vmax(a1, zero); a2 = vmax(a2, zero); a3 = vmax(a3, zero)
                a4 = vmax(a4, zero); a5 = vmax(a5, zero); a6 = vmax(a6, zero); a7 = vmax(a7, zero)
                b0 = vmax(b0, zero); b1 = vmax(b1, zero); b2 = vmax(b2, zero); b3 = vmax(b3, zero)
                b4 = vmax(b4, zero); b5 = vmax(b5, zero); b6 = vmax(b6, zero); b7 = vmax(b7, zero)
            }
            let o = out + (oy &* s &+ x0)
            store(a0, o); store(a1, o + outPlane); store(a2, o + 2 &* outPlane); store(a3, o + 3 &* outPlane)
            store(a4, o + 4 &* outPlane); store(a5, o + 5 &* outPlane); store(a6, o + 6 &* outPlane)
            store(a7, o + 7 &* outPlane)
            let q = o + 16
            store(b0, q); store(b1, q + outPlane); store(b2, q + 2 &* outPlane); store(b3, q + 3 &* outPlane)
            store(b4, q + 4 &* outPlane); store(b5, q + 5 &* outPlane); store(b6, q + 6 &* outPlane)
            store(b7, q + 7 &* outPlane)
            x0 += 32
        }
        while x0 < s {
            for first in stride(from: 0, to: 8, by: perPass) {
                let o = out + (first &* outPlane &+ oy &* s &+ x0)
                var a0 = Vec(repeating: bias[first]), a1 = Vec(repeating: bias[first + 1])
                var a2 = Vec(repeating: bias[first + 2]), a3 = Vec(repeating: bias[first + 3])
                var a4 = Vec(), a5 = Vec(), a6 = Vec(), a7 = Vec()
                if perPass == 8 {
                    a4 = Vec(repeating: bias[4]); a5 = Vec(repeating: bias[5]); a6 = Vec(repeating: bias[6]); a7 = Vec(repeating: bias[7])
                }
                var wp = weights + first
                for ic in 0..<cin {
                    let plane = x + (ic &* inPlane &+ oy &* s &+ x0)
                    for i in 0..<3 {
                        let r = plane + i &* s
                        for j in 0..<3 {
                            // One load of 16 pixels, one FMA per output channel of the pass.
                            let v = load(r + j)
                            a0 = a0.addingProduct(v, Vec(repeating: wp[0])); a1 = a1.addingProduct(v, Vec(repeating: wp[1]))
                            a2 = a2.addingProduct(v, Vec(repeating: wp[2])); a3 = a3.addingProduct(v, Vec(repeating: wp[3]))
                            if perPass == 8 {
                                a4 = a4.addingProduct(v, Vec(repeating: wp[4])); a5 = a5.addingProduct(v, Vec(repeating: wp[5]))
                                a6 = a6.addingProduct(v, Vec(repeating: wp[6])); a7 = a7.addingProduct(v, Vec(repeating: wp[7]))
                            }
                            wp += 8
                        }
                    }
                }
                if relu { a0 = vmax(a0, zero); a1 = vmax(a1, zero); a2 = vmax(a2, zero); a3 = vmax(a3, zero) }
                store(a0, o); store(a1, o + outPlane); store(a2, o + 2 &* outPlane); store(a3, o + 3 &* outPlane)
                if perPass == 8 {
                    if relu { a4 = vmax(a4, zero); a5 = vmax(a5, zero); a6 = vmax(a6, zero); a7 = vmax(a7, zero) }
                    store(a4, o + 4 &* outPlane); store(a5, o + 5 &* outPlane); store(a6, o + 6 &* outPlane)
                    store(a7, o + 7 &* outPlane)
                }
            }
            x0 += 16
        }
    }
}

/// Depthwise 3×3, stride 1, on planes that already carry their zero padding; no bias, no activation.
///
/// `x` points at padded pixel (0, 0) of plane 0 (the window of output (0, 0)); `weights` is `[channels][9]`.
public func planarDepthwise3x3(_ x: UnsafePointer<Float>, channels: Int, inPlane: Int,
                               _ out: UnsafeMutablePointer<Float>, outPlane: Int, rowStride s: Int, rows: Int,
                               weights: UnsafePointer<Float>) {
    precondition(s % 16 == 0)
    for c in 0..<channels {
        let k = weights + c * 9
        let w0 = Vec(repeating: k[0]), w1 = Vec(repeating: k[1]), w2 = Vec(repeating: k[2])
        let w3 = Vec(repeating: k[3]), w4 = Vec(repeating: k[4]), w5 = Vec(repeating: k[5])
        let w6 = Vec(repeating: k[6]), w7 = Vec(repeating: k[7]), w8 = Vec(repeating: k[8])
        let src = x + c &* inPlane, dst = out + c &* outPlane
        for oy in 0..<rows {
            let r0 = src + oy &* s, r1 = r0 + s, r2 = r1 + s
            var x0 = 0
            while x0 < s {
                // One chain per kernel row, summed at the end: three short dependency chains.
                var a = load(r0 + x0) * w0, b = load(r1 + x0) * w3, d = load(r2 + x0) * w6
                a = a.addingProduct(load(r0 + x0 + 1), w1); b = b.addingProduct(load(r1 + x0 + 1), w4)
                d = d.addingProduct(load(r2 + x0 + 1), w7)
                a = a.addingProduct(load(r0 + x0 + 2), w2); b = b.addingProduct(load(r1 + x0 + 2), w5)
                d = d.addingProduct(load(r2 + x0 + 2), w8)
                store(a + b + d, dst + (oy &* s &+ x0))
                x0 += 16
            }
        }
    }
}

/// Pointwise convolution from planes to channels-last: `out[y, x, :] = act(bias + Σ_c x_c[y, x] · W[c, :])`.
///
/// Reads columns `0 ..< width` of each plane row; writes `[rows, width, cout]` densely. `weights` is
/// `[cin][cout]`, `cout` a multiple of 16.
public func planarPointwiseToNHWC(_ x: UnsafePointer<Float>, inChannels cin: Int, inPlane: Int, rowStride s: Int,
                                  rows: Int, width: Int, _ out: UnsafeMutablePointer<Float>, outChannels cout: Int,
                                  weights: UnsafePointer<Float>, bias: UnsafePointer<Float>, relu: Bool) {
    precondition(cout % 16 == 0)
    let zero = Vec()
    @inline(__always) func act(_ v: Vec) -> Vec { relu ? vmax(v, zero) : v }
    for oy in 0..<rows {
        let row = x + oy &* s
        let outRow = out + oy &* width &* cout
        var cb = 0
        while cb < cout {
            let bv = load(bias + cb)
            var px = 0
            // Eight pixels per step with AVX-512 (eight independent accumulators, one weight load per input
            // channel); four with AVX2, whose 16 ymm registers hold eight accumulators but not sixteen.
            let step = wideRegisterFile ? 8 : 4
            while px + step <= width {
                var a0 = bv, a1 = bv, a2 = bv, a3 = bv, a4 = bv, a5 = bv, a6 = bv, a7 = bv
                var p = row + px
                var wp = weights + cb
                for _ in 0..<cin {
                    let wv = load(wp)
                    a0 = a0.addingProduct(Vec(repeating: p[0]), wv); a1 = a1.addingProduct(Vec(repeating: p[1]), wv)
                    a2 = a2.addingProduct(Vec(repeating: p[2]), wv); a3 = a3.addingProduct(Vec(repeating: p[3]), wv)
                    if step == 8 {
                        a4 = a4.addingProduct(Vec(repeating: p[4]), wv); a5 = a5.addingProduct(Vec(repeating: p[5]), wv)
                        a6 = a6.addingProduct(Vec(repeating: p[6]), wv); a7 = a7.addingProduct(Vec(repeating: p[7]), wv)
                    }
                    p += inPlane
                    wp += cout
                }
                let o = outRow + (px &* cout &+ cb)
                store(act(a0), o); store(act(a1), o + cout); store(act(a2), o + 2 &* cout); store(act(a3), o + 3 &* cout)
                if step == 8 {
                    store(act(a4), o + 4 &* cout); store(act(a5), o + 5 &* cout); store(act(a6), o + 6 &* cout)
                    store(act(a7), o + 7 &* cout)
                }
                px += step
            }
            while px < width {
                var a = bv
                for c in 0..<cin { a = a.addingProduct(Vec(repeating: row[c &* inPlane &+ px]), load(weights + (c &* cout &+ cb))) }
                store(act(a), outRow + (px &* cout &+ cb))
                px += 1
            }
            cb += 16
        }
    }
}
