extension Reference {
    /// Where the windows of a convolution or pooling fall along one axis of `size` input pixels: the zero
    /// padding before the first window, and how many windows there are. A window spans `(kernel − 1)·dilation + 1`
    /// pixels and windows start `stride` apart.
    /// - Explicit padding (PyTorch): `count = ⌊(size + before + after − span) / stride⌋ + 1`; in ceil mode the
    ///   division rounds up, but a window that would start past the input and the leading padding is dropped.
    /// - TF "SAME": `count = ⌈size / stride⌉`, and the padding that needs, `(count − 1)·stride + span − size`,
    ///   goes half before, the odd pixel after.
    public static func windows(size: Int, kernel: Int, stride: Int, dilation: Int = 1, padding: Padding, axis: Int,
                               ceilMode: Bool = false) -> (before: Int, count: Int) {
        let span = (kernel - 1) * dilation + 1
        switch padding {
        case .tfSame:
            let count = (size + stride - 1) / stride
            return (max((count - 1) * stride + span - size, 0) / 2, count)
        case .explicit(let top, let left, let bottom, let right):
            let (before, after) = axis == 0 ? (top, bottom) : (left, right)
            let padded = size + before + after
            guard padded >= span else { return (before, 0) }
            var count = (padded - span + (ceilMode ? stride - 1 : 0)) / stride + 1
            if ceilMode && (count - 1) * stride >= size + before { count -= 1 }
            return (before, count)
        }
    }

    /// 2-D convolution over channels-last input, as `torch.nn.functional.conv2d` defines it (cross-correlation):
    ///
    ///     y[n, oy, ox, o] = act( b[o] + r[n, oy, ox, o]
    ///                            + Σ_{i, ky, kx} s[n, g·I + i] · x[n, oy·sh − pt + ky·dh, ox·sw − pl + kx·dw, g·I + i]
    ///                                                                                           · W[o, i, ky, kx] )
    ///
    /// with `I = C / groups` input channels per group, `g = o / (O / groups)` the group of output `o`, pixels
    /// outside the input read as zero and `(pt, pl)` from ``windows(size:kernel:stride:dilation:padding:axis:ceilMode:)``.
    /// Pointwise (1×1), depthwise (groups = C = O), grouped and dense convolutions are all this one sum.
    ///
    /// - Parameters:
    ///   - x: `[N, H, W, C]`.
    ///   - weight: `[O, C/groups, kh, kw]`.
    ///   - residual: optional `[N, H', W', O]` added before the activation (a skip connection).
    ///   - inputScale: optional `[N, C]` factors multiplying the input channels first (a squeeze-and-excitation gate).
    /// - Returns: `[N, H', W', O]`.
    public static func conv2d(_ x: Values, weight: Values, bias: [Float]? = nil, stride: (Int, Int) = (1, 1),
                              padding: Padding = .valid, dilation: (Int, Int) = (1, 1), groups: Int = 1,
                              activation act: Activation = .none, residual: Values? = nil,
                              inputScale: [Float]? = nil) -> Values {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, perGroupIn, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        precondition(perGroupIn * groups == c && o % groups == 0, "conv2d: weight \(weight.shape) for \(c) channels in \(groups) groups")
        let perGroupOut = o / groups
        let rows = windows(size: h, kernel: kh, stride: stride.0, dilation: dilation.0, padding: padding, axis: 0)
        let cols = windows(size: w, kernel: kw, stride: stride.1, dilation: dilation.1, padding: padding, axis: 1)
        var y = Values(zeros: [n, rows.count, cols.count, o])
        for img in 0..<n { for oy in 0..<rows.count { for ox in 0..<cols.count { for oc in 0..<o {
            let g = oc / perGroupOut
            var sum = Double(bias?[oc] ?? 0)
            for ky in 0..<kh { for kx in 0..<kw {
                let iy = oy * stride.0 - rows.before + ky * dilation.0
                let ix = ox * stride.1 - cols.before + kx * dilation.1
                if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                for i in 0..<perGroupIn {
                    let ic = g * perGroupIn + i
                    var v = Double(x.data[((img * h + iy) * w + ix) * c + ic])
                    if let s = inputScale { v *= Double(s[img * c + ic]) }
                    sum += v * Double(weight.data[((oc * perGroupIn + i) * kh + ky) * kw + kx])
                }
            } }
            let index = ((img * rows.count + oy) * cols.count + ox) * o + oc
            if let r = residual { sum += Double(r.data[index]) }
            y.data[index] = Float(activation(sum, act, channel: oc))
        } } } }
        return y
    }

    /// 1-D convolution over time-major, channels-last input, as `torch.nn.functional.conv1d`:
    ///
    ///     y[n, t, o] = act( b[o] + Σ_{i, j} x[n, t·stride − padding + j·dilation, g·I + i] · W[o, i, j] )
    ///
    /// with `I = C / groups`, `g = o / (O / groups)`, frames outside the input read as zero, and
    /// `⌊(T + 2·padding − (k − 1)·dilation − 1) / stride⌋ + 1` output frames (none when the window does not fit).
    ///
    /// - Parameters:
    ///   - x: `[N, T, C]`.
    ///   - weight: `[O, C/groups, k]`.
    /// - Returns: `[N, T', O]`.
    public static func conv1d(_ x: Values, weight: Values, bias: [Float]? = nil, stride: Int = 1, padding: Int = 0,
                              dilation: Int = 1, groups: Int = 1, activation act: Activation = .none) -> Values {
        let (n, t, c) = (x.shape[0], x.shape[1], x.shape[2])
        let (o, perGroupIn, k) = (weight.shape[0], weight.shape[1], weight.shape[2])
        precondition(perGroupIn * groups == c && o % groups == 0, "conv1d: weight \(weight.shape) for \(c) channels in \(groups) groups")
        let perGroupOut = o / groups
        let span = (k - 1) * dilation + 1
        let frames = t + 2 * padding < span ? 0 : (t + 2 * padding - span) / stride + 1
        var y = Values(zeros: [n, frames, o])
        for item in 0..<n { for f in 0..<frames { for oc in 0..<o {
            let g = oc / perGroupOut
            var sum = Double(bias?[oc] ?? 0)
            for j in 0..<k {
                let ti = f * stride - padding + j * dilation
                if ti < 0 || ti >= t { continue }
                for i in 0..<perGroupIn {
                    sum += Double(x.data[(item * t + ti) * c + g * perGroupIn + i]) * Double(weight.data[(oc * perGroupIn + i) * k + j])
                }
            }
            y.data[(item * frames + f) * o + oc] = Float(activation(sum, act, channel: oc))
        } } }
        return y
    }
}
