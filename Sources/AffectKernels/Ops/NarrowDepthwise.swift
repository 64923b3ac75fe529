/// Depthwise convolution for maps with fewer than 16 channels (1, 2, 4 or 8), stride 1.
///
/// The channel-vectorised kernels load 16 channels of one pixel per vector; with 8 channels (mini-Xception's
/// first module) that leaves everything to a scalar remainder loop. Here one vector holds `16 / C`
/// neighbouring pixels instead: in channels-last rows, pixels `x … x + 16/C − 1` of the input are 16 contiguous
/// floats, so for each tap one load feeds `16 / C` output pixels, with the tap's weights repeated across the
/// vector. The image is first copied into a zero-padded buffer, so no tap needs a bounds check.
extension Conv2D {
    /// Whether ``depthwiseNarrow(_:_:padTop:padLeft:act:)`` handles this layer.
    var isNarrowDepthwise: Bool {
        isDepthwise && 16 % inChannels == 0 && inChannels < 16 && stride == (1, 1) && dilation == (1, 1)
    }

    /// Writes `act(depthwise(x) + bias)` into `out` (`[N, OH, OW, C]`); needs ``isNarrowDepthwise``.
    func depthwiseNarrow(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation) {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
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
            let src = x.data + img * h * w * c, pad = padded.data
            for iy in 0..<h {
                let py = iy + padTop
                guard py >= 0 && py < ph else { continue }
                let firstX = max(0, -padLeft), lastX = min(w, pw - padLeft)
                if lastX > firstX {
                    (pad + (py * pw + firstX + padLeft) * c).update(from: src + (iy * w + firstX) * c, count: (lastX - firstX) * c)
                }
            }
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
/// im2col + GEMM spent more time gathering 9- and 72-wide rows than multiplying them. Here one vector holds
/// the 8 outputs of two neighbouring pixels; each (tap, input channel) step broadcasts the two pixels' input
/// values into the vector's halves and does one FMA with that step's 8 weights repeated twice. The image is
/// first copied into a zero-padded buffer, so no tap needs a bounds check.
extension Conv2D {
    /// Whether ``directNarrow(_:_:padTop:padLeft:act:)`` handles this layer.
    var isNarrowDirect: Bool { groups == 1 && outChannels == 8 && stride == (1, 1) && dilation == (1, 1) }

    /// Writes `act(conv(x) + bias)` into `out` (`[N, OH, OW, 8]`); needs ``isNarrowDirect``.
    func directNarrow(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation) {
        let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (out.shape[1], out.shape[2])
        let (kh, kw) = kernel
        let pairs = (ow + 1) / 2
        let (ph, pw) = (oh + kh - 1, 2 * pairs + kw - 1)
        let padded = Tensor.zeros([ph, pw, cin])
        // Step (i, j, ic): the 8 output channels' weights, twice ([kh·kw·Cin, 8] packed rows, repeated).
        let steps = kh * kw * cin
        let wv = Tensor(uninitialized: [steps, 16])
        for s in 0..<steps { for l in 0..<16 { wv.data[s * 16 + l] = packed.data[s * 8 + l % 8] } }
        var biasVector = Vec()
        if let b = bias { for l in 0..<16 { biasVector[l] = b.data[l % 8] } }
        let wp = UnsafePointer(wv.data)
        for img in 0..<n {
            let src = x.data + img * h * w * cin, pad = padded.data
            for iy in 0..<h {
                let py = iy + padTop
                guard py >= 0 && py < ph else { continue }
                let firstX = max(0, -padLeft), lastX = min(w, pw - padLeft)
                if lastX > firstX {
                    (pad + (py * pw + firstX + padLeft) * cin).update(from: src + (iy * w + firstX) * cin, count: (lastX - firstX) * cin)
                }
            }
            let dst = out.data + img * oh * ow * 8
            parallelFor(oh, minChunk: max(1, 1024 / max(ow * cin, 1))) { y0, y1 in
                withUnsafeTemporaryAllocation(of: Float.self, capacity: 16) { spill in
                    for oy in y0..<y1 {
                        let outRow = dst + oy * ow * 8
                        for pair in 0..<pairs {
                            let x0 = 2 * pair
                            var acc = biasVector
                            var s = 0
                            for i in 0..<kh {
                                for j in 0..<kw {
                                    let left = UnsafePointer(pad) + ((oy + i) * pw + x0 + j) * cin, right = left + cin
                                    for ic in 0..<cin {
                                        let v = Vec(lowHalf: SIMD8(repeating: left[ic]), highHalf: SIMD8(repeating: right[ic]))
                                        acc = acc.addingProduct(v, load(wp + s * 16))
                                        s += 1
                                    }
                                }
                            }
                            if x0 + 1 < ow {
                                store(acc, outRow + x0 * 8)
                            } else {
                                store(acc, spill.baseAddress!)
                                (outRow + x0 * 8).update(from: spill.baseAddress!, count: 8)
                            }
                        }
                        applyActivation(act, outRow, count: ow * 8, channels: 8)
                    }
                }
            }
        }
    }
}
