/// The stems' direct convolution: few input channels (at most 4), outputs a multiple of 16.
extension Conv2D {
    /// Stems (3 input channels): a GEMM with K = 27 spends its time packing; accumulating the output
    /// channels in vectors straight from the input is several times faster. Up to 64 output channels
    /// (four vectors) per pass over the window, so each input value is broadcast once for all of them.
    func direct(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation, nchw: Bool = false) {
        let (n, h, w, cin) = nchw ? (x.shape[0], x.shape[2], x.shape[3], x.shape[1]) : (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        // Floats between neighbouring pixels of a row, and between a pixel's channels.
        let (pixelStride, channelStride) = nchw ? (1, h * w) : (cin, 1)
        let (oh, ow, cout) = (out.shape[1], out.shape[2], outChannels)
        let (kh, kw) = kernel
        let (sh, sw, dh, dw) = (stride.h, stride.w, dilation.h, dilation.w)
        let src = x.data, dst = out.data, wt = packed.data
        let b = bias?.data
        let vact = VectorActivation(act)
        // Output columns whose whole window lies inside the input.
        let oxLo = min(ow, max(0, (padLeft + sw - 1) / sw))
        let lastStart = w - 1 - (kw - 1) * dw + padLeft
        let oxHi = lastStart < 0 ? oxLo : max(oxLo, min(ow, lastStart / sw + 1))
        parallelFor(n * oh, minChunk: 1) { r0, r1 in
            for r in r0..<r1 {
                let img = r / oh, oy = r % oh
                let outRow = dst + r * ow * cout
                let iy0 = oy * sh - padTop
                let ky0 = iy0 >= 0 ? 0 : (-iy0 + dh - 1) / dh
                let ky1 = max(ky0, min(kh, (h - 1 - iy0) / dh + 1))
                var g0 = 0
                while g0 < cout {
                    let nb = min(4, (cout - g0) / 16)
                    let bias0 = b.map { load($0 + g0) } ?? Vec()
                    let bias1 = nb > 1 ? (b.map { load($0 + g0 + 16) } ?? Vec()) : Vec()
                    let bias2 = nb > 2 ? (b.map { load($0 + g0 + 32) } ?? Vec()) : Vec()
                    let bias3 = nb > 3 ? (b.map { load($0 + g0 + 48) } ?? Vec()) : Vec()
                    var ox = 0
                    while ox < ow {
                        if nb <= 2 && ox >= oxLo && ox &+ 4 <= oxHi {
                            // 16 or 32 channels (the stems): four pixels per pass, each weight vector loaded
                            // once for four FMAs.
                            var p0a = bias0, p0b = bias1, p1a = bias0, p1b = bias1
                            var p2a = bias0, p2b = bias1, p3a = bias0, p3b = bias1
                            let step = sw &* pixelStride
                            for i in ky0..<ky1 {
                                let iy: Int = iy0 &+ i &* dh
                                let rowBase = src + (img &* h &* w &* cin &+ iy &* w &* pixelStride &+ (ox &* sw &- padLeft) &* pixelStride)
                                for j in 0..<kw {
                                    let px = rowBase + j &* dw &* pixelStride
                                    let wp = wt + ((i &* kw &+ j) &* cin &* cout &+ g0)
                                    for ci in 0..<cin {
                                        let wa = load(wp + ci &* cout)
                                        let wb = nb == 2 ? load(wp + (ci &* cout &+ 16)) : Vec()
                                        let c0 = ci &* channelStride
                                        let v0 = Vec(repeating: px[c0]), v1 = Vec(repeating: px[step &+ c0])
                                        let v2 = Vec(repeating: px[2 &* step &+ c0]), v3 = Vec(repeating: px[3 &* step &+ c0])
                                        p0a = p0a.addingProduct(v0, wa); p0b = p0b.addingProduct(v0, wb)
                                        p1a = p1a.addingProduct(v1, wa); p1b = p1b.addingProduct(v1, wb)
                                        p2a = p2a.addingProduct(v2, wa); p2b = p2b.addingProduct(v2, wb)
                                        p3a = p3a.addingProduct(v3, wa); p3b = p3b.addingProduct(v3, wb)
                                    }
                                }
                            }
                            let sa = vact.slopes.map { load($0 + g0) } ?? Vec()
                            let sb = nb == 2 ? (vact.slopes.map { load($0 + g0 + 16) } ?? Vec()) : Vec()
                            let o = outRow + (ox &* cout &+ g0)
                            store(vact(p0a, sa), o); store(vact(p1a, sa), o + cout)
                            store(vact(p2a, sa), o + 2 &* cout); store(vact(p3a, sa), o + 3 &* cout)
                            if nb == 2 {
                                store(vact(p0b, sb), o + 16); store(vact(p1b, sb), o + (cout &+ 16))
                                store(vact(p2b, sb), o + (2 &* cout &+ 16)); store(vact(p3b, sb), o + (3 &* cout &+ 16))
                            }
                            ox &+= 4
                            continue
                        }
                        defer { ox += 1 }
                        var a0 = bias0, a1 = bias1, a2 = bias2, a3 = bias3
                        let ix0 = ox * sw - padLeft
                        for i in ky0..<ky1 {
                            let iy = iy0 + i * dh
                            for j in 0..<kw {
                                let ix = ix0 + j * dw
                                if ix < 0 || ix >= w { continue }
                                let px = src + (img * h * w * cin + (iy * w + ix) * pixelStride)
                                let wp = wt + (i * kw + j) * cin * cout + g0
                                for ci in 0..<cin {
                                    let v = Vec(repeating: px[ci * channelStride])
                                    let wr = wp + ci * cout
                                    a0 = a0.addingProduct(v, load(wr))
                                    if nb > 1 { a1 = a1.addingProduct(v, load(wr + 16)) }
                                    if nb > 2 { a2 = a2.addingProduct(v, load(wr + 32)) }
                                    if nb > 3 { a3 = a3.addingProduct(v, load(wr + 48)) }
                                }
                            }
                        }
                        let o = outRow + ox * cout + g0
                        let sl = vact.slopes
                        store(vact(a0, sl.map { load($0 + g0) } ?? Vec()), o)
                        if nb > 1 { store(vact(a1, sl.map { load($0 + g0 + 16) } ?? Vec()), o + 16) }
                        if nb > 2 { store(vact(a2, sl.map { load($0 + g0 + 32) } ?? Vec()), o + 32) }
                        if nb > 3 { store(vact(a3, sl.map { load($0 + g0 + 48) } ?? Vec()), o + 48) }
                    }
                    g0 += 16 * nb
                }
                if vact.needsRowPass { applyActivation(act, outRow, count: ow * cout, channels: cout) }
            }
        }
    }
}
