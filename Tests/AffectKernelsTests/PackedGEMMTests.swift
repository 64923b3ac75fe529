import Foundation
import Testing
import AffectKernels

/// The packed-weight GEMM against its reference (`Reference.linear`, a double-precision product), over the
/// shapes that exercise its edges: row counts that are not a multiple of the tile's rows, column counts that
/// leave a partial panel, k past one k block, several M blocks, and both tiles whichever the build selects.
@Suite struct PackedGEMMTests {
    struct Case: CustomStringConvertible {
        var m, n, k: Int
        var description: String { "\(m)×\(n)×\(k)" }
    }

    static let shapes: [Case] = [
        Case(m: 1, n: 1, k: 1), Case(m: 5, n: 16, k: 3), Case(m: 8, n: 48, k: 64), Case(m: 13, n: 50, k: 17),
        Case(m: 6, n: 100, k: 33), Case(m: 128, n: 96, k: 1100), Case(m: 499, n: 61, k: 40), Case(m: 37, n: 200, k: 129),
        Case(m: 21, n: 80, k: 30), Case(m: 9, n: 64, k: 50), Case(m: 250, n: 512, k: 20),
        // More k steps than either tile's block (1024 and 4096): the later blocks start from C.
        Case(m: 7, n: 40, k: 4200),
    ]

    /// Deterministic values in [-1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Float(s % 20_000) / 10_000 - 1
        }
    }

    /// `act(a · wᵀ + bias + residual)` by its definition (`Reference.linear`).
    func reference(_ a: [Float], _ w: [Float], _ bias: [Float]?, _ residual: [Float]?, _ c: Case,
                   _ activation: Activation = .none) -> [Float] {
        Reference.linear(Reference.Values(shape: [c.m, c.k], data: a), weight: Reference.Values(shape: [c.n, c.k], data: w),
                         bias: bias, activation: activation,
                         residual: residual.map { Reference.Values(shape: [c.m, c.n], data: $0) }).data
    }

    func run(_ c: Case, tile: GEMMTile, bias useBias: Bool, residual useResidual: Bool, inPlace: Bool = false,
             activation: Activation = .none) {
        let a = Self.values(c.m * c.k, seed: 1), w = Self.values(c.n * c.k, seed: 2)
        let bias = useBias ? Self.values(c.n, seed: 3) : nil
        let residual = useResidual ? Self.values(c.m * c.n, seed: 4) : nil
        let expected = reference(a, w, bias, residual, c, activation)
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
        run(c, tile: tile, bias: true, residual: true, activation: .gelu)
        run(c, tile: tile, bias: true, residual: false, activation: .relu)
        run(c, tile: tile, bias: true, residual: true, activation: .silu)
        run(c, tile: tile, bias: true, residual: false, activation: .tanh)
        run(c, tile: tile, bias: true, residual: true, activation: .prelu((0..<c.n).map { Float($0 % 7) * 0.1 - 0.2 }))
        run(c, tile: tile, bias: false, residual: false, activation: .prelu([0.25]))
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
            let expected = reference(a, Self.values(c.n * c.k, seed: seed), nil, nil, c)
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

    /// Row blocks: A's block fits in half the L2 where that leaves at least 48 rows, every block holds whole
    /// tiles, and the blocks cover all rows with none empty.
    @Test(arguments: GEMMTile.allCases)
    func rowBlocksFitHalfTheL2(tile: GEMMTile) {
        let kb = 1 << 10, mr = tile.rows
        func blocks(_ m: Int, _ k: Int, panels: Int = 7, threads: Int = 1, l2: Int) -> (count: Int, rows: Int) {
            tile.rowBlocks(m: m, k: k, panels: panels, threads: threads, l2CacheBytes: l2)
        }
        // EfficientNet-B0's 14×14 projection, A 196 × 672 floats (527 KB): whole with a 2 MB L2, split with 1 MB
        // and 512 KB.
        #expect(blocks(196, 672, l2: 2048 * kb).count == 1)
        #expect(blocks(196, 672, l2: 1024 * kb).count == 2)
        #expect(blocks(196, 672, l2: 512 * kb).count == 3)
        // roberta-base's FFN output, k = 3072: 21 rows would fit 256 KB, too few; A streams from L3 in one block.
        #expect(blocks(128, 3072, panels: 48, l2: 512 * kb).count == 1)
        // Short rows: the 240-row bound alone.
        #expect(blocks(1000, 64, l2: 1024 * kb).count == 5)
        for m in [1, 5, 49, 196, 250, 784, 3136] {
            for k in [16, 144, 672, 1152, 3072] {
                for threads in [1, 2, 8] {
                    for l2 in [256 * kb, 512 * kb, 1024 * kb, 2048 * kb] {
                        let (count, rows) = blocks(m, k, threads: threads, l2: l2)
                        let where_ = "m \(m) k \(k) threads \(threads) L2 \(l2 / kb) KB: \(count) × \(rows)"
                        #expect(rows % mr == 0 && count * rows >= m && (count - 1) * rows < m, "\(where_)")
                        let fitting = l2 / 2 / (4 * k)
                        if fitting >= 48 { #expect(rows * k * 4 <= l2 / 2 + (mr - 1) * k * 4, "\(where_)") }
                    }
                }
            }
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

/// Depthwise convolution with 1–8 channels (pixels share a vector) against its reference (a double-precision sum).
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
            let expected = Reference.conv2d(Reference.Values(shape: [2, h, w, c], data: input),
                                            weight: Reference.Values(shape: [c, 1, k, k], data: weight), bias: bias,
                                            padding: padding, groups: c, activation: .relu)
            #expect(out.shape == expected.shape)
            let worst = zip(out.array, expected.data).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst < 1e-5, "C=\(c) k=\(k) \(padding): error \(worst)")
        }
    }
}

/// Dense convolution with 8 outputs (two pixels per vector) against its reference (a double-precision sum).
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
            let expected = Reference.conv2d(Reference.Values(shape: [2, h, w, cin], data: input),
                                            weight: Reference.Values(shape: [8, cin, k, k], data: weight), bias: bias,
                                            padding: padding, activation: .relu)
            #expect(out.shape == expected.shape)
            let worst = zip(out.array, expected.data).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst < 1e-5, "Cin=\(cin) k=\(k) \(padding): error \(worst)")
        }
    }
}
