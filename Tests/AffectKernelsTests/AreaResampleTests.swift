import Testing
import AffectKernels

/// The integer area resampling against the Float one (bit for bit) and the plain reference (`Reference.resize`
/// with `.area`), on downscales like MTCNN's pyramid and crops, upscales, odd sizes and a row stride wider than
/// the region.
@Suite struct AreaResampleTests {
    @Test(arguments: [(13, 17, 3, 5, 7), (13, 17, 3, 13, 17), (13, 17, 3, 4, 40), (108, 192, 3, 33, 58),
                      (108, 192, 3, 12, 22), (31, 29, 3, 24, 24), (7, 9, 3, 48, 48), (20, 30, 1, 7, 11), (20, 30, 4, 9, 4)])
    func matchesFloatVersionAndReference(h: Int, w: Int, c: Int, oh: Int, ow: Int) {
        let stride = (w + 3) * c
        var bytes = [UInt8](repeating: 0, count: h * stride)
        for i in bytes.indices { bytes[i] = UInt8((i * 37 + 11 + (i / 7) * 13) % 256) }
        let a = Tensor(uninitialized: [oh, ow, c]), b = Tensor(uninitialized: [oh, ow, c])
        bytes.withUnsafeBufferPointer { px in
            resizeAreaBytes(px.baseAddress!, rowStride: stride, height: h, width: w, channels: c, outHeight: oh, outWidth: ow,
                            scale: 0.0078125, offset: -127.5 * 0.0078125, into: a.data)
            resizeAreaBytesInteger(px.baseAddress!, rowStride: stride, height: h, width: w, channels: c, outHeight: oh,
                                   outWidth: ow, scale: 0.0078125, offset: -127.5 * 0.0078125, into: b.data)
        }
        #expect(a.array == b.array, "\(h)×\(w)×\(c) → \(oh)×\(ow)")
        var region = [Float]()
        for y in 0..<h { for x in 0..<(w * c) { region.append(Float(bytes[y * stride + x])) } }
        let expected = Reference.resize(Reference.Values(shape: [h, w, c], data: region), height: oh, width: ow, method: .area)
        let worst = zip(b.array, expected.data).map { abs($0 - ($1 - 127.5) * 0.0078125) }.max() ?? 0
        #expect(worst < 1e-5, "\(h)×\(w)×\(c) → \(oh)×\(ow): \(worst)")
    }

    /// A whole pyramid in one pass gives each level's bits as resampling it alone: MTCNN's levels of a
    /// 1080p-like frame scaled down, a level one row and column larger than the image (factor 1), single
    /// rows and columns, 1 and 4 channels, and a row stride wider than the region.
    @Test(arguments: [(108, 192, 3, [(33, 58), (23, 41), (17, 30), (12, 21)]), (13, 17, 3, [(14, 18), (13, 17), (5, 7), (1, 1)]),
                      (20, 30, 1, [(7, 11), (20, 1), (1, 30)]), (9, 31, 4, [(9, 4), (3, 31), (2, 2)])])
    func pyramidMatchesEachLevel(h: Int, w: Int, c: Int, sizes: [(Int, Int)]) {
        let stride = (w + 3) * c
        var bytes = [UInt8](repeating: 0, count: h * stride)
        for i in bytes.indices { bytes[i] = UInt8((i * 53 + 7 + (i / 11) * 29) % 256) }
        let alone = sizes.map { Tensor(uninitialized: [$0.0, $0.1, c]) }, together = sizes.map { Tensor(uninitialized: [$0.0, $0.1, c]) }
        bytes.withUnsafeBufferPointer { px in
            for (t, (oh, ow)) in zip(alone, sizes) {
                resizeAreaBytesInteger(px.baseAddress!, rowStride: stride, height: h, width: w, channels: c, outHeight: oh,
                                       outWidth: ow, scale: 0.0078125, offset: -127.5 * 0.0078125, into: t.data)
            }
            resizeAreaBytesIntegerPyramid(px.baseAddress!, rowStride: stride, height: h, width: w, channels: c,
                                          sizes: sizes.map { (height: $0.0, width: $0.1) }, scale: 0.0078125,
                                          offset: -127.5 * 0.0078125, into: together.map(\.data))
        }
        for (i, (a, b)) in zip(alone, together).enumerated() {
            #expect(a.array.map(\.bitPattern) == b.array.map(\.bitPattern), "\(h)×\(w)×\(c) → \(sizes[i])")
        }
    }
}
