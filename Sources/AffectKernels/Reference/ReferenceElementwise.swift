extension Reference {
    /// `a + b` element by element, with NumPy broadcasting: shapes are aligned at their last axis, and an axis
    /// of size 1 (or a missing leading one) repeats to match the other operand.
    public static func add(_ a: Values, _ b: Values) -> Values { broadcast(a, b, +) }
    /// `a − b` with NumPy broadcasting.
    public static func sub(_ a: Values, _ b: Values) -> Values { broadcast(a, b, -) }
    /// `a · b` with NumPy broadcasting.
    public static func mul(_ a: Values, _ b: Values) -> Values { broadcast(a, b, *) }

    private static func broadcast(_ a: Values, _ b: Values, _ op: (Float, Float) -> Float) -> Values {
        let rank = max(a.rank, b.rank)
        let sa = [Int](repeating: 1, count: rank - a.rank) + a.shape, sb = [Int](repeating: 1, count: rank - b.rank) + b.shape
        let shape = (0..<rank).map { sa[$0] == 1 ? sb[$0] : sa[$0] }
        precondition((0..<rank).allSatisfy { sa[$0] == shape[$0] || sa[$0] == 1 } && (0..<rank).allSatisfy { sb[$0] == shape[$0] || sb[$0] == 1 },
                     "shapes \(a.shape) and \(b.shape) do not broadcast")
        var y = Values(zeros: shape)
        for i in 0..<y.count {
            // The index along each axis, then the same position in each operand (0 along its size-1 axes).
            var rest = i, ia = 0, ib = 0, strideA = 1, strideB = 1
            for axis in stride(from: rank - 1, through: 0, by: -1) {
                let k = rest % shape[axis]; rest /= shape[axis]
                if sa[axis] != 1 { ia += k * strideA }
                if sb[axis] != 1 { ib += k * strideB }
                strideA *= sa[axis]; strideB *= sb[axis]
            }
            y.data[i] = op(a.data[ia], b.data[ib])
        }
        return y
    }

    /// The arrays joined along `axis` (negative counts from the end); all other axes must match.
    public static func concat(_ xs: [Values], axis: Int) -> Values {
        let rank = xs[0].rank, ax = axis < 0 ? axis + rank : axis
        var shape = xs[0].shape
        shape[ax] = xs.map { $0.shape[ax] }.reduce(0, +)
        let outer = shape[..<ax].reduce(1, *)
        var data: [Float] = []
        for o in 0..<outer {
            for x in xs {
                let inner = x.shape[ax...].reduce(1, *)
                data += x.data[(o * inner)..<((o + 1) * inner)]
            }
        }
        return Values(shape: shape, data: data)
    }

    /// Squeeze-and-excitation (Hu et al.) over `[N, ..., C]`: the channel means `m = mean over positions`, the
    /// gate `s = gate(W₂ · act(W₁ · m + b₁) + b₂)` per image, and `y = x · s` per channel. Weights `[out, in]`
    /// (or 1×1 convolution kernels `[out, in, 1, 1]`).
    public static func squeezeExcite(_ x: Values, reduceWeight: Values, reduceBias: [Float]?, expandWeight: Values,
                                     expandBias: [Float]?, activation: Activation = .silu, gate: Activation = .sigmoid) -> Values {
        let (n, c) = (x.shape[0], x.shape[x.rank - 1])
        let w1 = Values(shape: Array(reduceWeight.shape.prefix(2)), data: reduceWeight.data)
        let w2 = Values(shape: Array(expandWeight.shape.prefix(2)), data: expandWeight.data)
        let s = linear(linear(globalAveragePool(x), weight: w1, bias: reduceBias, activation: activation),
                       weight: w2, bias: expandBias, activation: gate)
        var y = x
        let positions = x.count / max(n * c, 1)
        for img in 0..<n { for p in 0..<positions { for ch in 0..<c {
            let i = (img * positions + p) * c + ch
            y.data[i] = Float(Double(x.data[i]) * Double(s.data[img * c + ch]))
        } } }
        return y
    }
}
