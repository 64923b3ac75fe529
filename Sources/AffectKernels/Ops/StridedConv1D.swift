/// Unpadded, ungrouped 1-D convolution over channels-last `[N, T, C]`, computed as GEMMs that read the
/// input in place (no im2col).
///
/// With channels last, taps `j ..< j + s` of output frame `t` are the `s·C` contiguous floats starting at
/// `x[(t·s + j)·C]`, and the next frame's run starts `s·C` floats later. So each group of `stride` taps is one
/// `sgemm` whose A matrix is the input itself with row stride `s·C` (BLAS requires lda ≥ K, which groups of at
/// most `stride` taps satisfy), accumulated into the output. wav2vec 2.0's feature encoder (kernel 3 or 2,
/// stride 2, 512 channels) runs as two or one GEMMs per layer this way.
public struct StridedConv1D: Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    public let stride: Int
    /// `[kernel·inChannels, outChannels]`: row `j·C + c` holds tap `j` of input channel `c`.
    public let packed: Tensor
    public let bias: Tensor?
    public var activation: Activation

    /// - Parameter weight: PyTorch layout `[out, in, kernel]`.
    public init(weight: Tensor, bias: Tensor?, stride: Int, activation: Activation = .none) {
        precondition(weight.rank == 3 && stride > 0, "StridedConv1D weight must be [out, in, k], got \(weight.shape)")
        let (o, i, k) = (weight.shape[0], weight.shape[1], weight.shape[2])
        precondition(bias == nil || bias!.count == o, "StridedConv1D bias does not match the weight")
        inChannels = i; outChannels = o; kernel = k; self.stride = stride
        self.bias = bias; self.activation = activation
        let p = Tensor(uninitialized: [k * i, o])
        let w = weight.data, d = p.data
        for oc in 0..<o { for ic in 0..<i { for j in 0..<k { d[(j * i + ic) * o + oc] = w[(oc * i + ic) * k + j] } } }
        packed = p
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
            var j = 0
            while j < kernel {
                let taps = min(stride, kernel - j)
                sgemm(m: to, n: outChannels, k: taps * c, a: x.data + item * t * c + j * c, lda: stride * c,
                      b: packed.data + j * c * outChannels, ldb: outChannels, bTransposed: false,
                      c: out.data + item * to * outChannels, ldc: outChannels, accumulate: j > 0)
                j += taps
            }
        }
        biasActivation(out.data, rows: n * to, cols: outChannels, bias: bias.map { UnsafePointer($0.data) }, act: activation)
        return out
    }
}
