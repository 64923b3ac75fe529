/// Grouped, stride-1, zero-padded 1-D convolution over channels-last `[N, T, C]` as one packed GEMM across
/// all groups: wav2vec 2.0's positional convolution (768 channels in 16 groups, kernel 128, padding 64).
///
/// The input is first copied group-major with its padding, `[groups][T + 2·pad][C/groups]`, so that the
/// `kernel` taps of output frame `t` in group `g` are `kernel·C/groups` contiguous floats and frame `t + 1`'s
/// start one group-row later: the copy is the GEMM's A with overlapping rows, read in place. The weights,
/// reordered tap-major per output channel, are packed once with one panel set per group; bias and activation
/// run in the GEMM's epilogue.
public struct GroupedConv1D: Sendable {
    public let channels: Int
    public let outChannels: Int
    public let kernel: Int
    public let padding: Int
    public let groups: Int
    public let activation: Activation
    let packed: PackedWeights

    /// - Parameter weight: PyTorch layout `[out, in/groups, kernel]`.
    public init(weight: Tensor, bias: Tensor?, padding: Int, groups: Int, activation: Activation = .none) {
        precondition(weight.rank == 3, "GroupedConv1D weight must be [out, in/groups, k], got \(weight.shape)")
        let (o, cpg, k) = (weight.shape[0], weight.shape[1], weight.shape[2])
        precondition(groups > 0 && o % groups == 0 && padding >= 0, "GroupedConv1D: \(o) outputs in \(groups) groups")
        precondition(bias == nil || bias!.count == o, "GroupedConv1D bias does not match the weight")
        channels = cpg * groups; outChannels = o; kernel = k; self.padding = padding; self.groups = groups
        self.activation = activation
        let tapMajor = Tensor(uninitialized: [o, k * cpg], arena: Arena())
        let w = weight.data, d = tapMajor.data
        for oc in 0..<o { for ic in 0..<cpg { for j in 0..<k { d[oc * k * cpg + j * cpg + ic] = w[(oc * cpg + ic) * k + j] } } }
        packed = PackedWeights(weight: d, n: o, k: k * cpg, bias: bias.map { UnsafePointer($0.data) }, groups: groups)
        weight.releaseMappedPages()
    }

    /// Output frames for `t` input frames.
    public func outputLength(_ t: Int) -> Int { max(0, t + 2 * padding - kernel + 1) }

    /// `x`: `[N, T, channels]` → `[N, frames, outChannels]`, where `frames` (at most ``outputLength(_:)``)
    /// lets a caller skip trailing frames it would drop (wav2vec 2.0 drops the even kernel's extra one).
    public func callAsFunction(_ x: Tensor, frames: Int? = nil) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] == channels, "GroupedConv1D expects [N, T, \(channels)], got \(x.shape)")
        let (n, t) = (x.shape[0], x.shape[1])
        let to = min(frames ?? outputLength(t), outputLength(t))
        let out = Tensor(uninitialized: [n, to, outChannels])
        if to == 0 { return out }
        let cpg = channels / groups, padded = t + 2 * padding
        let grouped = Tensor(uninitialized: [groups, padded, cpg])
        for item in 0..<n {
            let src = x.data + item * t * channels, dst = grouped.data
            parallelFor(groups, minChunk: 1) { g0, g1 in
                for g in g0..<g1 {
                    let gp = dst + g * padded * cpg
                    gp.initialize(repeating: 0, count: padding * cpg)
                    for f in 0..<t { (gp + (padding + f) * cpg).update(from: src + f * channels + g * cpg, count: cpg) }
                    (gp + (padding + t) * cpg).initialize(repeating: 0, count: padding * cpg)
                }
            }
            packedGEMM(m: to, a: grouped.data, lda: cpg, weights: packed, c: out.data + item * to * outChannels,
                       ldc: outChannels, activation: activation, aGroupStride: padded * cpg)
        }
        return out
    }
}
