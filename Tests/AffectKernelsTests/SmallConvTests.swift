import Testing
import AffectKernels

/// The direct small-channel convolution and ceil-mode max pooling against their references (`Reference`), on
/// odd sizes, padded channel strides and remainder columns.
@Suite struct SmallConvTests {
    func values(_ n: Int, seed: UInt64) -> [Float] { testValues(n, seed: seed) }

    @Test(arguments: [(3, 10, 3), (10, 16, 3), (16, 32, 3), (28, 48, 3), (64, 128, 2), (32, 6, 1)])
    func matchesReference(cin: Int, cout: Int, k: Int) {
        let (h, w) = (13, 11)
        let weight = Tensor(shape: [cout, cin, k, k], values: values(cout * cin * k * k, seed: 1))
        let bias = Tensor(shape: [cout], values: values(cout, seed: 2))
        let slopes = values(cout, seed: 3).map { abs($0) * 0.5 }
        let x = Tensor(shape: [1, h, w, cin], values: values(h * w * cin, seed: 4))
        let reference = Reference.conv2d(Reference.Values(x), weight: Reference.Values(weight), bias: bias.array,
                                         activation: .prelu(slopes))
        // The input with its channels padded to a stride of cin + 3 (as the previous layer's output is).
        let cs = cin + 3
        let padded = Tensor.zeros([h, w, cs])
        for p in 0..<(h * w) { for c in 0..<cin { padded.data[p * cs + c] = x.data[p * cin + c] } }
        let conv = SmallConv(weight: weight, bias: bias, prelu: slopes)
        let y = conv(padded)
        #expect(y.shape == [h - k + 1, w - k + 1, (cout + 15) / 16 * 16])
        var worst: Float = 0
        for p in 0..<((h - k + 1) * (w - k + 1)) {
            for c in 0..<cout { worst = max(worst, abs(y.data[p * conv.outStride + c] - reference.data[p * cout + c])) }
            for c in cout..<conv.outStride { #expect(y.data[p * conv.outStride + c] == 0) }
        }
        #expect(worst < 1e-4, "cin \(cin) cout \(cout) k \(k): max difference \(worst)")
        // Unpadded input (channel stride = cin, the first layer's case): the same result.
        let unpadded = conv(x.reshaped([h, w, cin]))
        #expect(zip(unpadded.array, y.array).allSatisfy { abs($0 - $1) < 1e-5 })
        // Without PReLU: the plain convolution.
        let plain = SmallConv(weight: weight, bias: bias)(padded)
        let plainRef = Reference.conv2d(Reference.Values(x), weight: Reference.Values(weight), bias: bias.array)
        #expect(abs(plain.data[5 * plain.shape[2] + 1] - plainRef.data[5 * cout + 1]) < 1e-4)
    }

    @Test(arguments: [(22, 3, 2), (21, 3, 2), (9, 3, 2), (8, 2, 2), (7, 2, 2), (46, 3, 2)])
    func maxPoolCeilMatchesReference(size: Int, kernel: Int, stride: Int) {
        let (h, w, c) = (size, size + 1, 32)
        let x = Tensor(shape: [1, h, w, c], values: values(h * w * c, seed: 5))
        let reference = Reference.maxPool2d(Reference.Values(x), kernel: (kernel, kernel), stride: (stride, stride), ceilMode: true)
        let y = maxPoolCeil(x.reshaped([h, w, c]), kernel: kernel, stride: stride)
        #expect([1] + y.shape == reference.shape)
        #expect(y.array == reference.data)
    }
}
