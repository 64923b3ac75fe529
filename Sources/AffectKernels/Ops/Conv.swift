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
/// - **pointwise** (1×1, stride 1, no padding): one `sgemm` over all pixels, input used in place;
/// - **depthwise** (groups = in = out channels): direct SIMD loop, 16 channels per vector;
/// - **general**: im2col in row tiles (bounded workspace) then `sgemm` per group.
public struct Conv2D: Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: (h: Int, w: Int)
    public let stride: (h: Int, w: Int)
    public let dilation: (h: Int, w: Int)
    public let groups: Int
    public let padding: Padding
    public var activation: Activation
    /// Packed weight: depthwise `[kh, kw, C]`; otherwise `[groups][kh·kw·inPerGroup][outPerGroup]`.
    public let packed: Tensor
    public let bias: Tensor?

    public var isDepthwise: Bool { groups == inChannels && groups == outChannels && groups > 1 }
    public var isPointwise: Bool {
        kernel == (1, 1) && stride == (1, 1) && groups == 1 && padding == .valid
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
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[3] == inChannels, "Conv2D expects NHWC with \(inChannels) channels, got \(x.shape)")
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let rh = padding.resolve(input: h, kernel: kernel.h, stride: stride.h, dilation: dilation.h, axis: 0)
        let rw = padding.resolve(input: w, kernel: kernel.w, stride: stride.w, dilation: dilation.w, axis: 1)
        let out = Tensor(uninitialized: [n, rh.out, rw.out, outChannels])
        if out.count == 0 { return out }
        if isPointwise {
            sgemm(m: n * h * w, n: outChannels, k: inChannels, a: x.data, lda: inChannels,
                  b: packed.data, ldb: outChannels, bTransposed: false, c: out.data, ldc: outChannels)
            biasActivation(out.data, rows: n * h * w, cols: outChannels, bias: bias.map { UnsafePointer($0.data) }, act: activation)
        } else if isDepthwise {
            depthwise(x, out, padTop: rh.before, padLeft: rw.before)
        } else if groups == 1 && inChannels <= 4 && outChannels % 16 == 0 {
            direct(x, out, padTop: rh.before, padLeft: rw.before)
        } else {
            general(x, out, padTop: rh.before, padLeft: rw.before)
        }
        return out
    }

    private func depthwise(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int) {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (out.shape[1], out.shape[2])
        let (kh, kw) = kernel
        let (sh, sw, dh, dw) = (stride.h, stride.w, dilation.h, dilation.w)
        let src = x.data, dst = out.data, wt = packed.data
        let b = bias?.data
        let act = activation
        // Output columns whose whole window lies inside the input: no bounds checks there.
        let oxLo = min(ow, max(0, (padLeft + sw - 1) / sw))
        let lastStart = w - 1 - (kw - 1) * dw + padLeft   // (largest in-bounds window start) + padLeft
        let oxHi = lastStart < 0 ? oxLo : max(oxLo, min(ow, lastStart / sw + 1))
        parallelFor(n * oh, minChunk: 1) { r0, r1 in
            for r in r0..<r1 {
                let img = r / oh, oy = r % oh
                let iy0 = oy * sh - padTop
                let ky0 = iy0 >= 0 ? 0 : (-iy0 + dh - 1) / dh
                let ky1 = min(kh, (h - 1 - iy0) / dh + 1)
                let inImg = src + img * h * w * c
                let outRow = dst + (img * oh + oy) * ow * c
                // Channel blocks outermost: a block's k×k weight vectors stay in L1 across the row.
                var cb = 0
                while cb + 16 <= c {
                    let bv = b.map { load($0 + cb) } ?? Vec()
                    for ox in 0..<ow {
                        let ix0 = ox * sw - padLeft
                        var acc = bv
                        if ox >= oxLo && ox < oxHi {
                            for i in ky0..<max(ky0, ky1) {
                                let rowp = inImg + ((iy0 + i * dh) * w + ix0) * c + cb
                                let wp = wt + i * kw * c + cb
                                for j in 0..<kw { acc = acc.addingProduct(load(rowp + j * dw * c), load(wp + j * c)) }
                            }
                        } else {
                            for i in ky0..<max(ky0, ky1) {
                                let iy = iy0 + i * dh
                                for j in 0..<kw {
                                    let ix = ix0 + j * dw
                                    if ix < 0 || ix >= w { continue }
                                    acc = acc.addingProduct(load(inImg + (iy * w + ix) * c + cb), load(wt + (i * kw + j) * c + cb))
                                }
                            }
                        }
                        store(acc, outRow + ox * c + cb)
                    }
                    cb += 16
                }
                if cb < c {
                    for ox in 0..<ow {
                        let ix0 = ox * sw - padLeft
                        for ch in cb..<c {
                            var acc: Float = b?[ch] ?? 0
                            for i in ky0..<max(ky0, ky1) {
                                let iy = iy0 + i * dh
                                for j in 0..<kw {
                                    let ix = ix0 + j * dw
                                    if ix < 0 || ix >= w { continue }
                                    acc += inImg[(iy * w + ix) * c + ch] * wt[(i * kw + j) * c + ch]
                                }
                            }
                            outRow[ox * c + ch] = acc
                        }
                    }
                }
                if act != .none { applyActivation(act, outRow, count: ow * c, channels: c) }
            }
        }
    }

    /// Stems (3 input channels): a GEMM with K = 27 spends its time packing; accumulating 16 output
    /// channels per vector straight from the input is several times faster.
    private func direct(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int) {
        let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow, cout) = (out.shape[1], out.shape[2], outChannels)
        let (kh, kw) = kernel
        let src = x.data, dst = out.data, wt = packed.data
        let b = bias?.data
        let act = activation
        parallelFor(n * oh, minChunk: 1) { r0, r1 in
            for r in r0..<r1 {
                let img = r / oh, oy = r % oh
                let outRow = dst + r * ow * cout
                for ox in 0..<ow {
                    var cb = 0
                    while cb < cout {
                        var acc = b.map { load($0 + cb) } ?? Vec()
                        for i in 0..<kh {
                            let iy = oy * stride.h - padTop + i * dilation.h
                            if iy < 0 || iy >= h { continue }
                            for j in 0..<kw {
                                let ix = ox * stride.w - padLeft + j * dilation.w
                                if ix < 0 || ix >= w { continue }
                                let px = src + ((img * h + iy) * w + ix) * cin
                                let wp = wt + (i * kw + j) * cin * cout + cb
                                for ci in 0..<cin { acc = acc.addingProduct(Vec(repeating: px[ci]), load(wp + ci * cout)) }
                            }
                        }
                        store(acc, outRow + ox * cout + cb)
                        cb += 16
                    }
                }
                if act != .none { applyActivation(act, outRow, count: ow * cout, channels: cout) }
            }
        }
    }

    private func general(_ x: Tensor, _ out: Tensor, padTop: Int, padLeft: Int) {
        let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (oh, ow) = (out.shape[1], out.shape[2])
        let (kh, kw) = kernel
        let ipg = cin / groups, opg = outChannels / groups
        let kDim = kh * kw * ipg
        let pixels = n * oh * ow
        // Row tiles keep the im2col workspace near 8 MB whatever the image size.
        let tileRows = max(64, min(pixels, (2 << 20) / max(kDim, 1)))
        let work = Tensor(uninitialized: [tileRows, kDim])
        let src = x.data, col = work.data
        var t0 = 0
        while t0 < pixels {
            let rows = min(tileRows, pixels - t0)
            for g in 0..<groups {
                parallelFor(rows, minChunk: 16) { r0, r1 in
                    // Pixel coordinates advance incrementally: integer division per row was a visible cost.
                    var img = (t0 + r0) / (oh * ow), oy = ((t0 + r0) / ow) % oh, ox = (t0 + r0) % ow
                    for r in r0..<r1 {
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
                sgemm(m: rows, n: opg, k: kDim, a: col, lda: kDim, b: packed.data + g * kDim * opg, ldb: opg,
                      bTransposed: false, c: out.data + t0 * outChannels + g * opg, ldc: outChannels)
            }
            biasActivation(out.data + t0 * outChannels, rows: rows, cols: outChannels,
                           bias: bias.map { UnsafePointer($0.data) }, act: activation)
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
