/// How a convolution or pooling window is padded.
public enum Padding: Sendable, Equatable {
    /// Fixed zero padding: top, left, bottom, right.
    case explicit(top: Int, left: Int, bottom: Int, right: Int)
    /// TensorFlow "SAME": output = ceil(input / stride); the odd pixel of padding goes bottom/right.
    case tfSame
    public static let valid = Padding.explicit(top: 0, left: 0, bottom: 0, right: 0)
    public static func symmetric(_ p: Int) -> Padding { .explicit(top: p, left: p, bottom: p, right: p) }
    public static func symmetric(_ ph: Int, _ pw: Int) -> Padding { .explicit(top: ph, left: pw, bottom: ph, right: pw) }

    /// (before, after) padding and output size along one axis.
    public func resolve(input i: Int, kernel k: Int, stride s: Int, dilation d: Int, axis: Int,
                        ceilMode: Bool = false) -> (before: Int, out: Int) {
        switch self {
        case .tfSame:
            let pad = max((((i + s - 1) / s) - 1) * s + (k - 1) * d + 1 - i, 0)
            return (pad / 2, (i + s - 1) / s)
        case .explicit(let t, let l, let b, let r):
            let (p0, p1) = axis == 0 ? (t, b) : (l, r)
            let span = i + p0 + p1 - d * (k - 1) - 1
            if span < 0 { return (p0, 0) }
            var o = (ceilMode ? (span + s - 1) / s : span / s) + 1
            // PyTorch: the last window must start inside the input or the left padding.
            if ceilMode && (o - 1) * s >= i + p0 { o -= 1 }
            return (p0, o)
        }
    }
}

/// 2-D convolution over NHWC input with a fused bias and activation.
///
/// Three kernels, chosen at construction:
/// - **pointwise** (1×1, stride 1, no padding): one GEMM over all pixels, input used in place — the packed
///   GEMM with weights packed at load and bias, residual and activation in its tile epilogue, or `sgemm`
///   for a PReLU;
/// - **depthwise** (groups = in = out channels): direct SIMD loop, 16 channels per vector;
/// - **small groups** (2–8 channels per group in and out): a sum of depthwise convolutions (``SmallGroupConv``);
/// - **general**: im2col in row tiles (bounded workspace) then the packed GEMM (ungrouped, no PReLU) or
///   `sgemm` per group.
public struct Conv2D: Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: (h: Int, w: Int)
    public let stride: (h: Int, w: Int)
    public let dilation: (h: Int, w: Int)
    public let groups: Int
    public let padding: Padding
    public let activation: Activation
    /// Packed weight: depthwise `[kh, kw, C]`; otherwise `[groups][kh·kw·inPerGroup][outPerGroup]`; empty
    /// when `gemm` holds the weights.
    public let packed: Tensor
    public let bias: Tensor?
    /// Weights and bias packed for ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)``: pointwise
    /// and ungrouped im2col convolutions, all but PReLU (which its epilogue does not take).
    let gemm: PackedWeights?
    /// Grouped convolutions with 2–8 channels per group in and out, as a sum of depthwise convolutions.
    let smallGroups: SmallGroupConv?

    public var isDepthwise: Bool { groups == inChannels && groups == outChannels && groups > 1 }
    /// 1×1, stride 1, ungrouped and unpadded (TF "SAME" pads nothing for a 1×1/1 kernel either).
    public var isPointwise: Bool {
        kernel == (1, 1) && stride == (1, 1) && dilation == (1, 1) && groups == 1 && (padding == .valid || padding == .tfSame)
    }

    /// - Parameter weight: PyTorch layout `[out, in/groups, kh, kw]`.
    public init(weight: Tensor, bias: Tensor?, stride: (Int, Int) = (1, 1), padding: Padding = .valid,
                dilation: (Int, Int) = (1, 1), groups: Int = 1, activation: Activation = .none) {
        precondition(weight.rank == 4, "Conv2D weight must be 4-D, got \(weight.shape)")
        let (o, ipg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        precondition(o % groups == 0, "out channels \(o) not divisible by groups \(groups)")
        inChannels = ipg * groups; outChannels = o
        kernel = (kh, kw); self.stride = stride; self.dilation = dilation
        self.groups = groups; self.padding = padding; self.activation = activation
        precondition(bias == nil || bias!.count == o)
        self.bias = bias
        let w = weight.data
        var isPReLU = false
        if case .prelu = activation { isPReLU = true }
        let pointwiseShape = kh == 1 && kw == 1 && stride == (1, 1) && dilation == (1, 1) && groups == 1
            && (padding == .valid || padding == .tfSame)
        if pointwiseShape && !isPReLU {
            // `[out, in, 1, 1]` is the `[n, k]` row-major matrix the packed GEMM takes.
            gemm = PackedWeights(weight: w, n: o, k: ipg, bias: bias.map { UnsafePointer($0.data) })
            packed = Tensor(uninitialized: [0])
            smallGroups = nil
            return
        }
        if let sg = SmallGroupConv(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                                   groups: groups, activation: activation) {
            smallGroups = sg
            gemm = nil
            packed = Tensor(uninitialized: [0])
            return
        }
        smallGroups = nil
        // Eight outputs at stride 1 run the narrow direct kernel (NarrowDepthwise.swift) on `packed`.
        let narrowDirect = groups == 1 && o == 8 && stride == (1, 1) && dilation == (1, 1)
        if groups == 1 && !isPReLU && !(ipg <= 4 && o % 16 == 0) && !narrowDirect {
            // im2col + packed GEMM: weight rows reordered to the gathered order (ky, kx, c).
            let kDim = kh * kw * ipg
            let t = Tensor(uninitialized: [o, kDim])
            for oc in 0..<o { for ic in 0..<ipg { for i in 0..<kh { for j in 0..<kw {
                t.data[oc * kDim + (i * kw + j) * ipg + ic] = w[((oc * ipg + ic) * kh + i) * kw + j]
            } } } }
            gemm = PackedWeights(weight: t.data, n: o, k: kDim, bias: bias.map { UnsafePointer($0.data) })
            packed = Tensor(uninitialized: [0])
            return
        }
        gemm = nil
        if groups == ipg * groups && groups == o && groups > 1 {
            let p = Tensor(uninitialized: [kh, kw, o])
            for c in 0..<o { for i in 0..<kh { for j in 0..<kw { p.data[(i * kw + j) * o + c] = w[(c * kh + i) * kw + j] } } }
            packed = p
        } else {
            let opg = o / groups
            let kDim = kh * kw * ipg
            let p = Tensor(uninitialized: [groups, kDim, opg])
            for g in 0..<groups {
                for oc in 0..<opg {
                    for ic in 0..<ipg { for i in 0..<kh { for j in 0..<kw {
                        let src = (((g * opg + oc) * ipg + ic) * kh + i) * kw + j
                        let row = (i * kw + j) * ipg + ic
                        p.data[(g * kDim + row) * opg + oc] = w[src]
                    } } }
                }
            }
            packed = p
        }
    }

    /// Folds an inference BatchNorm that follows this convolution into its weight and bias.
    public init(weight: Tensor, bias: Tensor?, batchNorm bn: BatchNorm, stride: (Int, Int) = (1, 1),
                padding: Padding = .valid, dilation: (Int, Int) = (1, 1), groups: Int = 1,
                activation: Activation = .none) {
        let (w, b) = bn.fold(weight: weight, bias: bias)
        self.init(weight: w, bias: b, stride: stride, padding: padding, dilation: dilation, groups: groups,
                  activation: activation)
    }

    public func outputSize(height: Int, width: Int) -> (h: Int, w: Int) {
        let rh = padding.resolve(input: height, kernel: kernel.h, stride: stride.h, dilation: dilation.h, axis: 0)
        let rw = padding.resolve(input: width, kernel: kernel.w, stride: stride.w, dilation: dilation.w, axis: 1)
        return (rh.out, rw.out)
    }

    /// `x`: `[N, H, W, inChannels]` → `[N, H', W', outChannels]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { callAsFunction(x, residual: nil) }

    /// `act(conv(x) + bias + residual)`: the residual (`[N, H', W', outChannels]`, a skip connection) is added
    /// before the activation. Pointwise convolutions fuse it into the GEMM; other kinds add it afterwards.
    ///
    /// - Parameter inputScale: `[N, inChannels]` per-image channel factors applied to `x` first (the
    ///   excitation of a squeeze-and-excitation block); pointwise convolutions only.
    public func callAsFunction(_ x: Tensor, residual: Tensor?, inputScale: Tensor? = nil) -> Tensor {
        precondition(x.rank == 4 && x.shape[3] == inChannels, "Conv2D expects NHWC with \(inChannels) channels, got \(x.shape)")
        precondition(inputScale == nil || (isPointwise && inputScale!.count == x.shape[0] * inChannels),
                     "Conv2D input scale must be [N, \(inChannels)] on a pointwise convolution")
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let rh = padding.resolve(input: h, kernel: kernel.h, stride: stride.h, dilation: dilation.h, axis: 0)
        let rw = padding.resolve(input: w, kernel: kernel.w, stride: stride.w, dilation: dilation.w, axis: 1)
        if let sg = smallGroups, rh.out > 0, rw.out > 0 {
            precondition(residual == nil || residual!.shape == [n, rh.out, rw.out, outChannels],
                         "Conv2D residual must have shape \([n, rh.out, rw.out, outChannels])")
            return sg(x, residual: residual)
        }
        let out = Tensor(uninitialized: [n, rh.out, rw.out, outChannels])
        precondition(residual == nil || residual!.shape == out.shape, "Conv2D residual must have shape \(out.shape)")
        if out.count == 0 { return out }
        if let g = gemm, isPointwise {
            packedPointwise(x, out, g, residual: residual, inputScale: inputScale)
            return out
        }
        if isPointwise {
            pointwise(x, out, residual: residual, inputScale: inputScale)
            return out
        }
        // Without a fused residual the activation must wait until it has been added.
        let act = residual == nil ? activation : .none
        if isDepthwise {
            depthwise(x, out, padTop: rh.before, padLeft: rw.before, act: act, means: nil)
        } else if groups == 1 && inChannels <= 4 && outChannels % 16 == 0 {
            direct(x, out, padTop: rh.before, padLeft: rw.before, act: act)
        } else if isNarrowDirect {
            directNarrow(x, out, padTop: rh.before, padLeft: rw.before, act: act)
        } else {
            general(x, out, padTop: rh.before, padLeft: rw.before, act: act)
        }
        if let r = residual {
            addInPlace(out, r)
            activateInPlace(out, activation)
        }
        return out
    }

    /// `x`: `[N, inChannels, H, W]` (PyTorch's layout, as images arrive) → `[N, H', W', outChannels]`. A stem
    /// (at most 4 input channels, outputs a multiple of 16) reads it in place; other convolutions transpose
    /// it first. Transposing a 224 × 224 RGB image took 68 µs, over 1 % of EfficientNet-B0 at batch 1.
    public func callAsFunction(nchw x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == inChannels, "Conv2D(nchw:) expects NCHW with \(inChannels) channels, got \(x.shape)")
        guard groups == 1 && inChannels <= 4 && outChannels % 16 == 0 && smallGroups == nil && !isPointwise else { return self(x.nchwToNHWC()) }
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let rh = padding.resolve(input: h, kernel: kernel.h, stride: stride.h, dilation: dilation.h, axis: 0)
        let rw = padding.resolve(input: w, kernel: kernel.w, stride: stride.w, dilation: dilation.w, axis: 1)
        let out = Tensor(uninitialized: [n, rh.out, rw.out, outChannels])
        if out.count > 0 { direct(x, out, padTop: rh.before, padLeft: rw.before, act: activation, nchw: true) }
        return out
    }

    /// A depthwise convolution that also returns the per-image channel means of its (activated) output,
    /// `[N, C]`: the squeeze of a following squeeze-and-excitation, summed while each row is in registers.
    public func depthwiseWithMeans(_ x: Tensor) -> (output: Tensor, means: Tensor) {
        precondition(isDepthwise, "depthwiseWithMeans needs a depthwise convolution")
        precondition(x.rank == 4 && x.shape[3] == inChannels, "Conv2D expects NHWC with \(inChannels) channels, got \(x.shape)")
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let rh = padding.resolve(input: h, kernel: kernel.h, stride: stride.h, dilation: dilation.h, axis: 0)
        let rw = padding.resolve(input: w, kernel: kernel.w, stride: stride.w, dilation: dilation.w, axis: 1)
        let out = Tensor(uninitialized: [n, rh.out, rw.out, outChannels])
        let means = Tensor.zeros([n, outChannels])
        if out.count == 0 { return (out, means) }
        // One row of sums per output row (rows run on different threads), reduced per image afterwards.
        let rowSums = Tensor(uninitialized: [n * rh.out, outChannels])
        depthwise(x, out, padTop: rh.before, padLeft: rw.before, act: activation, means: rowSums.data)
        let c = outChannels, oh = rh.out
        let inv = 1 / Float(rh.out * rw.out)
        for img in 0..<n {
            let m = means.data + img * c
            for r in 0..<oh {
                let s = rowSums.data + (img * oh + r) * c
                for ch in 0..<c { m[ch] += s[ch] }
            }
            for ch in 0..<c { m[ch] *= inv }
        }
        return (out, means)
    }

    /// Pointwise convolution on the packed GEMM. A squeeze-and-excitation scale multiplies the weights per
    /// image (one scaled copy of the packed panels) when an image has over twice as many pixels as output
    /// channels (early, wide maps: the weights are the smaller operand), the pixels otherwise.
    private func packedPointwise(_ x: Tensor, _ out: Tensor, _ g: PackedWeights, residual: Tensor?, inputScale: Tensor?) {
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
        let scaledX = Tensor(uninitialized: [m, k])
        let src = x.data, dst = scaledX.data
        parallelFor(m, minChunk: 16) { r0, r1 in
            for r in r0..<r1 {
                let xi = src + r * k, si = sc + (r / perImage) * k, o = dst + r * k
                var j = 0
                while j + 16 <= k { store(load(xi + j) * load(si + j), o + j); j += 16 }
                while j < k { o[j] = xi[j] * si[j]; j += 1 }
            }
        }
        packedGEMM(m: m, a: scaledX.data, lda: k, weights: g, residual: res, ldr: nOut, c: out.data, ldc: nOut,
                   activation: activation)
    }

    /// Pointwise convolution with a PReLU: one GEMM over all pixels, cut into tiles whose epilogue runs while the tile is
    /// still in cache. Each tile's output is first filled with bias (+ residual) and the product accumulated
    /// onto it (beta = 1), which replaces both OpenBLAS's zeroing of C (beta = 0 is a memset pass) and a
    /// separate bias pass; the activation follows on the same tile.
    private func pointwise(_ x: Tensor, _ out: Tensor, residual: Tensor?, inputScale: Tensor?) {
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

    /// Depthwise: 16 channels per vector, channel blocks outermost so a block's k×k weight vectors stay in
    /// L1 across the row; interior output pixels four at a time (each weight vector loaded once for four
    /// FMAs), the activation applied in registers before the store, and, if `means` is given (`[N·H', C]`),
    /// each output row's channel sums written there.
    private func depthwise(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation,
                           means: UnsafeMutablePointer<Float>?) {
        if means == nil && isNarrowDepthwise { depthwiseNarrow(x, out, padTop: padTop, padLeft: padLeft, act: act); return }
        if depthwiseUnrolled(x, out, padTop: padTop, padLeft: padLeft, act: act, means: means) { return }
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

    /// Stems (3 input channels): a GEMM with K = 27 spends its time packing; accumulating the output
    /// channels in vectors straight from the input is several times faster. Up to 64 output channels
    /// (four vectors) per pass over the window, so each input value is broadcast once for all of them.
    private func direct(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation, nchw: Bool = false) {
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

    /// im2col: the receptive fields of output pixels `p0..<p1` (flat over N·H'·W'), group `g`, as rows of `col`.
    private func gather(_ x: Tensor, _ col: UnsafeMutablePointer<Float>, pixels p0: Int, _ p1: Int, group g: Int,
                        outSize: (h: Int, w: Int), padTop: Int, padLeft: Int) {
        let (h, w, cin) = (x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = outSize
        let (kh, kw) = kernel
        let ipg = cin / groups
        let kDim = kh * kw * ipg
        let src = x.data
        // Pixel coordinates advance incrementally: integer division per row was a visible cost.
        var img = p0 / (oh * ow), oy = (p0 / ow) % oh, ox = p0 % ow
        for r in 0..<(p1 - p0) {
            defer {
                ox += 1
                if ox == ow { ox = 0; oy += 1; if oy == oh { oy = 0; img += 1 } }
            }
            let dstRow = col + r * kDim
            for i in 0..<kh {
                let iy = oy * stride.h - padTop + i * dilation.h
                for j in 0..<kw {
                    let d = dstRow + (i * kw + j) * ipg
                    let ix = ox * stride.w - padLeft + j * dilation.w
                    if iy < 0 || iy >= h || ix < 0 || ix >= w {
                        for c in 0..<ipg { d[c] = 0 }
                    } else {
                        // A plain loop: for the stem's 3 channels a memmove call costs more than the copy.
                        let s = src + ((img * h + iy) * w + ix) * cin + g * ipg
                        for c in 0..<ipg { d[c] = s[c] }
                    }
                }
            }
        }
    }

    /// im2col + packed GEMM (ungrouped, no PReLU), bias and activation in the GEMM's tile epilogue. With
    /// enough pixels each thread gathers and multiplies whole row tiles (about 256 KB gathered); otherwise one
    /// gather of every pixel, then the GEMM split across the threads.
    private func generalPacked(_ x: Tensor, _ out: Tensor, _ g: PackedWeights, padTop: Int, padLeft: Int, act: Activation) {
        let (oh, ow) = (out.shape[1], out.shape[2])
        let kDim = g.k, cout = outChannels
        let pixels = x.shape[0] * oh * ow
        let dst = out.data
        let (tileRows, tiles, threaded) = Self.rowTiles(pixels: pixels, kDim: kDim)
        if threaded {
            parallelFor(tiles, minChunk: 1) { t0, t1 in
                let work = Tensor(uninitialized: [tileRows, kDim])
                for t in t0..<t1 {
                    let p0 = t * tileRows, rows = min(tileRows, pixels - p0)
                    gather(x, work.data, pixels: p0, p0 + rows, group: 0, outSize: (oh, ow), padTop: padTop, padLeft: padLeft)
                    // Inside a parallel loop the packed GEMM runs on this thread.
                    packedGEMM(m: rows, a: work.data, lda: kDim, weights: g, c: dst + p0 * cout, ldc: cout, activation: act)
                }
            }
            return
        }
        let work = Tensor(uninitialized: [pixels, kDim])
        parallelFor(pixels, minChunk: 16) { r0, r1 in
            gather(x, work.data + r0 * kDim, pixels: r0, r1, group: 0, outSize: (oh, ow), padTop: padTop, padLeft: padLeft)
        }
        packedGEMM(m: pixels, a: work.data, lda: kDim, weights: g, c: dst, ldc: cout, activation: act)
    }

    /// Row tiles for im2col: about 256 KB of gathered rows (at least 64) and at most one tile per thread's
    /// share; `threaded` when there are enough tiles for every thread to take whole ones.
    private static func rowTiles(pixels: Int, kDim: Int) -> (rows: Int, tiles: Int, threaded: Bool) {
        let threads = Threading.threads
        let rows = max(64, min((pixels + threads - 1) / threads, (64 << 10) / max(kDim, 1)))
        let tiles = (pixels + rows - 1) / rows
        return (rows, tiles, threads > 1 && tiles >= threads)
    }

    /// im2col + GEMM. With enough pixels each thread takes whole row tiles (about 256 KB of gathered rows,
    /// at least 64): gather, GEMM onto the bias (beta = 1, no separate zeroing or bias pass) and activation,
    /// all while the tile is in cache and without a fork-join per step. Few pixels (late layers at batch 1):
    /// gather once, then split each GEMM across the threads.
    private func general(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int, act: Activation) {
        if let g = gemm {
            generalPacked(x, out, g, padTop: padTop, padLeft: padLeft, act: act)
            return
        }
        let (oh, ow) = (out.shape[1], out.shape[2])
        let ipg = inChannels / groups, opg = outChannels / groups
        let kDim = kernel.h * kernel.w * ipg
        let pixels = x.shape[0] * oh * ow
        let dst = out.data, wt = packed.data, b = bias?.data
        let cout = outChannels
        let (tileRows, tiles, threaded) = Self.rowTiles(pixels: pixels, kDim: kDim)
        if threaded {
            parallelFor(tiles, minChunk: 1) { t0, t1 in
                let work = Tensor(uninitialized: [tileRows, kDim])
                for t in t0..<t1 {
                    let p0 = t * tileRows, rows = min(tileRows, pixels - p0)
                    let c = dst + p0 * cout
                    if let bb = b {
                        for r in 0..<rows { (c + r * cout).update(from: bb, count: cout) }
                    }
                    for g in 0..<groups {
                        gather(x, work.data, pixels: p0, p0 + rows, group: g, outSize: (oh, ow), padTop: padTop, padLeft: padLeft)
                        sgemmBlock(m: rows, n: opg, k: kDim, a: work.data, lda: kDim, b: wt + g * kDim * opg, ldb: opg,
                                   bTransposed: false, c: c + g * opg, ldc: cout, accumulate: b != nil)
                    }
                    applyActivation(act, c, count: rows * cout, channels: cout)
                }
            }
            return
        }
        // Row tiles keep the im2col workspace near 8 MB whatever the image size.
        let bigTile = max(64, min(pixels, (2 << 20) / max(kDim, 1)))
        let work = Tensor(uninitialized: [bigTile, kDim])
        var t0 = 0
        while t0 < pixels {
            let rows = min(bigTile, pixels - t0)
            for g in 0..<groups {
                parallelFor(rows, minChunk: 16) { r0, r1 in
                    gather(x, work.data + r0 * kDim, pixels: t0 + r0, t0 + r1, group: g, outSize: (oh, ow),
                           padTop: padTop, padLeft: padLeft)
                }
                sgemm(m: rows, n: opg, k: kDim, a: work.data, lda: kDim, b: wt + g * kDim * opg, ldb: opg,
                      bTransposed: false, c: dst + t0 * cout + g * opg, ldc: cout)
            }
            biasActivation(dst + t0 * cout, rows: rows, cols: cout, bias: b.map { UnsafePointer($0) }, act: act)
            t0 += rows
        }
    }
}

/// 1-D convolution over `[N, T, C]` (time-major, channels last): a ``Conv2D`` with height 1.
public struct Conv1D: Sendable {
    public let conv: Conv2D

    /// - Parameter weight: PyTorch layout `[out, in/groups, k]`.
    public init(weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0, dilation: Int = 1,
                groups: Int = 1, activation: Activation = .none) {
        precondition(weight.rank == 3, "Conv1D weight must be 3-D, got \(weight.shape)")
        let w4 = weight.reshaped([weight.shape[0], weight.shape[1], 1, weight.shape[2]])
        conv = Conv2D(weight: w4, bias: bias, stride: (1, stride),
                      padding: .explicit(top: 0, left: padding, bottom: 0, right: padding),
                      dilation: (1, dilation), groups: groups, activation: activation)
    }

    public var outChannels: Int { conv.outChannels }

    /// `x`: `[N, T, C]` → `[N, T', C']`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 3, "Conv1D expects [N, T, C], got \(x.shape)")
        let y = conv(x.reshaped([x.shape[0], 1, x.shape[1], x.shape[2]]))
        return y.reshaped([y.shape[0], y.shape[2], y.shape[3]])
    }
}
