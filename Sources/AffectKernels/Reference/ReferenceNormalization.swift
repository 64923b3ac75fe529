extension Reference {
    /// Layer normalisation over the last axis (Ba et al.), then `act`:
    /// `y = act((x − μ) / √(σ² + ε) · γ + β)` with `μ`, `σ²` the mean and (biased) variance of the row.
    ///
    /// `weight` (γ) and `bias` (β) default to 1 and 0.
    public static func layerNorm(_ x: Values, weight: [Float]?, bias: [Float]?, eps: Float,
                                 activation act: Activation = .none) -> Values {
        let d = x.shape.last ?? 1
        var y = x
        for r in 0..<(x.count / max(d, 1)) {
            let row = (0..<d).map { Double(x.data[r * d + $0]) }
            let mean = row.reduce(0, +) / Double(d)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(d)
            for j in 0..<d {
                let v = (row[j] - mean) / (variance + Double(eps)).squareRoot() * Double(weight?[j] ?? 1) + Double(bias?[j] ?? 0)
                y.data[r * d + j] = Float(activation(v, act, channel: j))
            }
        }
        return y
    }

    /// Group normalisation (Wu & He) over channels-last `[N, ..., C]`: the `C` channels form `groups` groups of
    /// consecutive channels; each (item, group) is normalised by the mean and variance over all its positions
    /// and channels, then `y = act(x̂ · γ_c + β_c)` per channel.
    public static func groupNorm(_ x: Values, groups: Int, weight: [Float]?, bias: [Float]?, eps: Float,
                                 activation act: Activation = .none) -> Values {
        let (n, c) = (x.shape[0], x.shape[x.rank - 1])
        let positions = x.count / max(n * c, 1), perGroup = c / groups
        var y = x
        for item in 0..<n { for g in 0..<groups {
            var members: [Int] = []
            for p in 0..<positions { for ch in g * perGroup..<(g + 1) * perGroup { members.append((item * positions + p) * c + ch) } }
            let mean = members.map { Double(x.data[$0]) }.reduce(0, +) / Double(members.count)
            let variance = members.map { (Double(x.data[$0]) - mean) * (Double(x.data[$0]) - mean) }.reduce(0, +) / Double(members.count)
            for index in members {
                let ch = index % c
                let v = (Double(x.data[index]) - mean) / (variance + Double(eps)).squareRoot() * Double(weight?[ch] ?? 1)
                    + Double(bias?[ch] ?? 0)
                y.data[index] = Float(activation(v, act, channel: ch))
            }
        } }
        return y
    }

    /// Inference batch normalisation (Ioffe & Szegedy) over the last axis with running statistics:
    /// `y = act((x − mean_c) / √(var_c + ε) · γ_c + β_c)`. Unlike ``BatchNorm``, nothing is folded: the
    /// formula as written, so that the folded forms can be checked against it.
    public static func batchNorm(_ x: Values, gamma: [Float]?, beta: [Float]?, mean: [Float], variance: [Float], eps: Float,
                                 activation act: Activation = .none) -> Values {
        let c = x.shape.last ?? 1
        var y = x
        for i in 0..<x.count {
            let ch = i % c
            let v = (Double(x.data[i]) - Double(mean[ch])) / (Double(variance[ch]) + Double(eps)).squareRoot()
                * Double(gamma?[ch] ?? 1) + Double(beta?[ch] ?? 0)
            y.data[i] = Float(activation(v, act, channel: ch))
        }
        return y
    }
}
