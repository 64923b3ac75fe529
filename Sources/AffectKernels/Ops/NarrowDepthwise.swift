/// Depthwise convolution for maps with fewer than 16 channels (1, 2, 4 or 8), stride 1.
///
/// The channel-vectorised kernels load 16 channels of one pixel per vector; with 8 channels (mini-Xception's
/// first module) that leaves everything to a scalar remainder loop. Here one vector holds `16 / C`
/// neighbouring pixels instead: in channels-last rows, pixels `x … x + 16/C − 1` of the input are 16 contiguous
/// floats, so for each tap one load feeds `16 / C` output pixels, with the tap's weights repeated across the
/// vector. The image is first copied into a zero-padded buffer, so no tap needs a bounds check.
extension Conv2D {
    /// Writes `act(depthwise(x) + bias)` into `out` (`[N, OH, OW, C]`); the `.depthwise(narrow: true, …)` kernel.
    func depthwiseNarrow(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation) {
        let (n, c) = (x.shape[0], x.shape[3])
        let (oh, ow) = (out.shape[1], out.shape[2])
        let (kh, kw) = kernel
        let group = 16 / c                                  // pixels per vector
        let groups = (ow + group - 1) / group
        // Padded rows: every window of every (possibly partial) vector group stays inside.
        let (ph, pw) = (oh + kh - 1, groups * group + kw - 1)
        let padded = Tensor.zeros([ph, pw, c])
        // Tap weights repeated across the pixels of a vector, and the bias likewise.
        let taps = Tensor(uninitialized: [kh * kw, 16])
        for t in 0..<kh * kw { for l in 0..<16 { taps.data[t * 16 + l] = packed.data[t * c + l % c] } }
        var biasVector = Vec()
        if let b = bias { for l in 0..<16 { biasVector[l] = b.data[l % c] } }
        let tp = UnsafePointer(taps.data)
        for img in 0..<n {
            copyPadded(x, image: img, into: padded, padTop: padTop, padLeft: padLeft)
            let pad = padded.data
            let dst = out.data + img * oh * ow * c
            parallelFor(oh, minChunk: max(1, 2048 / max(ow * c, 1))) { y0, y1 in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { spill in
                    for oy in y0..<y1 {
                        let outRow = dst + oy * ow * c
                        for g in 0..<groups {
                            let x0 = g * group
                            var acc = biasVector
                            for i in 0..<kh {
                                let row = UnsafePointer(pad) + ((oy + i) * pw + x0) * c
                                for j in 0..<kw { acc = acc.addingProduct(load(row + j * c), load(tp + (i * kw + j) * 16)) }
                            }
                            let valid = min(group, ow - x0) * c
                            if valid == 16 {
                                store(acc, outRow + x0 * c)
                            } else {
                                store(acc, spill.baseAddress!)
                                (outRow + x0 * c).update(from: spill.baseAddress!, count: valid)
                            }
                        }
                        applyActivation(act, outRow, count: ow * c, channels: c)
                    }
                }
            }
        }
    }
}

/// Dense convolution with 8 output channels, stride 1 (mini-Xception's two stem layers: 1 → 8 and 8 → 8).
///
/// im2col + GEMM spent more time gathering 9- and 72-wide rows than multiplying them. Here each output pixel's
/// 8 channels are one 8-lane vector, four pixels at a time: each (tap, input channel) step loads its 8
/// weights once and does four FMAs with the pixels' input values broadcast. The image is first copied into a
/// zero-padded buffer, so no tap needs a bounds check.
extension Conv2D {
    /// Writes `act(conv(x) + bias)` into `out` (`[N, OH, OW, 8]`); the `.directNarrow` kernel.
    func directNarrow(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation) {
        typealias V8 = SIMD8<Float>
        let (n, cin) = (x.shape[0], x.shape[3])
        let (oh, ow) = (out.shape[1], out.shape[2])
        let (kh, kw) = kernel
        let quads = (ow + 3) / 4
        let (ph, pw) = (oh + kh - 1, 4 * quads + kw - 1)
        let padded = Tensor.zeros([ph, pw, cin])
        // Packed rows are [kh·kw·Cin, 8]: step (i, j, ic) holds the 8 output channels' weights.
        let wp = UnsafeRawPointer(packed.data)
        var biasVector = V8()
        if let b = bias { for l in 0..<8 { biasVector[l] = b.data[l] } }
        for img in 0..<n {
            copyPadded(x, image: img, into: padded, padTop: padTop, padLeft: padLeft)
            let pad = padded.data
            let dst = out.data + img * oh * ow * 8
            parallelFor(oh, minChunk: max(1, 1024 / max(ow * cin, 1))) { y0, y1 in
                for oy in y0..<y1 {
                    let outRow = dst + oy * ow * 8
                    for q in 0..<quads {
                        let x0 = 4 * q
                        var a0 = biasVector, a1 = biasVector, a2 = biasVector, a3 = biasVector
                        var wq = wp
                        for i in 0..<kh {
                            // A kernel row's taps over the input channels are kw·Cin contiguous floats per pixel.
                            let p0 = UnsafePointer(pad) + ((oy &+ i) &* pw &+ x0) &* cin
                            let p1 = p0 + cin, p2 = p0 + 2 &* cin, p3 = p0 + 3 &* cin
                            for t in 0..<(kw &* cin) {
                                let wv = wq.loadUnaligned(as: V8.self)
                                a0 = a0.addingProduct(V8(repeating: p0[t]), wv)
                                a1 = a1.addingProduct(V8(repeating: p1[t]), wv)
                                a2 = a2.addingProduct(V8(repeating: p2[t]), wv)
                                a3 = a3.addingProduct(V8(repeating: p3[t]), wv)
                                wq += 32
                            }
                        }
                        let o = UnsafeMutableRawPointer(outRow + x0 * 8)
                        o.storeBytes(of: a0, as: V8.self)
                        if x0 + 1 < ow { o.storeBytes(of: a1, toByteOffset: 32, as: V8.self) }
                        if x0 + 2 < ow { o.storeBytes(of: a2, toByteOffset: 64, as: V8.self) }
                        if x0 + 3 < ow { o.storeBytes(of: a3, toByteOffset: 96, as: V8.self) }
                    }
                    applyActivation(act, outRow, count: ow * 8, channels: 8)
                }
            }
        }
    }
}

/// Copies image `img` of channels-last `x` (`[N, H, W, C]`) into the zero-filled `padded` (`[PH, PW, C]`) with
/// its top-left pixel at (`padTop`, `padLeft`), clipped to the buffer; the rest of the buffer stays zero.
private func copyPadded(_ x: Tensor, image img: Int, into padded: Tensor, padTop: Int, padLeft: Int) {
    let (h, w, c) = (x.shape[1], x.shape[2], x.shape[3])
    let (ph, pw) = (padded.shape[0], padded.shape[1])
    let src = x.data + img * h * w * c, pad = padded.data
    let firstX = max(0, -padLeft), lastX = min(w, pw - padLeft)
    guard lastX > firstX else { return }
    for iy in 0..<h {
        let py = iy + padTop
        guard py >= 0 && py < ph else { continue }
        (pad + (py * pw + firstX + padLeft) * c).update(from: src + (iy * w + firstX) * c, count: (lastX - firstX) * c)
    }
}
