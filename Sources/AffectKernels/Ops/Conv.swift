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
/// The kernel is chosen once, at construction, from the layer's shape (`Conv2D.Kernel`), and the weights are packed
/// for it; each call resolves the padding for its input size once (`Conv2D.Geometry`) and runs that kernel:
/// - **pointwise** (1×1, stride 1, no padding; ConvPointwise.swift): one GEMM over all pixels, input used in
///   place — the packed GEMM with weights packed at load and bias, residual and activation in its tile
///   epilogue, or `sgemm` for a PReLU;
/// - **depthwise** (groups = in = out channels; Depthwise.swift, NarrowDepthwise.swift): direct SIMD loops,
///   16 channels per vector (or several pixels per vector below 16 channels);
/// - **small groups** (2–8 channels per group in and out; GroupedConv.swift): a sum of depthwise convolutions
///   (`SmallGroupConv`);
/// - **direct** (at most 4 input channels and outputs a multiple of 16, the stems; ConvDirect.swift), and
///   **narrow direct** (8 outputs at stride 1; NarrowDepthwise.swift): output channels accumulated in vectors
///   straight from the input;
/// - **im2col** (everything else; ConvIm2col.swift): receptive fields gathered in row tiles (bounded
///   workspace), then the packed GEMM (ungrouped, no PReLU) or `sgemm` per group.
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
    /// when `gemm` or `smallGroups` holds the weights.
    public let packed: Tensor
    public let bias: Tensor?
    /// Weights and bias packed for ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)``:
    /// the `.pointwisePacked` and `.im2colPacked` kernels.
    let gemm: PackedWeights?
    /// The `.pointwisePacked` weights quantised per output channel (``Precision/int8``); `gemm` is nil then.
    let int8: Int8Weights?
    /// The `.smallGroups` kernel's depthwise parts.
    let smallGroups: SmallGroupConv?
    /// The kernel that runs this layer, chosen at construction.
    let kind: Kernel

    /// The ways a layer can run, in the order ``select(outChannels:inPerGroup:kernel:stride:dilation:groups:padding:prelu:)``
    /// tries them.
    enum Kernel: Equatable, Sendable {
        /// 1×1, stride 1, ungrouped, unpadded: the packed GEMM over all pixels.
        case pointwisePacked
        /// The same shape with a PReLU (which the packed GEMM's epilogue does not take): `sgemm` in tiles.
        case pointwiseSGEMM
        /// One input channel per output channel. `narrow`: fewer than 16 channels, a divisor of 16, at stride 1
        /// (several pixels per vector); `unrolled`: a square 3×3 or 5×5 window at stride 1 or 2 without
        /// dilation (the window size a constant in the loops). Otherwise the general depthwise loop.
        case depthwise(narrow: Bool, unrolled: Bool)
        /// 2–8 channels per group in and out, more than one group: a sum of depthwise convolutions.
        case smallGroups
        /// Ungrouped, at most 4 input channels, outputs a multiple of 16 (the stems).
        case direct
        /// Ungrouped, 8 outputs, stride 1, no dilation.
        case directNarrow
        /// im2col + the packed GEMM (ungrouped, no PReLU).
        case im2colPacked
        /// im2col + `sgemm` per group.
        case im2colGrouped
    }

    /// The selection point: which kernel runs a layer of this shape.
    static func select(outChannels o: Int, inPerGroup ipg: Int, kernel: (h: Int, w: Int), stride: (h: Int, w: Int),
                       dilation: (h: Int, w: Int), groups: Int, padding: Padding, prelu: Bool) -> Kernel {
        // TF "SAME" pads nothing for a 1×1/1 kernel either.
        let pointwise = kernel == (1, 1) && stride == (1, 1) && dilation == (1, 1) && groups == 1
            && (padding == .valid || padding == .tfSame)
        if pointwise { return prelu ? .pointwiseSGEMM : .pointwisePacked }
        if groups > 1 && ipg == 1 && o == groups {
            let narrow = o < 16 && 16 % o == 0 && stride == (1, 1) && dilation == (1, 1)
            let unrolled = kernel.h == kernel.w && (kernel.h == 3 || kernel.h == 5) && stride.h == stride.w
                && (stride.h == 1 || stride.h == 2) && dilation == (1, 1)
            return .depthwise(narrow: narrow, unrolled: unrolled)
        }
        if SmallGroupConv.handles(inPerGroup: ipg, outChannels: o, groups: groups) { return .smallGroups }
        if groups == 1 && ipg <= 4 && o % 16 == 0 { return .direct }
        if groups == 1 && o == 8 && stride == (1, 1) && dilation == (1, 1) { return .directNarrow }
        return groups == 1 && !prelu ? .im2colPacked : .im2colGrouped
    }

    public var isDepthwise: Bool { if case .depthwise = kind { return true } else { return false } }
    /// 1×1, stride 1, ungrouped and unpadded (TF "SAME" pads nothing for a 1×1/1 kernel either).
    public var isPointwise: Bool { kind == .pointwisePacked || kind == .pointwiseSGEMM }

    /// The number format this layer multiplies in: ``Precision/int8`` only for a pointwise convolution built
    /// with it, float32 otherwise.
    public var precision: Precision { int8 == nil ? .float32 : .int8 }

    /// The shortest reduction a pointwise convolution runs in int8. Below it, quantising every pixel costs more
    /// than the int8 product saves: EfficientNet-B0 at batch 1, one thread, took 7.9 ms with all of its 1×1
    /// layers in int8 and 7.2 ms with those of 64 input channels or more (9.4 ms float32; Xeon, AVX-512 VNNI).
    public static let int8MinInputChannels = 64

    /// - Parameters:
    ///   - weight: PyTorch layout `[out, in/groups, kh, kw]`.
    ///   - precision: ``Precision/int8`` quantises a pointwise convolution without PReLU that reduces over at
    ///     least ``int8MinInputChannels`` channels (weights per output channel, pixels per row at run time, as
    ///     ``int8Linear(m:x:weights:bias:residual:out:activation:inputScale:rowsPerScale:)``); every other layer
    ///     stays float32.
    public init(weight: Tensor, bias: Tensor?, stride: (Int, Int) = (1, 1), padding: Padding = .valid,
                dilation: (Int, Int) = (1, 1), groups: Int = 1, activation: Activation = .none,
                precision: Precision = .float32) {
        precondition(weight.rank == 4, "Conv2D weight must be 4-D, got \(weight.shape)")
        let (o, ipg, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        precondition(o % groups == 0, "out channels \(o) not divisible by groups \(groups)")
        inChannels = ipg * groups; outChannels = o
        kernel = (kh, kw); self.stride = stride; self.dilation = dilation
        self.groups = groups; self.padding = padding; self.activation = activation
        precondition(bias == nil || bias!.count == o)
        self.bias = bias
        var isPReLU = false
        if case .prelu = activation { isPReLU = true }
        kind = Self.select(outChannels: o, inPerGroup: ipg, kernel: (kh, kw), stride: stride, dilation: dilation,
                           groups: groups, padding: padding, prelu: isPReLU)
        let w = weight.data
        let empty = Tensor(uninitialized: [0])
        int8 = kind == .pointwisePacked && precision == .int8
            && (Self.int8MinInputChannels...Int8Weights.maxInputFeatures).contains(ipg)
            ? Int8Weights(weight: w, n: o, k: ipg) : nil
        switch kind {
        case .pointwisePacked:
            // `[out, in, 1, 1]` is the `[n, k]` row-major matrix the packed GEMM takes.
            gemm = int8 != nil ? nil : PackedWeights(weight: w, n: o, k: ipg, bias: bias.map { UnsafePointer($0.data) })
            packed = empty; smallGroups = nil
        case .smallGroups:
            smallGroups = SmallGroupConv(weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                                         groups: groups, activation: activation)
            gemm = nil; packed = empty
        case .im2colPacked:
            // Weight rows reordered to the gathered order (ky, kx, c).
            let kDim = kh * kw * ipg
            let t = Tensor(uninitialized: [o, kDim])
            for oc in 0..<o { for ic in 0..<ipg { for i in 0..<kh { for j in 0..<kw {
                t.data[oc * kDim + (i * kw + j) * ipg + ic] = w[((oc * ipg + ic) * kh + i) * kw + j]
            } } } }
            gemm = PackedWeights(weight: t.data, n: o, k: kDim, bias: bias.map { UnsafePointer($0.data) })
            packed = empty; smallGroups = nil
        case .depthwise:
            let p = Tensor(uninitialized: [kh, kw, o])
            for c in 0..<o { for i in 0..<kh { for j in 0..<kw { p.data[(i * kw + j) * o + c] = w[(c * kh + i) * kw + j] } } }
            packed = p; gemm = nil; smallGroups = nil
        case .pointwiseSGEMM, .direct, .directNarrow, .im2colGrouped:
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
            packed = p; gemm = nil; smallGroups = nil
        }
    }

    /// Folds an inference BatchNorm that follows this convolution into its weight and bias.
    public init(weight: Tensor, bias: Tensor?, batchNorm bn: BatchNorm, stride: (Int, Int) = (1, 1),
                padding: Padding = .valid, dilation: (Int, Int) = (1, 1), groups: Int = 1,
                activation: Activation = .none, precision: Precision = .float32) {
        let (w, b) = bn.fold(weight: weight, bias: bias)
        self.init(weight: w, bias: b, stride: stride, padding: padding, dilation: dilation, groups: groups,
                  activation: activation, precision: precision)
    }

    /// Where the windows fall on an input of a given size: the zero padding before the first row and column,
    /// and the output size. Resolved once per call and handed to the kernel.
    struct Geometry {
        let padTop: Int, padLeft: Int
        let height: Int, width: Int
    }

    func geometry(height: Int, width: Int) -> Geometry {
        let rh = padding.resolve(input: height, kernel: kernel.h, stride: stride.h, dilation: dilation.h, axis: 0)
        let rw = padding.resolve(input: width, kernel: kernel.w, stride: stride.w, dilation: dilation.w, axis: 1)
        return Geometry(padTop: rh.before, padLeft: rw.before, height: rh.out, width: rw.out)
    }

    public func outputSize(height: Int, width: Int) -> (h: Int, w: Int) {
        let g = geometry(height: height, width: width)
        return (g.height, g.width)
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
        let n = x.shape[0]
        let geo = geometry(height: x.shape[1], width: x.shape[2])
        if let sg = smallGroups, geo.height > 0, geo.width > 0 {
            precondition(residual == nil || residual!.shape == [n, geo.height, geo.width, outChannels],
                         "Conv2D residual must have shape \([n, geo.height, geo.width, outChannels])")
            return sg(x, residual: residual)
        }
        let out = Tensor(uninitialized: [n, geo.height, geo.width, outChannels])
        precondition(residual == nil || residual!.shape == out.shape, "Conv2D residual must have shape \(out.shape)")
        if out.count == 0 { return out }
        // Without a fused residual the activation must wait until it has been added.
        let act = residual == nil ? activation : .none
        switch kind {
        case .pointwisePacked:
            if let q = int8 {
                int8Pointwise(x, out, q, residual: residual, inputScale: inputScale)
            } else {
                packedPointwise(x, out, gemm!, residual: residual, inputScale: inputScale)
            }
            return out
        case .pointwiseSGEMM:
            pointwise(x, out, residual: residual, inputScale: inputScale)
            return out
        case .depthwise(let narrow, let unrolled):
            depthwise(x, out, geo, narrow: narrow, unrolled: unrolled, act: act, means: nil)
        case .direct:
            direct(x, out, padTop: geo.padTop, padLeft: geo.padLeft, act: act)
        case .directNarrow:
            directNarrow(x, out, padTop: geo.padTop, padLeft: geo.padLeft, act: act)
        case .im2colPacked:
            im2colPacked(x, out, gemm!, padTop: geo.padTop, padLeft: geo.padLeft, act: act)
        case .im2colGrouped, .smallGroups:
            // `.smallGroups` only reaches here for an empty output, returned above.
            im2col(x, out, padTop: geo.padTop, padLeft: geo.padLeft, act: act)
        }
        if let r = residual {
            addInPlace(out, r)
            activateInPlace(out, activation)
        }
        return out
    }

    /// `x`: `[N, inChannels, H, W]` (PyTorch's layout, as images arrive) → `[N, H', W', outChannels]`. A stem
    /// (the `.direct` kernel) reads it in place; other convolutions transpose it first. Transposing a 224 × 224
    /// RGB image took 68 µs, over 1 % of EfficientNet-B0 at batch 1.
    public func callAsFunction(nchw x: Tensor) -> Tensor {
        precondition(x.rank == 4 && x.shape[1] == inChannels, "Conv2D(nchw:) expects NCHW with \(inChannels) channels, got \(x.shape)")
        guard kind == .direct else { return self(x.nchwToNHWC()) }
        let geo = geometry(height: x.shape[2], width: x.shape[3])
        let out = Tensor(uninitialized: [x.shape[0], geo.height, geo.width, outChannels])
        if out.count > 0 { direct(x, out, padTop: geo.padTop, padLeft: geo.padLeft, act: activation, nchw: true) }
        return out
    }

    /// A depthwise convolution that also returns the per-image channel means of its (activated) output,
    /// `[N, C]`: the squeeze of a following squeeze-and-excitation, summed while each row is in registers.
    public func depthwiseWithMeans(_ x: Tensor) -> (output: Tensor, means: Tensor) {
        guard case .depthwise(let narrow, let unrolled) = kind else { preconditionFailure("depthwiseWithMeans needs a depthwise convolution") }
        precondition(x.rank == 4 && x.shape[3] == inChannels, "Conv2D expects NHWC with \(inChannels) channels, got \(x.shape)")
        let n = x.shape[0]
        let geo = geometry(height: x.shape[1], width: x.shape[2])
        let out = Tensor(uninitialized: [n, geo.height, geo.width, outChannels])
        let means = Tensor.zeros([n, outChannels])
        if out.count == 0 { return (out, means) }
        // One row of sums per output row (rows run on different threads), reduced per image afterwards.
        let rowSums = Tensor(uninitialized: [n * geo.height, outChannels])
        depthwise(x, out, geo, narrow: narrow, unrolled: unrolled, act: activation, means: rowSums.data)
        Self.reduceRowSums(rowSums, into: means, rowsPerImage: geo.height, pixelsPerImage: geo.height * geo.width)
        return (out, means)
    }

    /// Per-image channel means `[N, C]` (zero-filled) from per-output-row channel sums `[N·rowsPerImage, C]`.
    static func reduceRowSums(_ rowSums: Tensor, into means: Tensor, rowsPerImage oh: Int, pixelsPerImage: Int) {
        let (n, c) = (means.shape[0], means.shape[1])
        let inv = 1 / Float(pixelsPerImage)
        for img in 0..<n {
            let m = means.data + img * c
            for r in 0..<oh {
                let s = rowSums.data + (img * oh + r) * c
                for ch in 0..<c { m[ch] += s[ch] }
            }
            for ch in 0..<c { m[ch] *= inv }
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
