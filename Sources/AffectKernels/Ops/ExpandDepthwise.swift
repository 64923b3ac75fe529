/// An inverted-residual block's expansion (1×1 convolution + activation) fused into the depthwise convolution
/// that reads it.
///
/// Unfused, the expansion writes its whole output (EfficientNet-B0's second block: 112 × 112 × 96 floats,
/// 4.8 MB, past L2) and the depthwise layer reads it back from memory. Two fused forms, by map size:
/// - Large maps (the row-split unrolled kernel): each thread walks its own range of output rows and expands only
///   the input rows its windows need into a ring of `(band − 1)·s + k` rows (a few hundred KB, in L2), `band`
///   output rows at a time so that each expansion is a product of at least ~240 pixels; rows shared by
///   consecutive bands stay in the ring and are expanded once. Only the first band of each thread's range
///   expands rows a neighbouring range also expands (`k − s` rows per thread).
/// - Small maps (the tiled kernel, 28 × 28 and below), with AVX2's 16-wide weight panels: each work item is one
///   image and one panel of the expansion's packed weights, which is one block of the depthwise layer's channels.
///   The panel's columns are computed for the whole map into a buffer of the thread's own and go straight into
///   the depthwise tile.
///   The expansion's output (EfficientNet-B0: 4.8 MB over its 12 small-map blocks, each up to 752 KB, more than
///   a Zen 3's 512 KB L2) is never written whole, and the tile is filled from a dense buffer, not gathered
///   16 channels at a time from rows of hundreds. Float32 expansions only (the int8 product quantises whole
///   rows of pixels).
///
/// The arithmetic is the unfused layers' own: the packed GEMM (or, at ``Precision/int8``, the int8 product, which
/// quantises each pixel on its own) with its bias and activation epilogue over the same pixels, and the unrolled
/// depthwise kernels over the same windows, so the results are the same floats.
extension Conv2D {
    /// Whether ``depthwiseWithMeans(_:expandedBy:)`` runs fused for this pair on `batch` inputs of `height` ×
    /// `width`: a packed expansion feeding an unrolled depthwise layer (3×3 or 5×5, stride 1 or 2, channels a
    /// multiple of 16, an activation with a vector form), float32 or int8 on a large map; on a small one, float32
    /// with AVX2's 16-wide weight panels (``GEMMTile/rows6x16``) and enough work items for the threads
    /// (``Threading/threads``).
    public func fusesExpansion(_ expand: Conv2D, height: Int, width: Int, batch: Int = 1) -> Bool {
        guard expand.kind == .pointwisePacked, expand.outChannels == inChannels,
              kind == .depthwise(narrow: false, unrolled: true), inChannels % 16 == 0,
              !activation.needsRowPass else { return false }
        let geo = geometry(height: height, width: width)
        guard geo.height > 0 && geo.width > 0 else { return false }
        guard tilesExpansion(height: height, width: width) else { return true }
        // AVX2's 16-wide panels only: a panel is then one depthwise block, its buffer dense and in L1. AVX-512's
        // 48-wide panels need a buffer three times larger, read 16 of every 48 floats, and measured about 1 %
        // slower on a Zen 4 (EfficientNet-B0, one thread), whose 1 MB L2 held the unfused expansion anyway.
        guard let gemm = expand.gemm, gemm.groups == 1, gemm.tile.width == 16 else { return false }
        // One work item per image and panel. With fewer than four per thread, the threads' shares differ by a
        // fifth or more, where the unfused layers split finer.
        let threads = Threading.threads
        return threads == 1 || batch * gemm.panels >= 4 * threads
    }

    /// Whether a fused expansion over `height` × `width` takes the small-map (tiled) form.
    private func tilesExpansion(height: Int, width: Int) -> Bool {
        let geo = geometry(height: height, width: width)
        return Self.tiledDepthwise(outputPixels: geo.height * geo.width, stride: stride.h, channels: outChannels)
    }

    /// `self(expand(x))` and the per-image channel means of that output (`[N, C]`, the squeeze of a following
    /// squeeze-and-excitation), without materialising `expand(x)` when ``fusesExpansion(_:height:width:)``
    /// holds; otherwise the two layers run one after the other. `expand` nil: ``depthwiseWithMeans(_:)``.
    public func depthwiseWithMeans(_ x: Tensor, expandedBy expand: Conv2D?) -> (output: Tensor, means: Tensor) {
        guard let expand else { return depthwiseWithMeans(x) }
        guard fusesExpansion(expand, input: x) else { return depthwiseWithMeans(expand(x)) }
        let geo = geometry(height: x.shape[1], width: x.shape[2])
        let rowSums = Tensor(uninitialized: [x.shape[0] * geo.height, outChannels])
        let out = tilesExpansion(height: x.shape[1], width: x.shape[2])
            ? expandedTiles(x, expand, rowSums: rowSums.data) : expandedDepthwise(x, expand, rowSums: rowSums.data)
        let means = Tensor.zeros([x.shape[0], outChannels])
        Self.reduceRowSums(rowSums, into: means, rowsPerImage: geo.height, pixelsPerImage: geo.height * geo.width)
        return (out, means)
    }

    /// `self(expand(x))`, fused as ``depthwiseWithMeans(_:expandedBy:)`` where it can be (an inverted residual
    /// block without squeeze-and-excitation: MobileViT's MobileNetV2 blocks).
    public func callAsFunction(_ x: Tensor, expandedBy expand: Conv2D) -> Tensor {
        guard fusesExpansion(expand, input: x) else { return self(expand(x)) }
        return tilesExpansion(height: x.shape[1], width: x.shape[2])
            ? expandedTiles(x, expand, rowSums: nil) : expandedDepthwise(x, expand, rowSums: nil)
    }

    private func fusesExpansion(_ expand: Conv2D, input x: Tensor) -> Bool {
        precondition(x.rank == 4 && x.shape[3] == expand.inChannels,
                     "Conv2D expects NHWC with \(expand.inChannels) channels, got \(x.shape)")
        return fusesExpansion(expand, height: x.shape[1], width: x.shape[2], batch: x.shape[0])
    }

    /// The fused pass; `rowSums` (`[N·H', C]`), if given, receives each output row's channel sums.
    private func expandedDepthwise(_ x: Tensor, _ expand: Conv2D, rowSums: UnsafeMutablePointer<Float>?) -> Tensor {
        let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let c = outChannels, k = kernel.h, s = stride.h
        let geo = geometry(height: h, width: w)
        let (oh, ow, padTop, padLeft) = (geo.height, geo.width, geo.padTop, geo.padLeft)
        let out = Tensor(uninitialized: [n, oh, ow, c])

        let band = max(1, (240 + s * w - 1) / (s * w))
        let ringRows = (band - 1) * s + k
        let zeros = Tensor.zeros([w * c])
        let zeroRow = UnsafePointer(zeros.data)
        let oxLo = min(ow, (padLeft + s - 1) / s)
        let lastStart = w - k + padLeft
        let oxHi = lastStart < 0 ? oxLo : max(oxLo, min(ow, lastStart / s + 1))
        let vact = VectorActivation(activation)
        let src = UnsafePointer(x.data), dst = out.data
        let wt = UnsafePointer(packed.data), b = bias.map { UnsafePointer($0.data) }
        let expandActivation = expand.activation
        let expandBias = expand.bias.map { UnsafePointer($0.data) }
        let total = n * oh
        // One contiguous range of output rows per thread: more ranges would expand more shared rows twice.
        let parts = min(Threading.threads, total)
        parallelFor(parts, minChunk: 1) { p0, p1 in
            let ring = UnsafeMutablePointer<Float>.allocate(capacity: ringRows * w * c)
            let rows = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: k)
            defer { ring.deallocate(); rows.deallocate() }
            for part in p0..<p1 {
                var r = total * part / parts
                let end = total * (part + 1) / parts
                // Input rows `..<expanded` of image `image` have been expanded; the last `ringRows` are in the ring.
                var image = -1, expanded = 0
                while r < end {
                    let img = r / oh, oy0 = r % oh
                    let oy1 = min(oh, oy0 + band, oy0 + (end - r))
                    let lo = max(0, oy0 * s - padTop), hi = min(h, (oy1 - 1) * s - padTop + k)
                    if img != image { image = img; expanded = lo }
                    // Rows the windows need that are not in the ring yet, in at most two runs (the ring wraps).
                    var from = max(lo, expanded)
                    while from < hi {
                        let slot = from % ringRows, count = min(hi - from, ringRows - slot)
                        let a = src + (img * h + from) * w * cin, o = ring + slot * w * c
                        if let q = expand.int8 {
                            // Each pixel is quantised on its own: the same bytes as over the whole map.
                            int8Linear(m: count * w, x: a, weights: q, bias: expandBias, residual: nil, out: o,
                                       activation: expandActivation)
                        } else {
                            packedGEMM(m: count * w, a: a, lda: cin, weights: expand.gemm!, c: o, ldc: c,
                                       activation: expandActivation)
                        }
                        from += count
                    }
                    expanded = max(expanded, hi)
                    for oy in oy0..<oy1 {
                        for i in 0..<k {
                            let iy = oy * s - padTop + i
                            rows[i] = iy >= 0 && iy < h ? UnsafePointer(ring + (iy % ringRows) * w * c) : zeroRow
                        }
                        let row = img * oh + oy
                        unrolledRow(rows, w: w, c: c, ow: ow, padLeft: padLeft, oxLo: oxLo, oxHi: oxHi,
                                    out: dst + row * ow * c, vact: vact, weights: wt, bias: b, means: rowSums.map { $0 + row * c })
                    }
                    r += oy1 - oy0
                }
            }
        }
        withExtendedLifetime(zeros) {}
        return out
    }

    /// The small-map fused pass (float32 expansion, 16-wide panels): one work item per image and panel of the
    /// expansion's packed weights, which is one 16-channel block of this layer; `rowSums` (`[N·H', C]`), if given,
    /// receives each output row's channel sums.
    private func expandedTiles(_ x: Tensor, _ expand: Conv2D, rowSums: UnsafeMutablePointer<Float>?) -> Tensor {
        let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let c = outChannels
        let geo = geometry(height: h, width: w)
        let out = Tensor(uninitialized: [n, geo.height, geo.width, c])
        let gemm = expand.gemm!
        let tiles = DepthwiseTiles(self, height: h, width: w, channels: c, padTop: geo.padTop, padLeft: geo.padLeft,
                                   out: out.data, vact: VectorActivation(activation), means: rowSums)
        let panels = gemm.panels, pixels = h * w
        // The panel's columns for one image, in blocks of rows that stay in L1 for the epilogue (as packedGEMM's).
        let (blocks, blockRows) = gemm.tile.rowBlocks(m: pixels, k: cin, panels: 1, threads: 1,
                                                      l2CacheBytes: Threading.l2CacheBytes)
        let src = UnsafePointer(x.data)
        let activation = expand.activation
        parallelFor(n * panels, minChunk: 1) { i0, i1 in
            let scratch = tiles.scratch()
            let columns = UnsafeMutablePointer<Float>.allocate(capacity: pixels * 16)
            let gemmScratch = UnsafeMutablePointer<Float>.allocate(capacity: max(gemm.tile.rows, 8) * 16)
            defer { scratch.deallocate(); columns.deallocate(); gemmScratch.deallocate() }
            for item in i0..<i1 {
                let img = item / panels, p = item % panels
                let a = src + img * pixels * cin
                let next = item + 1 < i1 ? (item + 1) % panels : -1
                let started = MatrixProfile.isEnabled ? MatrixProfile.now() : 0
                for block in 0..<blocks {
                    let rows = block * blockRows..<min(pixels, (block + 1) * blockRows)
                    packedGEMMPanel(p, rows: rows, a: a, lda: cin, weights: gemm, residual: nil, ldr: 0, c: columns,
                                    ldc: 16, activation: activation, prefetching: block == blocks - 1 ? next : -1,
                                    scratch: gemmScratch)
                }
                if started != 0 { MatrixProfile.record("packed GEMM", m: pixels, n: 16, k: cin, since: started) }
                tiles.run(image: img, channels: p * 16, from: columns, pixelStride: 16, scratch)
            }
        }
        return out
    }
}
