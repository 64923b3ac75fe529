import AffectKernels

extension MiniXception {
    /// mini-Xception's forward pass for one image, in buffers laid out once per pass: on the calling thread, or
    /// with every layer's rows split across the threads when there is a single image to run.
    ///
    /// At 64×64 the network is ~20 MFLOP over ~25 layers, so per-layer costs (a tensor allocation, a thread
    /// hand-off, a general kernel's set-up) were a third of the time. Here:
    /// - the 8-channel stem and the first module's depthwise conv run on *planar* maps
    ///   (``planarConv3x3x8(_:inChannels:inPlane:_:outPlane:rowStride:rows:weights:bias:relu:)``), and the
    ///   first pointwise conv turns them channels-last;
    /// - the last stem conv writes straight into a zero-bordered map, so the "same" depthwise conv after it
    ///   needs no padded copy;
    /// - the residual 1×1/2 conv runs as a GEMM on the stride-2 pixels with the max-pooled map as its
    ///   residual input: pooling, shortcut and add in one output;
    /// - the head conv and the global average pool collapse into one small reduction
    ///   (``convSameGlobalAverage(_:height:width:channels:kernel:weights:bias:outChannels:_:)``).
    ///
    /// Matrix products use the packed GEMM, which keeps products this small on the calling thread (the row
    /// split hands each thread its own rows of every product).
    struct SingleImagePlan: Sendable {
        /// BatchNorm-folded OIHW weights of one module, as the converter's graph defines it.
        struct FoldedModule {
            var depthwise1: Tensor, pointwise1: (Tensor, Tensor)
            var depthwise2: Tensor, pointwise2: (Tensor, Tensor)
            var residual: (Tensor, Tensor)
            var pool: Int
        }

        struct Module: Sendable {
            let cin: Int, cout: Int
            /// First module: `[C][9]` (planar); later modules: `[9][C]` (channels last).
            let depthwise1: Tensor
            /// First module only: `[cin][mid]` and the bias (pointwise from planes).
            let planarPointwise1: (Tensor, Tensor)?
            let pointwise1: PackedWeights?
            let mid: Int
            let depthwise2: Tensor
            let pointwise2: PackedWeights
            let residual: PackedWeights
            let pool: Int
        }

        /// Packed stem weights (`[cin · 9][8]`) and biases.
        let stem: [(weights: Tensor, bias: Tensor)]
        let modules: [Module]
        /// Head weights `[classes][kh · kw][C]`.
        let head: Tensor
        let headBias: Tensor?
        let headKernel: (h: Int, w: Int)
        let classes: Int

        /// Nil unless every layer fits the kernels: 3×3 stem convs with 8 outputs from one gray channel, 3×3
        /// depthwise convs, module and head widths multiples of 16.
        init?(stem: [(Tensor, Tensor)], modules: [FoldedModule], head: (Tensor, Tensor?)) {
            guard !stem.isEmpty, !modules.isEmpty, stem[0].0.shape[1] == 1 else { return nil }
            for (k, _) in stem where k.shape[0] != 8 || k.shape[2] != 3 || k.shape[3] != 3 { return nil }
            if stem.count > 1 { for (k, _) in stem.dropFirst() where k.shape[1] != 8 { return nil } }
            self.stem = stem.map { (packPlanarConv8($0.0), $0.1) }
            var built: [Module] = []
            var cin = 8
            for (index, m) in modules.enumerated() {
                let mid = m.pointwise1.0.shape[0], cout = m.pointwise2.0.shape[0]
                guard m.depthwise1.shape == [cin, 1, 3, 3], m.depthwise2.shape == [mid, 1, 3, 3],
                      mid % 16 == 0, cout % 16 == 0, index == 0 || cin % 16 == 0 else { return nil }
                let first = index == 0
                func pack(_ w: (Tensor, Tensor)) -> PackedWeights {
                    PackedWeights(weight: w.0.data, n: w.0.shape[0], k: w.0.shape[1], bias: UnsafePointer(w.1.data))
                }
                built.append(Module(
                    cin: cin, cout: cout,
                    depthwise1: first ? m.depthwise1.reshaped([cin, 9]) : m.depthwise1.reshaped([cin, 9]).transposed2D(),
                    planarPointwise1: first ? (m.pointwise1.0.reshaped([mid, cin]).transposed2D(), m.pointwise1.1) : nil,
                    pointwise1: first ? nil : pack(m.pointwise1),
                    mid: mid,
                    depthwise2: m.depthwise2.reshaped([mid, 9]).transposed2D(),
                    pointwise2: pack(m.pointwise2),
                    residual: pack(m.residual),
                    pool: m.pool))
                cin = cout
            }
            self.modules = built
            let (hk, hb) = head
            guard hk.shape[1] == cin, cin % 16 == 0 else { return nil }
            classes = hk.shape[0]
            headKernel = (hk.shape[2], hk.shape[3])
            // OIHW → [O][kh·kw][I].
            let taps = hk.shape[2] * hk.shape[3]
            let hp = Tensor(uninitialized: [classes, taps, cin])
            for o in 0..<classes { for c in 0..<cin { for t in 0..<taps {
                hp.data[(o * taps + t) * cin + c] = hk.data[(o * cin + c) * taps + t]
            } } }
            self.head = hp
            headBias = hb
        }

        /// Map sizes after the stem (valid 3×3 convs).
        private func stemOutput(height h: Int, width w: Int) -> (h: Int, w: Int) { (h - 2 * stem.count, w - 2 * stem.count) }

        func accepts(height: Int, width: Int) -> Bool {
            let s = stemOutput(height: height, width: width)
            return s.h >= 1 && s.w >= 1
        }

        /// Where each buffer starts in the workspace, in floats.
        private struct Layout {
            var rowStride = 0
            var input = 0, stemA = 0, stemB = 0, padded = 0, planar = 0, e1 = 0, e2 = 0, e3 = 0, x0 = 0, x1 = 0, gather = 0
            var total = 0
        }

        /// `splitRows`: a module's second pointwise layer writes a buffer of its own (`e3`), as its input rows
        /// are still being read by the other threads' depthwise steps; on one thread it overwrites `e2`.
        private func layout(height h: Int, width w: Int, splitRows: Bool) -> Layout {
            var l = Layout()
            let s = (w + 15) / 16 * 16
            l.rowStride = s
            let (hs, ws) = stemOutput(height: h, width: w)
            var offset = 0
            // Each region rounded to 16 floats (64 bytes) so every buffer starts on a cache line.
            func take(_ n: Int) -> Int { defer { offset += (n + 15) / 16 * 16 }; return offset }
            l.input = take((h + 1) * s)                    // one guard row
            l.stemA = take(8 * h * s + s)
            l.stemB = take(8 * h * s + s)
            l.padded = take(8 * (hs + 2) * s + 2 * s)
            l.planar = take(8 * hs * s)
            var (mh, mw) = (hs, ws)
            var nhwc = 0, outputs = 0, pooled = 0, gathered = 0
            for m in modules {
                nhwc = max(nhwc, mh * mw * max(m.cin, m.mid, m.cout))
                outputs = max(outputs, mh * mw * m.cout)
                let (oh, ow) = ((mh + 1) / 2, (mw + 1) / 2)
                pooled = max(pooled, oh * ow * m.cout)
                gathered = max(gathered, oh * ow * m.cin)
                (mh, mw) = (oh, ow)
            }
            l.e1 = take(nhwc); l.e2 = take(nhwc)
            l.e3 = splitRows ? take(outputs) : l.e2
            l.x0 = take(pooled); l.x1 = take(pooled)
            l.gather = take(gathered)
            l.total = offset
            return l
        }

        func workspaceSize(height: Int, width: Int, splitRows: Bool) -> Int {
            layout(height: height, width: width, splitRows: splitRows).total
        }

        /// Writes the `classes` logits of one `height × width` gray image (`x`, row-major).
        ///
        /// With `splitRows` (one image, several threads) every layer on a map of at least ``splitPixels`` pixels
        /// (all of them for a 64×64 input: the stem convs, each module's two separable steps, and its pooling with
        /// the shortcut) splits its output rows across the threads, a fork-join per step. Each output keeps its
        /// order of operations, so the logits have the same bits at any thread count. The pool's spinning
        /// workers take a step in about a microsecond; the smallest steps (the last module's, at 8×8) take ~10.
        /// Smallest map whose steps ``forward(_:height:width:workspace:logits:splitRows:)`` splits across threads.
        static let splitPixels = 64

        func forward(_ x: UnsafePointer<Float>, height h: Int, width w: Int, workspace ws: UnsafeMutablePointer<Float>,
                     logits: UnsafeMutablePointer<Float>, splitRows: Bool = false) {
            /// `body` over `0 ..< rows` of a map of `pixels` pixels: in pieces on the pool, or whole here.
            func overRows(_ rows: Int, pixels: Int, _ body: (Int, Int) -> Void) {
                if splitRows && pixels >= Self.splitPixels { parallelFor(rows, minChunk: 4, body) } else { body(0, rows) }
            }
            let l = layout(height: h, width: w, splitRows: splitRows)
            let s = l.rowStride
            // Input rows padded to the row stride with zeros, then a zero guard row.
            let input = ws + l.input
            for y in 0..<h {
                (input + y * s).update(from: x + y * w, count: w)
                (input + y * s + w).update(repeating: 0, count: s - w)
            }
            (input + h * s).update(repeating: 0, count: s)

            // Stem: valid 3×3 convs on planes; the last one writes inside the zero border of `padded`.
            var src = UnsafePointer(input), srcPlane = h * s, srcChannels = 1
            var (sh, sw) = (h, w)
            let (hs, ws0) = stemOutput(height: h, width: w)
            let paddedPlane = (hs + 2) * s
            let padded = ws + l.padded
            for (i, layer) in stem.enumerated() {
                (sh, sw) = (sh - 2, sw - 2)
                let last = i == stem.count - 1
                let dst = last ? padded + s + 1 : ws + (i % 2 == 0 ? l.stemA : l.stemB)
                let dstPlane = last ? paddedPlane : sh * s
                let (conv, convPlane, channels) = (src, srcPlane, srcChannels)
                overRows(sh, pixels: sh * sw) { y0, y1 in
                    planarConv3x3x8(conv + y0 * s, inChannels: channels, inPlane: convPlane, dst + y0 * s, outPlane: dstPlane,
                                    rowStride: s, rows: y1 - y0, weights: layer.weights.data, bias: layer.bias.data, relu: true)
                }
                if !last { (dst + 8 * dstPlane).update(repeating: 0, count: s) }   // guard row
                (src, srcPlane, srcChannels) = (UnsafePointer(dst), dstPlane, 8)
            }
            // The conv wrote all `s` columns from column 1 on: restore the zero border (and the guard rows).
            for c in 0..<8 {
                let plane = padded + c * paddedPlane
                plane.update(repeating: 0, count: s)
                for y in 1...hs { plane[y * s] = 0; plane[y * s + ws0 + 1] = 0 }
                (plane + (hs + 1) * s).update(repeating: 0, count: s)
            }
            (padded + 8 * paddedPlane).update(repeating: 0, count: 2 * s)

            var (mh, mw) = (hs, ws0)
            var current = UnsafePointer(padded)     // module input: planes for the first module, then NHWC
            let e1 = ws + l.e1, e2 = ws + l.e2, e3 = ws + l.e3, gather = ws + l.gather
            for (index, m) in modules.enumerated() {
                let pixels = mh * mw
                if let (pw, pb) = m.planarPointwise1 {
                    let planar = ws + l.planar
                    let input = current
                    overRows(mh, pixels: pixels) { y0, y1 in
                        planarDepthwise3x3(input + y0 * s, channels: m.cin, inPlane: paddedPlane, planar + y0 * s, outPlane: mh * s,
                                           rowStride: s, rows: y1 - y0, weights: m.depthwise1.data)
                        planarPointwiseToNHWC(planar + y0 * s, inChannels: m.cin, inPlane: mh * s, rowStride: s, rows: y1 - y0,
                                              width: mw, e2 + y0 * mw * m.mid, outChannels: m.mid, weights: pw.data,
                                              bias: pb.data, relu: true)
                    }
                } else {
                    let input = current
                    overRows(mh, pixels: pixels) { y0, y1 in
                        depthwise3x3Same(input, height: mh, width: mw, channels: m.cin, weights: m.depthwise1.data, e1,
                                         rows: y0..<y1)
                        packedGEMM(m: (y1 - y0) * mw, a: e1 + y0 * mw * m.cin, lda: m.cin, weights: m.pointwise1!,
                                   c: e2 + y0 * mw * m.mid, ldc: m.mid, activation: .relu)
                    }
                }
                // The second depthwise layer reads rows on either side of its own, written by the other pieces
                // of the step above: it starts only after that step has joined, and its pointwise layer writes
                // `e3` (which is `e2` on one thread).
                overRows(mh, pixels: pixels) { y0, y1 in
                    depthwise3x3Same(e2, height: mh, width: mw, channels: m.mid, weights: m.depthwise2.data, e1, rows: y0..<y1)
                    packedGEMM(m: (y1 - y0) * mw, a: e1 + y0 * mw * m.mid, lda: m.mid, weights: m.pointwise2,
                               c: e3 + y0 * mw * m.cout, ldc: m.cout)
                }
                let out = ws + (index % 2 == 0 ? l.x0 : l.x1)
                let (oh, ow) = ((mh + 1) / 2, (mw + 1) / 2)
                let input = current
                overRows(oh, pixels: pixels) { y0, y1 in
                    maxPoolStride2Same(e3, height: mh, width: mw, channels: m.cout, kernel: m.pool, out, rows: y0..<y1)
                    // Shortcut: the input's even pixels (1×1, stride 2, "same" pads nothing), one GEMM that adds
                    // the pooled map as its residual.
                    if index == 0 {
                        // From the bordered planes: pixel (y, x) of channel c is at c·plane + (y + 1)·s + x + 1.
                        for oy in y0..<y1 {
                            for ox in 0..<ow {
                                let g = gather + (oy * ow + ox) * m.cin, p = input + (2 * oy + 1) * s + 2 * ox + 1
                                for c in 0..<m.cin { g[c] = p[c * paddedPlane] }
                            }
                        }
                    } else {
                        subsampleStride2(input, height: mh, width: mw, channels: m.cin, gather, rows: y0..<y1)
                    }
                    let first = y0 * ow
                    packedGEMM(m: (y1 - y0) * ow, a: gather + first * m.cin, lda: m.cin, weights: m.residual,
                               residual: out + first * m.cout, ldr: m.cout, c: out + first * m.cout, ldc: m.cout)
                }
                (mh, mw) = (oh, ow)
                current = UnsafePointer(out)
            }
            convSameGlobalAverage(current, height: mh, width: mw, channels: modules.last!.cout, kernel: headKernel,
                                  weights: head.data, bias: headBias.map { UnsafePointer($0.data) }, outChannels: classes,
                                  logits)
        }
    }
}

private extension Tensor {
    /// `[r, c]` → `[c, r]` (a copy).
    func transposed2D() -> Tensor {
        let (r, c) = (shape[0], shape[1])
        let t = Tensor(uninitialized: [c, r])
        for i in 0..<r { for j in 0..<c { t.data[j * r + i] = data[i * c + j] } }
        return t
    }
}
