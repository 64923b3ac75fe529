extension Reference {
    /// Max pooling over `[N, H, W, C]`: each output is the largest input in its window; padding never wins
    /// (PyTorch pads with −∞). Windows from ``windows(size:kernel:stride:dilation:padding:axis:ceilMode:)``.
    public static func maxPool2d(_ x: Values, kernel: (Int, Int), stride: (Int, Int), padding: Padding = .valid,
                                 ceilMode: Bool = false) -> Values {
        pool(x, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode) { values, _ in
            values.max() ?? -.infinity
        }
    }

    /// Average pooling over `[N, H, W, C]`: the mean of the window's inputs. With `countIncludePad`
    /// (PyTorch's `count_include_pad`, explicit padding only) the divisor is the window clipped to the padded
    /// input, padding included, but not the overhang of a ceil-mode window; otherwise the number of inputs.
    /// TF "SAME" never counts its padding.
    public static func avgPool2d(_ x: Values, kernel: (Int, Int), stride: (Int, Int), padding: Padding = .valid,
                                 ceilMode: Bool = false, countIncludePad: Bool = true) -> Values {
        var after = (0, 0)
        if case .explicit(_, _, let bottom, let right) = padding { after = (bottom, right) }
        let (h, w) = (x.shape[1], x.shape[2])
        return pool(x, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode) { values, start in
            var divisor = Double(values.count)
            if countIncludePad && padding != .tfSame {
                let rows = min(start.0 + kernel.0, h + after.0) - start.0
                let cols = min(start.1 + kernel.1, w + after.1) - start.1
                divisor = Double(rows * cols)
            }
            return values.reduce(0, +) / divisor
        }
    }

    /// Calls `reduce` with the inputs of each window (and the window's first row and column, which may lie in
    /// the padding).
    private static func pool(_ x: Values, kernel: (Int, Int), stride: (Int, Int), padding: Padding, ceilMode: Bool,
                             _ reduce: ([Double], (Int, Int)) -> Double) -> Values {
        let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let rows = windows(size: h, kernel: kernel.0, stride: stride.0, padding: padding, axis: 0, ceilMode: ceilMode)
        let cols = windows(size: w, kernel: kernel.1, stride: stride.1, padding: padding, axis: 1, ceilMode: ceilMode)
        var y = Values(zeros: [n, rows.count, cols.count, c])
        for img in 0..<n { for oy in 0..<rows.count { for ox in 0..<cols.count { for ch in 0..<c {
            let start = (oy * stride.0 - rows.before, ox * stride.1 - cols.before)
            var values: [Double] = []
            for iy in start.0..<(start.0 + kernel.0) where iy >= 0 && iy < h {
                for ix in start.1..<(start.1 + kernel.1) where ix >= 0 && ix < w {
                    values.append(Double(x.data[((img * h + iy) * w + ix) * c + ch]))
                }
            }
            y.data[((img * rows.count + oy) * cols.count + ox) * c + ch] = Float(reduce(values, start))
        } } } }
        return y
    }

    /// The mean over every position: `[N, ..., C]` → `[N, C]`.
    public static func globalAveragePool(_ x: Values) -> Values {
        let (n, c) = (x.shape[0], x.shape[x.rank - 1])
        let positions = x.count / max(n * c, 1)
        var y = Values(zeros: [n, c])
        for img in 0..<n { for ch in 0..<c {
            var sum = 0.0
            for p in 0..<positions { sum += Double(x.data[(img * positions + p) * c + ch]) }
            y.data[img * c + ch] = Float(sum / Double(positions))
        } }
        return y
    }
}
