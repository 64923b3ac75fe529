import Foundation
import Testing
import AffectKernels

/// The packed-weight GEMM against a double-precision product, over the shapes that exercise its edges: row
/// counts that are not a multiple of the tile's rows, column counts that leave a partial panel, k past one
/// k block, several M blocks, and both tiles whichever the build selects.
@Suite struct PackedGEMMTests {
    struct Case: CustomStringConvertible {
        var m, n, k: Int
        var description: String { "\(m)×\(n)×\(k)" }
    }

    static let shapes: [Case] = [
        Case(m: 1, n: 1, k: 1), Case(m: 5, n: 16, k: 3), Case(m: 8, n: 48, k: 64), Case(m: 13, n: 50, k: 17),
        Case(m: 6, n: 100, k: 33), Case(m: 128, n: 96, k: 1100), Case(m: 499, n: 61, k: 40), Case(m: 37, n: 200, k: 129),
        Case(m: 21, n: 80, k: 30), Case(m: 9, n: 64, k: 50), Case(m: 250, n: 512, k: 20),
    ]

    /// Deterministic values in [-1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Float(s % 20_000) / 10_000 - 1
        }
    }

    func reference(_ a: [Float], _ w: [Float], _ bias: [Float]?, _ residual: [Float]?, _ c: Case,
                   _ act: (Double) -> Double) -> [Float] {
        var out = [Float](repeating: 0, count: c.m * c.n)
        for i in 0..<c.m {
            for j in 0..<c.n {
                var s = Double(bias?[j] ?? 0) + Double(residual?[i * c.n + j] ?? 0)
                for p in 0..<c.k { s += Double(a[i * c.k + p]) * Double(w[j * c.k + p]) }
                out[i * c.n + j] = Float(act(s))
            }
        }
        return out
    }

    /// `slopes`: per-column PReLU slopes applied to the reference after `act`.
    func run(_ c: Case, tile: GEMMTile, bias useBias: Bool, residual useResidual: Bool, inPlace: Bool = false,
             activation: Activation = .none, act: (Double) -> Double = { $0 }, slopes: [Float]? = nil) {
        let a = Self.values(c.m * c.k, seed: 1), w = Self.values(c.n * c.k, seed: 2)
        let bias = useBias ? Self.values(c.n, seed: 3) : nil
        let residual = useResidual ? Self.values(c.m * c.n, seed: 4) : nil
        var expected = reference(a, w, bias, residual, c, act)
        if let slopes {
            for i in 0..<expected.count where expected[i] < 0 { expected[i] *= slopes[i % c.n] }
        }
        let packed = w.withUnsafeBufferPointer { wp in
            bias.withUnsafeBufferPointerOrNil { bp in
                PackedWeights(weight: wp.baseAddress!, n: c.n, k: c.k, bias: bp, tile: tile)
            }
        }
        var out = inPlace ? residual! : [Float](repeating: .nan, count: c.m * c.n)
        let r = residual ?? []
        a.withUnsafeBufferPointer { ap in
            r.withUnsafeBufferPointer { rp in
                out.withUnsafeMutableBufferPointer { op in
                    packedGEMM(m: c.m, a: ap.baseAddress!, lda: c.k, weights: packed,
                               residual: useResidual ? (inPlace ? UnsafePointer(op.baseAddress!) : rp.baseAddress!) : nil,
                               ldr: c.n, c: op.baseAddress!, ldc: c.n, activation: activation)
                }
            }
        }
        var worst: Float = 0
        for i in 0..<expected.count { worst = max(worst, abs(out[i] - expected[i]) / (1 + abs(expected[i]))) }
        // float32 summation error grows with k (about k·2⁻²⁴ of the terms' size); an indexing mistake is O(1).
        let tolerance = 2e-6 + Float(c.k) * 2e-8
        #expect(worst < tolerance, "\(c) \(tile) bias \(useBias) residual \(useResidual) \(activation): error \(worst)")
    }

    @Test(arguments: GEMMTile.allCases)
    func shapesBiasAndResidual(tile: GEMMTile) {
        for c in Self.shapes {
            run(c, tile: tile, bias: false, residual: false)
            run(c, tile: tile, bias: true, residual: false)
            run(c, tile: tile, bias: true, residual: true)
            run(c, tile: tile, bias: false, residual: true, inPlace: true)
        }
    }

    @Test(arguments: GEMMTile.allCases)
    func epilogues(tile: GEMMTile) {
        let c = Case(m: 19, n: 70, k: 45)
        run(c, tile: tile, bias: true, residual: true, activation: .gelu, act: { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) })
        run(c, tile: tile, bias: true, residual: false, activation: .relu, act: { max($0, 0) })
        run(c, tile: tile, bias: true, residual: true, activation: .silu, act: { $0 / (1 + Foundation.exp(-$0)) })
        run(c, tile: tile, bias: true, residual: false, activation: .tanh, act: { Foundation.tanh($0) })
        let slopes = (0..<c.n).map { Float($0 % 7) * 0.1 - 0.2 }
        run(c, tile: tile, bias: true, residual: true, activation: .prelu(slopes), act: { $0 }, slopes: slopes)
        run(c, tile: tile, bias: false, residual: false, activation: .prelu([0.25]), act: { $0 < 0 ? 0.25 * $0 : $0 })
    }

    /// Packed weights of 1 MB and more are carved from shared 32 MB slabs in 2 MB pages: each must keep its own
    /// values while others are packed and freed around it, across several slabs.
    @Test func largeWeightsKeepTheirValuesInSharedSlabs() {
        let c = Case(m: 3, n: 600, k: 512)   // 13 panels × 512 × 48 floats: 1.2 MB each
        let a = Self.values(c.m * c.k, seed: 1)
        var kept: [(seed: UInt64, weights: PackedWeights)] = []
        for seed in UInt64(10)..<50 {
            let w = Self.values(c.n * c.k, seed: seed)
            let packed = w.withUnsafeBufferPointer { PackedWeights(weight: $0.baseAddress!, n: c.n, k: c.k, bias: nil) }
            if seed % 3 == 0 { kept.append((seed, packed)) }
        }
        for (seed, packed) in kept {
            let expected = reference(a, Self.values(c.n * c.k, seed: seed), nil, nil, c, { $0 })
            var out = [Float](repeating: .nan, count: c.m * c.n)
            a.withUnsafeBufferPointer { ap in
                out.withUnsafeMutableBufferPointer { op in
                    packedGEMM(m: c.m, a: ap.baseAddress!, lda: c.k, weights: packed, c: op.baseAddress!, ldc: c.n)
                }
            }
            let worst = zip(out, expected).map { abs($0 - $1) / (1 + abs($1)) }.max() ?? .nan
            #expect(worst < 2e-5, "weights packed with seed \(seed): error \(worst)")
        }
    }

    /// Threads split the work differently from one thread; the sums per element must not change.
    @Test func threadCountDoesNotChangeResults() {
        let c = Case(m: 130, n: 300, k: 200)
        let a = Self.values(c.m * c.k, seed: 5), w = Self.values(c.n * c.k, seed: 6)
        let packed = w.withUnsafeBufferPointer { PackedWeights(weight: $0.baseAddress!, n: c.n, k: c.k, bias: nil) }
        func product(threads: Int) -> [Float] {
            let saved = Threading.threads
            Threading.setThreads(threads)
            defer { Threading.setThreads(saved) }
            var out = [Float](repeating: 0, count: c.m * c.n)
            a.withUnsafeBufferPointer { ap in
                out.withUnsafeMutableBufferPointer { packedGEMM(m: c.m, a: ap.baseAddress!, lda: c.k, weights: packed,
                                                               c: $0.baseAddress!, ldc: c.n) }
            }
            return out
        }
        #expect(product(threads: 1) == product(threads: 2))
    }
}

extension Optional where Wrapped == [Float] {
    func withUnsafeBufferPointerOrNil<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .some(let array): return array.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: return body(nil)
        }
    }
}

/// Handing a mapped weight's pages back must not change what the mapping reads: the pages come back from
/// the file.
@Suite struct MappedPagesTests {
    @Test func releasedPagesReadTheSameValues() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/ops/ops.safetensors").path
        let file = try SafeTensorsFile(path: path)
        let info = try #require(file.tensors.filter { $0.dtype == .f32 }.max(by: { $0.count < $1.count }))
        let name = info.name
        #expect(info.count * 4 >= 3 * 4096, "\(name) spans whole pages, so there is something to release")
        let t = try file.tensor(info)
        #expect(t.storage.isBorrowed, "\(name) should be mapped from the file, not copied")
        let before = Array(UnsafeBufferPointer(start: t.data, count: t.count))
        t.releaseMappedPages()
        #expect(Array(UnsafeBufferPointer(start: t.data, count: t.count)) == before)
    }
}

/// Depthwise convolution with 1–8 channels (pixels share a vector) against a direct double-precision sum.
@Suite struct NarrowDepthwiseTests {
    @Test(arguments: [1, 2, 4, 8])
    func matchesDirectSum(channels c: Int) {
        for (k, padding, h, w) in [(3, Padding.tfSame, 13, 11), (3, Padding.valid, 9, 17), (5, Padding.symmetric(2), 7, 6)] {
            let weight = PackedGEMMTests.values(c * k * k, seed: UInt64(c * 10 + k))
            let bias = PackedGEMMTests.values(c, seed: 99)
            let conv = Conv2D(weight: Tensor(shape: [c, 1, k, k], values: weight), bias: Tensor(shape: [c], values: bias),
                              padding: padding, groups: c, activation: .relu)
            let input = PackedGEMMTests.values(2 * h * w * c, seed: 7)
            let out = conv(Tensor(shape: [2, h, w, c], values: input))
            let (oh, ow) = (out.shape[1], out.shape[2])
            let (pt, pl) = padding == .valid ? (0, 0) : ((oh - 1 + k - h) / 2, (ow - 1 + k - w) / 2)
            var worst: Float = 0
            for n in 0..<2 { for oy in 0..<oh { for ox in 0..<ow { for ch in 0..<c {
                var s = Double(bias[ch])
                for i in 0..<k { for j in 0..<k {
                    let (iy, ix) = (oy + i - pt, ox + j - pl)
                    if iy >= 0 && iy < h && ix >= 0 && ix < w {
                        s += Double(input[((n * h + iy) * w + ix) * c + ch]) * Double(weight[(ch * k + i) * k + j])
                    }
                } }
                let got = out.data[((n * oh + oy) * ow + ox) * c + ch]
                worst = max(worst, abs(got - Float(max(s, 0))))
            } } } }
            #expect(worst < 1e-5, "C=\(c) k=\(k) \(padding): error \(worst)")
        }
    }
}

/// Dense convolution with 8 outputs (two pixels per vector) against a direct double-precision sum.
@Suite struct NarrowDirectTests {
    @Test(arguments: [1, 3, 8])
    func matchesDirectSum(inChannels cin: Int) {
        for (k, padding, h, w) in [(3, Padding.valid, 12, 11), (3, Padding.tfSame, 7, 9), (5, Padding.symmetric(1), 9, 8)] {
            let weight = PackedGEMMTests.values(8 * cin * k * k, seed: UInt64(cin * 10 + k))
            let bias = PackedGEMMTests.values(8, seed: 98)
            let conv = Conv2D(weight: Tensor(shape: [8, cin, k, k], values: weight), bias: Tensor(shape: [8], values: bias),
                              padding: padding, activation: .relu)
            let input = PackedGEMMTests.values(2 * h * w * cin, seed: 5)
            let out = conv(Tensor(shape: [2, h, w, cin], values: input))
            let (oh, ow) = (out.shape[1], out.shape[2])
            let (pt, pl): (Int, Int)
            switch padding {
            case .tfSame: (pt, pl) = ((oh - 1 + k - h) / 2, (ow - 1 + k - w) / 2)
            case .explicit(let top, let left, _, _): (pt, pl) = (top, left)
            }
            var worst: Float = 0
            for n in 0..<2 { for oy in 0..<oh { for ox in 0..<ow { for oc in 0..<8 {
                var s = Double(bias[oc])
                for ic in 0..<cin { for i in 0..<k { for j in 0..<k {
                    let (iy, ix) = (oy + i - pt, ox + j - pl)
                    if iy >= 0 && iy < h && ix >= 0 && ix < w {
                        s += Double(input[((n * h + iy) * w + ix) * cin + ic]) * Double(weight[((oc * cin + ic) * k + i) * k + j])
                    }
                } } }
                worst = max(worst, abs(out.data[((n * oh + oy) * ow + ox) * 8 + oc] - Float(max(s, 0))))
            } } } }
            #expect(worst < 1e-5, "Cin=\(cin) k=\(k) \(padding): error \(worst)")
        }
    }
}
