import Testing
import AffectKernels

/// The whole-image kernels (planar stem convolutions, channels-last 3×3 depthwise, stride-2 max pooling and
/// the fused conv + global average) against their references (`Reference`), on one-pixel, odd and
/// partial-vector maps.
@Suite struct SmallMapKernelTests {
    func values(_ n: Int, seed: UInt64) -> [Float] { testValues(n, seed: seed) }

    func maxError(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? 0 }

    static let sizes = [(1, 1), (1, 2), (2, 1), (3, 3), (7, 8), (15, 15), (8, 13)]

    @Test(arguments: sizes)
    func depthwiseMatchesReference(h: Int, w: Int) {
        let c = 32
        let weight = Tensor(shape: [c, 1, 3, 3], values: values(c * 9, seed: 1))
        let x = Tensor(shape: [1, h, w, c], values: values(h * w * c, seed: 2))
        let reference = Reference.conv2d(Reference.Values(x), weight: Reference.Values(weight), padding: .tfSame, groups: c)
        let taps = Tensor(uninitialized: [9, c])
        for ch in 0..<c { for t in 0..<9 { taps.data[t * c + ch] = weight.data[ch * 9 + t] } }
        let out = Tensor(uninitialized: [h, w, c])
        depthwise3x3Same(x.data, height: h, width: w, channels: c, weights: taps.data, out.data)
        #expect(maxError(out.array, reference.data) < 1e-5)
    }

    @Test(arguments: sizes)
    func maxPoolMatchesReference(h: Int, w: Int) {
        let c = 16
        let x = Tensor(shape: [1, h, w, c], values: values(h * w * c, seed: 3))
        for k in [2, 3] {
            let reference = Reference.maxPool2d(Reference.Values(x), kernel: (k, k), stride: (2, 2), padding: .tfSame)
            let out = Tensor(uninitialized: [(h + 1) / 2, (w + 1) / 2, c])
            maxPoolStride2Same(x.data, height: h, width: w, channels: c, kernel: k, out.data)
            #expect(out.array == reference.data, "kernel \(k)")
        }
    }

    /// The even pixels are what a 1×1 stride-2 "same" convolution reads: identity weights give them back.
    @Test(arguments: sizes)
    func subsampleMatchesStridedConv(h: Int, w: Int) {
        let c = 32
        let x = Tensor(shape: [1, h, w, c], values: values(h * w * c, seed: 15))
        let identity = Tensor.zeros([c, c, 1, 1])
        for i in 0..<c { identity.data[i * c + i] = 1 }
        let reference = Reference.conv2d(Reference.Values(x), weight: Reference.Values(identity), stride: (2, 2), padding: .tfSame)
        let out = Tensor(uninitialized: [(h + 1) / 2, (w + 1) / 2, c])
        subsampleStride2(x.data, height: h, width: w, channels: c, out.data)
        #expect(out.array == reference.data)
    }

    /// Rows computed in pieces (as one image's layers are split across threads) give the whole map's bits, and
    /// each piece writes only its own rows: the depthwise reads neighbouring input rows, the pooling two input
    /// rows per output row.
    @Test(arguments: sizes)
    func rowPiecesComposeTheWholeMap(h: Int, w: Int) {
        let c = 16
        let x = Tensor(shape: [1, h, w, c], values: values(h * w * c, seed: 21))
        let taps = Tensor(shape: [9, c], values: values(9 * c, seed: 22))
        let (oh, ow) = ((h + 1) / 2, (w + 1) / 2)
        let untouched: Float = -1234
        /// Runs `kernel` on pieces of one and two rows, top to bottom, checking after each that the rows below
        /// it are still `untouched`; returns the map.
        func inPieces(rows: Int, width: Int, _ kernel: (UnsafeMutablePointer<Float>, Range<Int>) -> Void) -> [Float] {
            let out = Tensor(shape: [rows, width, c], values: [Float](repeating: untouched, count: rows * width * c))
            var y = 0, count = 0
            while y < rows {
                let e = min(rows, y + 1 + count % 2)
                kernel(out.data, y..<e)
                #expect(out.array[(e * width * c)...].allSatisfy { $0 == untouched }, "rows \(y)..<\(e) wrote below")
                (y, count) = (e, count + 1)
            }
            return out.array
        }
        let whole = Tensor(uninitialized: [h, w, c])
        depthwise3x3Same(x.data, height: h, width: w, channels: c, weights: taps.data, whole.data)
        let split = inPieces(rows: h, width: w) {
            depthwise3x3Same(x.data, height: h, width: w, channels: c, weights: taps.data, $0, rows: $1)
        }
        #expect(split == whole.array, "depthwise")
        for k in [2, 3] {
            let whole = Tensor(uninitialized: [oh, ow, c])
            maxPoolStride2Same(x.data, height: h, width: w, channels: c, kernel: k, whole.data)
            let split = inPieces(rows: oh, width: ow) {
                maxPoolStride2Same(x.data, height: h, width: w, channels: c, kernel: k, $0, rows: $1)
            }
            #expect(split == whole.array, "max pool \(k)")
        }
        let even = Tensor(uninitialized: [oh, ow, c])
        subsampleStride2(x.data, height: h, width: w, channels: c, even.data)
        let evenSplit = inPieces(rows: oh, width: ow) { subsampleStride2(x.data, height: h, width: w, channels: c, $0, rows: $1) }
        #expect(evenSplit == even.array, "subsample")
    }

    @Test(arguments: sizes)
    func convGlobalAverageMatchesReference(h: Int, w: Int) {
        let (c, o) = (32, 7)
        let weight = Tensor(shape: [o, c, 3, 3], values: values(o * c * 9, seed: 4))
        let bias = Tensor(shape: [o], values: values(o, seed: 5))
        let x = Tensor(shape: [1, h, w, c], values: values(h * w * c, seed: 6))
        let reference = Reference.globalAveragePool(Reference.conv2d(Reference.Values(x), weight: Reference.Values(weight), bias: bias.array,
                                                                     padding: .tfSame))
        let packed = Tensor(uninitialized: [o, 9, c])
        for oc in 0..<o { for ic in 0..<c { for t in 0..<9 { packed.data[(oc * 9 + t) * c + ic] = weight.data[(oc * c + ic) * 9 + t] } } }
        let out = Tensor(uninitialized: [o])
        convSameGlobalAverage(x.data, height: h, width: w, channels: c, kernel: (3, 3), weights: packed.data,
                              bias: bias.data, outChannels: o, out.data)
        #expect(maxError(out.array, reference.data) < 1e-4)
    }

    /// Two planar 3×3 convs (1 → 8 → 8, ReLU), a planar depthwise on a zero-bordered copy and the pointwise
    /// conv to channels-last, against the same layers' references on NHWC.
    @Test(arguments: [(7, 9), (20, 33), (64, 64)])
    func planarStemMatchesReference(h: Int, w: Int) {
        let w1 = Tensor(shape: [8, 1, 3, 3], values: values(72, seed: 7)), b1 = Tensor(shape: [8], values: values(8, seed: 8))
        let w2 = Tensor(shape: [8, 8, 3, 3], values: values(576, seed: 9)), b2 = Tensor(shape: [8], values: values(8, seed: 10))
        let dw = Tensor(shape: [8, 1, 3, 3], values: values(72, seed: 11))
        let pw = Tensor(shape: [16, 8, 1, 1], values: values(128, seed: 12)), pb = Tensor(shape: [16], values: values(16, seed: 13))
        let x = Tensor(shape: [1, h, w, 1], values: values(h * w, seed: 14))
        var y = Reference.conv2d(Reference.Values(x), weight: Reference.Values(w1), bias: b1.array, activation: .relu)
        y = Reference.conv2d(y, weight: Reference.Values(w2), bias: b2.array, activation: .relu)
        let stemReference = y
        let reference = Reference.conv2d(Reference.conv2d(y, weight: Reference.Values(dw), padding: .tfSame, groups: 8),
                                         weight: Reference.Values(pw), bias: pb.array, activation: .relu)

        let s = (w + 15) / 16 * 16
        let input = Tensor.zeros([h + 1, s])
        for r in 0..<h { for col in 0..<w { input.data[r * s + col] = x.data[r * w + col] } }
        let (h1, h2, w2o) = (h - 2, h - 4, w - 4)
        let a = Tensor.zeros([8 * h1 + 1, s])
        // Held in lets: `packPlanarConv8(w).data` on a temporary let its buffer go back to the shared arena
        // before the kernel read it, and a test running in parallel could reuse it (a rare wrong result).
        let packed1 = packPlanarConv8(w1), packed2 = packPlanarConv8(w2)
        planarConv3x3x8(input.data, inChannels: 1, inPlane: h * s, a.data, outPlane: h1 * s, rowStride: s, rows: h1,
                        weights: packed1.data, bias: b1.data, relu: true)
        let paddedPlane = (h2 + 2) * s
        let padded = Tensor.zeros([8 * (h2 + 2) + 2, s])
        planarConv3x3x8(a.data, inChannels: 8, inPlane: h1 * s, padded.data + s + 1, outPlane: paddedPlane, rowStride: s,
                        rows: h2, weights: packed2.data, bias: b2.data, relu: true)
        withExtendedLifetime((packed1, packed2)) {}
        var stemError: Float = 0
        for c in 0..<8 { for r in 0..<h2 { for col in 0..<w2o {
            stemError = max(stemError, abs(padded.data[c * paddedPlane + (r + 1) * s + col + 1] - stemReference.data[(r * w2o + col) * 8 + c]))
        } } }
        #expect(stemError < 1e-5)
        // Zero border, as the model restores it after the conv wrote its don't-care columns.
        for c in 0..<8 {
            let plane = padded.data + c * paddedPlane
            for col in 0..<s { plane[col] = 0; plane[(h2 + 1) * s + col] = 0 }
            for r in 1...h2 { for col in (w2o + 1)..<s { plane[r * s + col] = 0 }; plane[r * s] = 0 }
        }
        let planar = Tensor(uninitialized: [8 * h2, s])
        planarDepthwise3x3(padded.data, channels: 8, inPlane: paddedPlane, planar.data, outPlane: h2 * s, rowStride: s,
                           rows: h2, weights: dw.data)
        let pwT = Tensor(uninitialized: [8, 16])
        for o in 0..<16 { for i in 0..<8 { pwT.data[i * 16 + o] = pw.data[o * 8 + i] } }
        let out = Tensor(uninitialized: [h2, w2o, 16])
        planarPointwiseToNHWC(planar.data, inChannels: 8, inPlane: h2 * s, rowStride: s, rows: h2, width: w2o, out.data,
                              outChannels: 16, weights: pwT.data, bias: pb.data, relu: true)
        #expect(maxError(out.array, reference.data) < 1e-4)
    }
}
