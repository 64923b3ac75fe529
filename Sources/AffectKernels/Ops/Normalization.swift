import Foundation

/// Inference batch normalisation: `y = (x − mean) / sqrt(var + eps) · gamma + beta` per channel.
/// Models fold it into the preceding convolution at load (``Conv2D/init(weight:bias:batchNorm:stride:padding:dilation:groups:activation:)``);
/// ``callAsFunction(_:activation:)`` applies it on its own (channels last) where nothing precedes it.
public struct BatchNorm: Sendable {
    public let scale: [Float]
    public let shift: [Float]

    public init(gamma: Tensor?, beta: Tensor?, mean: Tensor, variance: Tensor, eps: Float) {
        let c = mean.count
        var s = [Float](repeating: 1, count: c), b = [Float](repeating: 0, count: c)
        for i in 0..<c {
            // Double for the folding arithmetic: it happens once and must not add error.
            let inv = 1 / (Double(variance.data[i]) + Double(eps)).squareRoot()
            let g = Double(gamma?.data[i] ?? 1)
            s[i] = Float(g * inv)
            b[i] = Float(Double(beta?.data[i] ?? 0) - Double(mean.data[i]) * g * inv)
        }
        scale = s; shift = b
    }

    public var channels: Int { scale.count }

    /// Weight `[out, ...]` and bias folded: `w' = w·s`, `b' = b·s + shift`.
    public func fold(weight: Tensor, bias: Tensor?) -> (Tensor, Tensor) {
        let o = weight.shape[0]
        precondition(o == channels, "BatchNorm over \(channels) channels after a layer with \(o) outputs")
        let per = weight.count / o
        let w = Tensor(uninitialized: weight.shape)
        let b = Tensor(uninitialized: [o])
        for c in 0..<o {
            let s = scale[c]
            for i in 0..<per { w.data[c * per + i] = weight.data[c * per + i] * s }
            b.data[c] = (bias?.data[c] ?? 0) * s + shift[c]
        }
        return (w, b)
    }

    /// Channels-last application with a fused activation.
    public func callAsFunction(_ x: Tensor, activation: Activation = .none) -> Tensor {
        let c = channels
        precondition(x.shape.last == c, "BatchNorm over \(c) channels got \(x.shape)")
        let out = Tensor(uninitialized: x.shape)
        let rows = x.count / c
        scale.withUnsafeBufferPointer { s in shift.withUnsafeBufferPointer { b in
            let sp = s.baseAddress!, bp = b.baseAddress!
            parallelFor(rows, minChunk: max(1, 4096 / c)) { r0, r1 in
                for r in r0..<r1 {
                    let i = x.data + r * c, o = out.data + r * c
                    var j = 0
                    while j + 16 <= c { store(load(i + j) * load(sp + j) + load(bp + j), o + j); j += 16 }
                    while j < c { o[j] = i[j] * sp[j] + bp[j]; j += 1 }
                    applyActivation(activation, o, count: c, channels: c)
                }
            }
        } }
        return out
    }
}

/// Layer normalisation over the last axis (two-pass mean and variance, as PyTorch).
public struct LayerNorm: Sendable {
    public let weight: Tensor?
    public let bias: Tensor?
    public let eps: Float
    public let size: Int

    public init(weight: Tensor?, bias: Tensor?, eps: Float, size: Int? = nil) {
        self.weight = weight; self.bias = bias; self.eps = eps
        self.size = size ?? weight?.count ?? bias?.count ?? 0
    }

    /// `x` normalised over its last axis, then `activation`.
    ///
    /// - Parameters:
    ///   - activation: applied to each finished row while it is in L1 (wav2vec 2.0's feature encoder: GELU),
    ///     instead of in another pass over memory.
    ///   - inPlace: overwrite `x` (which the caller must own and not use again) instead of allocating. For
    ///     the feature encoder's 65 MB first layer, a second buffer that size did not fit the arena's cache and
    ///     was faulted in afresh on every pass.
    public func callAsFunction(_ x: Tensor, activation: Activation = .none, inPlace: Bool = false) -> Tensor {
        let d = size
        precondition(x.shape.last == d, "LayerNorm over \(d) got \(x.shape)")
        let out = inPlace ? x : Tensor(uninitialized: x.shape)
        let rows = x.count / d
        let src = UnsafePointer(x.data), dst = out.data
        parallelFor(rows, minChunk: max(1, 2048 / d)) { r0, r1 in
            normalize(rows: r1 - r0, src + r0 * d, dst + r0 * d, activation: activation)
        }
        return out
    }

    /// Normalises `rows` contiguous rows of ``size`` values from `src` into `dst` (which may equal `src`) on
    /// the calling thread, applying `activation` to each row as it is finished.
    public func normalize(rows: Int, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                          activation: Activation = .none) {
        let d = size
        let g = weight.map { UnsafePointer($0.data) }, b = bias.map { UnsafePointer($0.data) }
        let activate: Bool
        if case .none = activation { activate = false } else { activate = true }
        for r in 0..<rows {
            let i = src + r * d, o = dst + r * d
            var sum = Vec(); var j = 0
            while j + 16 <= d { sum += load(i + j); j += 16 }
            var s = sum.sum(); while j < d { s += i[j]; j += 1 }
            let mean = s / Float(d)
            var sq = Vec(); j = 0
            let mv = Vec(repeating: mean)
            while j + 16 <= d { let t = load(i + j) - mv; sq = sq.addingProduct(t, t); j += 16 }
            var v = sq.sum(); while j < d { let t = i[j] - mean; v += t * t; j += 1 }
            let inv = 1 / (v / Float(d) + eps).squareRoot()
            let iv = Vec(repeating: inv)
            j = 0
            while j + 16 <= d {
                var y = (load(i + j) - mv) * iv
                if let g { y = y * load(g + j) }
                if let b { y = y + load(b + j) }
                store(y, o + j); j += 16
            }
            while j < d {
                var y = (i[j] - mean) * inv
                if let g { y *= g[j] }
                if let b { y += b[j] }
                o[j] = y; j += 1
            }
            if activate { applyActivation(activation, o, count: d, channels: d) }
        }
    }
}

/// Group normalisation over channels-last input `[N, ..., C]`: statistics per (item, group) over all
/// positions and the group's channels, then a per-channel affine transform.
public struct GroupNorm: Sendable {
    public let groups: Int
    public let weight: Tensor?
    public let bias: Tensor?
    public let eps: Float

    public init(groups: Int, weight: Tensor?, bias: Tensor?, eps: Float) {
        self.groups = groups; self.weight = weight; self.bias = bias; self.eps = eps
    }

    /// - Parameter inPlace: overwrite `x` (which the caller must own and not use again) instead of allocating.
    public func callAsFunction(_ x: Tensor, activation: Activation = .none, inPlace: Bool = false) -> Tensor {
        let n = x.shape[0], c = x.shape[x.rank - 1]
        precondition(c % groups == 0, "GroupNorm: \(c) channels in \(groups) groups")
        let positions = x.count / max(n * c, 1)
        let cpg = c / groups
        let out = inPlace ? x : Tensor(uninitialized: x.shape)
        let chunks = max(1, min(Threading.threads * 4, positions / 256))
        // Per-(chunk, channel) sums in Double, each fed by Float partial sums over at most 64 rows (a vector
        // pass over contiguous rows), then reduced per group. Two passes (mean, then squared deviations) keep
        // the variance accurate when the mean is large.
        let sums = UnsafeMutablePointer<Double>.allocate(capacity: chunks * c)
        let channelMean = UnsafeMutablePointer<Float>.allocate(capacity: c)
        defer { sums.deallocate(); channelMean.deallocate() }
        func channelSums(_ base: UnsafePointer<Float>, centred: Bool) {
            sums.initialize(repeating: 0, count: chunks * c)
            parallelFor(chunks, minChunk: 1) { k0, k1 in
                let part = UnsafeMutablePointer<Float>.allocate(capacity: c)
                defer { part.deallocate() }
                for k in k0..<k1 {
                    let acc = sums + k * c
                    var s = positions * k / chunks
                    let s1 = positions * (k + 1) / chunks
                    while s < s1 {
                        let rows = min(64, s1 - s)
                        part.initialize(repeating: 0, count: c)
                        for r in s..<s + rows {
                            let row = base + r * c
                            var j = 0
                            if centred {
                                while j + 16 <= c {
                                    let d = load(row + j) - load(channelMean + j)
                                    store(load(part + j).addingProduct(d, d), part + j); j += 16
                                }
                                while j < c { let d = row[j] - channelMean[j]; part[j] += d * d; j += 1 }
                            } else {
                                while j + 16 <= c { store(load(part + j) + load(row + j), part + j); j += 16 }
                                while j < c { part[j] += row[j]; j += 1 }
                            }
                        }
                        for j in 0..<c { acc[j] += Double(part[j]) }
                        s += rows
                    }
                }
            }
        }
        func groupTotal(_ g: Int) -> Double {
            var t = 0.0
            for k in 0..<chunks { for ch in g * cpg..<(g + 1) * cpg { t += sums[k * c + ch] } }
            return t
        }
        let count = Double(positions * cpg)
        for item in 0..<n {
            let base = UnsafePointer(x.data + item * positions * c)
            channelSums(base, centred: false)
            var mean = [Float](repeating: 0, count: groups)
            for g in 0..<groups {
                mean[g] = Float(groupTotal(g) / count)
                for ch in g * cpg..<(g + 1) * cpg { channelMean[ch] = mean[g] }
            }
            channelSums(base, centred: true)
            var scale = [Float](repeating: 0, count: c), shift = [Float](repeating: 0, count: c)
            for g in 0..<groups {
                let inv = Float(1 / (groupTotal(g) / count + Double(eps)).squareRoot())
                for ch in g * cpg..<(g + 1) * cpg {
                    let gm = weight?.data[ch] ?? 1
                    scale[ch] = inv * gm
                    shift[ch] = (bias?.data[ch] ?? 0) - mean[g] * inv * gm
                }
            }
            let dst = out.data + item * positions * c
            scale.withUnsafeBufferPointer { sp in shift.withUnsafeBufferPointer { bp in
                let s = sp.baseAddress!, b = bp.baseAddress!
                parallelFor(positions, minChunk: max(1, 4096 / c)) { p0, p1 in
                    for p in p0..<p1 {
                        let i = base + p * c, o = dst + p * c
                        var j = 0
                        while j + 16 <= c { store(load(i + j) * load(s + j) + load(b + j), o + j); j += 16 }
                        while j < c { o[j] = i[j] * s[j] + b[j]; j += 1 }
                        applyActivation(activation, o, count: c, channels: c)
                    }
                }
            } }
        }
        return out
    }
}
