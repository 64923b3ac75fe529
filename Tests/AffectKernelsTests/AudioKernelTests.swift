import Foundation
import Testing
import AffectKernels

/// The kernels the speech models added: vectorised exact GELU and the in-place strided 1-D convolution.
@Suite struct AudioKernelTests {
    /// GELU(x) = ½x(1 + erf(x/√2)) in Double (`Reference.gelu`, libm erf) is the reference.
    @Test func geluMatchesErfDefinition() {
        let n = 200_000
        let xs = (0..<n).map { Float(-12 + 24 * Double($0) / Double(n - 1)) } + [0, -0, 1e-30, -1e-30, 1e30, -1e30, 88, -88]
        let t = Tensor(shape: [xs.count], values: xs)
        let y = activation(t, .gelu)
        var worst = 0.0
        for (i, x) in xs.enumerated() {
            let d = Double(x)
            let err = abs(Double(y.data[i]) - Reference.gelu(d)) / max(1, abs(d))
            worst = max(worst, err)
            #expect(y.data[i].isFinite)
        }
        #expect(worst < 5e-7, "max |gelu − ref| / max(1, |x|) = \(worst)")
    }

    /// StridedConv1D against its reference (`Reference.conv1d`), for the encoder's shapes (kernel 10 / stride 5 from one channel,
    /// kernel 3 and 2 / stride 2 with many channels), batch 2.
    @Test(arguments: [(1, 24, 10, 5, 301), (20, 24, 3, 2, 57), (20, 32, 2, 2, 40), (7, 16, 4, 1, 9)])
    func stridedConvMatchesReference(cin: Int, cout: Int, k: Int, s: Int, t: Int) {
        var rng = SystemRandomNumberGenerator()
        func rand(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } }
        let w = Tensor(shape: [cout, cin, k], values: rand(cout * cin * k))
        let b = Tensor(shape: [cout], values: rand(cout))
        let x = Tensor(shape: [2, t, cin], values: rand(2 * t * cin))
        let conv = StridedConv1D(weight: w, bias: b, stride: s, activation: .none)
        let y = conv(x)
        let to = (t - k) / s + 1
        #expect(y.shape == [2, to, cout])
        let expected = Reference.conv1d(Reference.Values(x), weight: Reference.Values(w), bias: b.array, stride: s)
        #expect(expected.shape == y.shape)
        let worst = zip(y.array, expected.data).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-4)
        #expect(conv(Tensor(shape: [1, k - 1, cin], values: rand((k - 1) * cin))).shape == [1, 0, cout])
    }

    /// The block-wise convolution with a LayerNorm + GELU epilogue (wav2vec 2.0's first "layer" encoder
    /// layer) gives exactly what the convolution, LayerNorm and GELU give as three passes, for lengths that
    /// leave a partial last block, and for batch 2; the fused, in-place LayerNorm matches the separate passes.
    @Test(arguments: [(1, 10, 5, 1003), (3, 3, 2, 130), (1, 10, 5, 10)])
    func blockedConvWithLayerNormEpilogue(cin: Int, k: Int, s: Int, t: Int) {
        var rng = SystemRandomNumberGenerator()
        func rand(_ n: Int, _ r: ClosedRange<Float> = -1...1) -> [Float] { (0..<n).map { _ in Float.random(in: r, using: &rng) } }
        let cout = 48   // whole vectors, so the one-pass and per-row GELU take the same (vector) path
        let conv = StridedConv1D(weight: Tensor(shape: [cout, cin, k], values: rand(cout * cin * k)),
                                 bias: Tensor(shape: [cout], values: rand(cout)), stride: s)
        let ln = LayerNorm(weight: Tensor(shape: [cout], values: rand(cout, 0.5...1.5)),
                           bias: Tensor(shape: [cout], values: rand(cout)), eps: 1e-5)
        let x = Tensor(shape: [2, t, cin], values: rand(2 * t * cin))
        let reference = activation(ln(conv(x)), .gelu)
        let blocked = conv(x, blockFrames: 16) { rows, frames in ln.normalize(rows: frames, rows, rows, activation: .gelu) }
        let fused = ln(conv(x), activation: .gelu, inPlace: true)
        #expect(blocked.shape == reference.shape && fused.shape == reference.shape)
        #expect(blocked.array == reference.array)
        #expect(fused.array == reference.array)
    }
}

