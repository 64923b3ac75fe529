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

    /// Winograd F(2×2, 3×3) and F(4×4, 3×3) against the plain convolution (`Reference.conv2d`) and the direct
    /// kernel: output sizes that are and are not multiples of either tile (edge tiles), a tile count that is not a
    /// multiple of the register tile or the chunk, channel counts that are and are not multiples of 16, and NaN
    /// in the padding channels (never read into a result). F(2×2)'s transforms are exact, so it stays within
    /// 1e-4 and 2e-6 of the largest output per input channel; F(4×4)'s (4, 5 and 8 in its matrices) within
    /// 1e-5 of the largest output (4e-6 measured with 64 channels).
    @Test(arguments: [(10, 16, 12, 12), (16, 32, 13, 11), (28, 48, 9, 9), (32, 64, 21, 23), (64, 64, 8, 10),
                      (8, 10, 5, 40), (16, 16, 3, 3), (32, 32, 4, 37), (10, 16, 18, 7)])
    func winogradMatchesReference(cin: Int, cout: Int, h: Int, w: Int) {
        let weight = Tensor(shape: [cout, cin, 3, 3], values: values(cout * cin * 9, seed: 11))
        let bias = Tensor(shape: [cout], values: values(cout, seed: 12))
        let slopes = values(cout, seed: 13).map { abs($0) * 0.5 }
        let x = Tensor(shape: [1, h, w, cin], values: values(h * w * cin, seed: 14))
        let conv = SmallConv(weight: weight, bias: bias, prelu: slopes)
        #expect(conv.usesWinograd)
        let cs = (cin + 15) / 16 * 16
        let padded = Tensor(shape: [h, w, cs], values: [Float](repeating: .nan, count: h * w * cs))
        for p in 0..<(h * w) { for c in 0..<cin { padded.data[p * cs + c] = x.data[p * cin + c] } }
        let direct = conv.direct(padded)
        let reference = Reference.conv2d(Reference.Values(x), weight: Reference.Values(weight), bias: bias.array,
                                         activation: .prelu(slopes))
        let chosen = conv.winogradOutputTile(outputHeight: h - 2, outputWidth: w - 2)
        #expect(conv(padded).array == conv.winograd(padded, outputTile: chosen).array)
        for tile in [2, 4] {
            let y = conv.winograd(padded, outputTile: tile)
            #expect(y.shape == [h - 2, w - 2, conv.outStride])
            var worst: Float = 0, scale: Float = 0
            for p in 0..<((h - 2) * (w - 2)) {
                for c in 0..<cout {
                    let r = reference.data[p * cout + c]
                    worst = max(worst, abs(y.data[p * conv.outStride + c] - r)); scale = max(scale, abs(r))
                    if tile == 2 { #expect(abs(direct.data[p * conv.outStride + c] - r) < 1e-4) }
                }
                for c in cout..<conv.outStride { #expect(y.data[p * conv.outStride + c] == 0) }
            }
            let within = tile == 2 ? worst < 1e-4 && worst <= 2e-6 * scale * Float(cin) : worst <= 1e-5 * scale
            #expect(within,
                    "F(\(tile)×\(tile)) cin \(cin) cout \(cout) \(h)×\(w): max difference \(worst) (scale \(scale))")
            // Without PReLU.
            let plain = SmallConv(weight: weight, bias: bias)
            let plainRef = Reference.conv2d(Reference.Values(x), weight: Reference.Values(weight), bias: bias.array)
            let py = plain.winograd(padded, outputTile: tile)
            #expect(abs(py.data[(h - 3) * plain.outStride + 1] - plainRef.data[(h - 3) * cout + 1]) < 1e-4)
        }
    }

    /// 4×4 tiles where they cost fewer operations: P-Net's and O-Net's maps, not R-Net's 9×9 or maps of a tile
    /// or two.
    @Test func winogradTileForTheMap() {
        let pnet2 = SmallConv(weight: Tensor.zeros([16, 10, 3, 3]), bias: nil)
        let pnet3 = SmallConv(weight: Tensor.zeros([32, 16, 3, 3]), bias: nil)
        let onet2 = SmallConv(weight: Tensor.zeros([64, 32, 3, 3]), bias: nil)
        #expect(pnet2.winogradOutputTile(outputHeight: 538, outputWidth: 958) == 4)
        #expect(pnet3.winogradOutputTile(outputHeight: 266, outputWidth: 476) == 4)
        #expect(onet2.winogradOutputTile(outputHeight: 21, outputWidth: 21) == 4)
        #expect(pnet3.winogradOutputTile(outputHeight: 2, outputWidth: 2) == 2)
        #expect(pnet2.winogradOutputTile(outputHeight: 1, outputWidth: 100) == 2)
    }

    /// The register tile takes output pixels (direct) or Winograd tiles across rows, and threads split those
    /// runs at any point: 1, 2 and 5 threads give the same bits, and the reference's values, on a map wider than
    /// one tile row, for a first layer (3 unpadded channels), a padded 2×2 layer and a Winograd layer.
    @Test(arguments: [(3, 10, 3), (48, 64, 2), (16, 32, 3)])
    func threadCountDoesNotChangeResults(cin: Int, cout: Int, k: Int) {
        let (h, w) = (37, 29)
        let weight = Tensor(shape: [cout, cin, k, k], values: values(cout * cin * k * k, seed: 31))
        let bias = Tensor(shape: [cout], values: values(cout, seed: 32))
        let slopes = values(cout, seed: 33).map { abs($0) * 0.5 }
        let x = Tensor(shape: [1, h, w, cin], values: values(h * w * cin, seed: 34))
        let cs = cin == 3 ? 3 : (cin + 15) / 16 * 16
        let input = Tensor.zeros([h, w, cs])
        for p in 0..<(h * w) { for c in 0..<cin { input.data[p * cs + c] = x.data[p * cin + c] } }
        let conv = SmallConv(weight: weight, bias: bias, prelu: slopes)
        let saved = Threading.threads
        defer { Threading.setThreads(saved) }
        var results: [[Float]] = []
        for t in [1, 2, 5] {
            Threading.setThreads(t)
            results.append(conv(input).array)
        }
        #expect(results[0] == results[1] && results[0] == results[2], "cin \(cin) cout \(cout) k \(k)")
        let reference = Reference.conv2d(Reference.Values(x), weight: Reference.Values(weight), bias: bias.array,
                                         activation: .prelu(slopes))
        var worst: Float = 0
        for p in 0..<((h - k + 1) * (w - k + 1)) {
            for c in 0..<cout { worst = max(worst, abs(results[0][p * conv.outStride + c] - reference.data[p * cout + c])) }
        }
        #expect(worst < 1e-4, "cin \(cin) cout \(cout) k \(k): max difference \(worst)")
    }

    @Test func winogradOnlyWhereItPays() {
        #expect(!SmallConv(weight: Tensor.zeros([10, 3, 3, 3]), bias: nil).usesWinograd)      // P-Net conv1
        #expect(!SmallConv(weight: Tensor.zeros([64, 48, 2, 2]), bias: nil).usesWinograd)     // R-Net conv3
        #expect(SmallConv(weight: Tensor.zeros([16, 10, 3, 3]), bias: nil).usesWinograd)      // P-Net conv2
        // An input whose channel stride is below the input channels rounded up to 16 runs directly.
        let conv = SmallConv(weight: Tensor(shape: [16, 10, 3, 3], values: values(1440, seed: 21)), bias: nil)
        let x = Tensor(shape: [6, 6, 10], values: values(360, seed: 22))
        #expect(conv(x).array == conv.direct(x).array)
    }

    /// The fused convolution and pooling gives the bits of the two calls, at 1, 2 and 5 threads (bands of
    /// pooled rows that share convolution rows with the previous band), for MTCNN's shapes: P-Net's first layer
    /// (3 → 10 channels, 2×2/2 pooling, odd and even maps, so ceil mode pools a last single row and column),
    /// R- and O-Net's (3×3/2 pooling over 3 → 28 and 3 → 32 channels), a padded input and no PReLU; NaN in an
    /// input reaches the same outputs.
    @Test(arguments: [(3, 10, 3, 2, 2, 25, 40), (3, 10, 3, 2, 2, 24, 13), (3, 28, 3, 3, 2, 24, 24),
                      (3, 32, 3, 3, 2, 48, 48), (10, 16, 3, 3, 2, 17, 12), (16, 16, 2, 2, 2, 5, 3),
                      (3, 10, 3, 2, 2, 3, 3), (3, 16, 3, 3, 1, 9, 10)])
    func convolutionWithMaxPoolIsBothCalls(cin: Int, cout: Int, k: Int, pool: Int, stride: Int, h: Int, w: Int) {
        let weight = Tensor(shape: [cout, cin, k, k], values: values(cout * cin * k * k, seed: 41))
        let bias = Tensor(shape: [cout], values: values(cout, seed: 42))
        let slopes = values(cout, seed: 43).map { abs($0) * 0.5 }
        let cs = cin == 3 ? 3 : (cin + 15) / 16 * 16
        var pixels = values(h * w * cs, seed: 44)
        pixels[(h / 2 * w + w / 3) * cs] = .nan
        let x = Tensor(shape: [h, w, cs], values: pixels)
        let saved = Threading.threads
        defer { Threading.setThreads(saved) }
        for conv in [SmallConv(weight: weight, bias: bias, prelu: slopes), SmallConv(weight: weight, bias: bias)] {
            let expected = maxPoolCeil(conv.direct(x), kernel: pool, stride: stride)
            for t in [1, 2, 5] {
                Threading.setThreads(t)
                let y = conv.directMaxPooled(x, kernel: pool, stride: stride)
                #expect(y.shape == expected.shape)
                #expect(y.array.map(\.bitPattern) == expected.array.map(\.bitPattern), "\(h)×\(w) pool \(pool)/\(stride), \(t) threads")
            }
        }
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
