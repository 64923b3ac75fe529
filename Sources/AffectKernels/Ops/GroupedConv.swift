/// A grouped convolution with as many outputs as inputs per group and only a few of each (MobileFaceNet's
/// second stem layer: 64 groups of 2 → 2), run as `inPerGroup` depthwise convolutions.
///
/// im2col + GEMM would run one GEMM per group with N = 2 and K = 18, nearly all overhead (it was more than
/// half of MobileFaceNet's time). Output channel `o` of group `g = o / m` sums, over `i < m`, input channel
/// `g·m + i` times `w[o][i]`: so with copy `i` of the input permuted so that lane `o` holds channel `g·m + i`,
/// the convolution is the sum of `m` depthwise convolutions of those copies, each with weights `w[·][i]`.
struct SmallGroupConv: Sendable {
    /// Channels per group (in = out).
    let perGroup: Int
    /// Depthwise part `i`: weights `w[·][i]`; the first has the bias, the last the activation.
    let parts: [Conv2D]

    /// Whether a layer of this shape runs this way: more than one group, each with between 2 and 8 input and
    /// as many output channels.
    static func handles(inPerGroup m: Int, outChannels o: Int, groups: Int) -> Bool {
        groups > 1 && m >= 2 && m <= 8 && o == m * groups
    }

    /// Needs a shape that ``handles(inPerGroup:outChannels:groups:)``.
    init(weight: Tensor, bias: Tensor?, stride: (Int, Int), padding: Padding, dilation: (Int, Int), groups: Int,
         activation: Activation) {
        let (o, m, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
        precondition(Self.handles(inPerGroup: m, outChannels: o, groups: groups), "SmallGroupConv: \(o) outputs of \(m) per group in \(groups) groups")
        perGroup = m
        parts = (0..<m).map { i in
            let part = Tensor(uninitialized: [o, 1, kh, kw])
            for c in 0..<o {
                (part.data + c * kh * kw).update(from: weight.data + (c * m + i) * kh * kw, count: kh * kw)
            }
            return Conv2D(weight: part, bias: i == 0 ? bias : nil, stride: stride, padding: padding, dilation: dilation,
                          groups: o, activation: i == m - 1 ? activation : .none)
        }
    }

    /// `act(conv(x) + bias + residual)`.
    func callAsFunction(_ x: Tensor, residual: Tensor?) -> Tensor {
        let c = x.shape[3], m = perGroup
        let pixels = x.count / c
        var y = residual
        for (i, part) in parts.enumerated() {
            // Copy `i`: lane o ← channel (o / m)·m + i.
            let xi = Tensor(uninitialized: x.shape)
            let src = x.data, dst = xi.data
            parallelFor(pixels, minChunk: 64) { p0, p1 in
                for p in p0..<p1 {
                    let s = src + p * c, d = dst + p * c
                    var g = 0
                    while g < c {
                        let v = s[g + i]
                        for j in 0..<m { d[g + j] = v }
                        g += m
                    }
                }
            }
            y = part(xi, residual: y)
        }
        return y!
    }
}
