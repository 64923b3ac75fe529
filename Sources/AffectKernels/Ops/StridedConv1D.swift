/// Unpadded, ungrouped 1-D convolution over channels-last `[N, T, C]`, computed as one GEMM that reads the
/// input in place (no im2col).
///
/// With channels last, the `k` taps of output frame `t` are the `k·C` contiguous floats starting at
/// `x[t·s·C]`, and the next frame's taps start `s·C` floats later. So the input itself is the GEMM's A matrix
/// with K = k·C and rows `s·C` apart (overlapping when k > s), and the weights, reordered to tap-major
/// `[out][k][C]`, are packed once for ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)``, which
/// also applies bias and activation. wav2vec 2.0's feature encoder (kernel 10, 3 or 2, stride 5 or 2, 512
/// channels) runs this way.
public struct StridedConv1D: Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    public let stride: Int
    /// PyTorch layout `[out, in, kernel]`.
    public let weight: Tensor
    public let bias: Tensor?
    public let activation: Activation
    let packed: PackedWeights

    /// - Parameter weight: PyTorch layout `[out, in, kernel]`.
    public init(weight: Tensor, bias: Tensor?, stride: Int, activation: Activation = .none) {
        precondition(weight.rank == 3 && stride > 0, "StridedConv1D weight must be [out, in, k], got \(weight.shape)")
        let (o, i, k) = (weight.shape[0], weight.shape[1], weight.shape[2])
        precondition(bias == nil || bias!.count == o, "StridedConv1D bias does not match the weight")
        inChannels = i; outChannels = o; kernel = k; self.stride = stride
        self.weight = weight; self.bias = bias; self.activation = activation
        let tapMajor = Tensor(uninitialized: [o, k * i], arena: Arena())
        let w = weight.data, d = tapMajor.data
        for oc in 0..<o { for ic in 0..<i { for j in 0..<k { d[oc * k * i + j * i + ic] = w[(oc * i + ic) * k + j] } } }
        packed = PackedWeights(weight: d, n: o, k: k * i, bias: bias.map { UnsafePointer($0.data) })
        weight.releaseMappedPages()
    }

    /// Output frames for `t` input frames (0 when the input is shorter than the kernel).
    public func outputLength(_ t: Int) -> Int { t < kernel ? 0 : (t - kernel) / stride + 1 }

    /// `x`: `[N, T, inChannels]` → `[N, T', outChannels]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] == inChannels, "StridedConv1D expects [N, T, \(inChannels)], got \(x.shape)")
        let (n, t, c) = (x.shape[0], x.shape[1], inChannels)
        let to = outputLength(t)
        let out = Tensor(uninitialized: [n, to, outChannels])
        if to == 0 { return out }
        for item in 0..<n {
            packedGEMM(m: to, a: x.data + item * t * c, lda: stride * c, weights: packed,
                       c: out.data + item * to * outChannels, ldc: outChannels, activation: activation)
        }
        return out
    }

    /// The convolution with `epilogue(rows, frames)` run on each block of `blockFrames` finished output
    /// frames (`frames × outChannels` floats at `rows`) while the block is still in cache.
    ///
    /// The threads split the frames; each block's product runs on its own thread. Meant for products too
    /// cheap to be worth the GEMM's own threading, followed by a pass over every output: wav2vec 2.0's first
    /// layer (one input channel, kernel 10) produces 65 MB for 10 s of audio, and its LayerNorm and GELU
    /// read it back from L2 here instead of from memory.
    public func callAsFunction(_ x: Tensor, blockFrames: Int,
                               epilogue: (UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] == inChannels, "StridedConv1D expects [N, T, \(inChannels)], got \(x.shape)")
        precondition(blockFrames > 0)
        let (n, t, c) = (x.shape[0], x.shape[1], inChannels)
        let to = outputLength(t)
        let out = Tensor(uninitialized: [n, to, outChannels])
        let blocks = (to + blockFrames - 1) / blockFrames
        let (src, dst, o) = (UnsafePointer(x.data), out.data, outChannels)
        parallelFor(n * blocks, minChunk: 1) { b0, b1 in
            for b in b0..<b1 {
                let (item, f0) = (b / blocks, (b % blocks) * blockFrames)
                let frames = min(blockFrames, to - f0)
                let rows = dst + (item * to + f0) * o
                // Nested in parallelFor, so the product stays on this thread.
                packedGEMM(m: frames, a: src + item * t * c + f0 * stride * c, lda: stride * c, weights: packed,
                           c: rows, ldc: o, activation: activation)
                epilogue(rows, frames)
            }
        }
        return out
    }
}
