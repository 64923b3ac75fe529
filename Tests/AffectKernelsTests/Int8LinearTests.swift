import Foundation
import Testing
import AffectKernels

/// The int8 kernels (`CAffectInt8`, through `Ops/Int8Linear.swift`) against their plain statement
/// (`Reference/ReferenceInt8.swift`): int32 sums must be equal exactly, for every kernel this CPU runs and for
/// 1, 2 and 5 threads, on shapes that leave partial row tiles, partial 16-channel panels, partial 64-channel
/// blocks and a reduction length that is not a multiple of 4.
@Suite(.serialized) struct Int8LinearTests {
    struct Case: CustomStringConvertible, Sendable {
        var m, n, k: Int
        var description: String { "\(m)×\(n)×\(k)" }
    }

    static let shapes: [Case] = [
        Case(m: 1, n: 1, k: 1), Case(m: 5, n: 17, k: 3), Case(m: 7, n: 33, k: 9), Case(m: 13, n: 50, k: 31),
        Case(m: 49, n: 65, k: 67), Case(m: 50, n: 130, k: 129), Case(m: 97, n: 200, k: 255), Case(m: 3, n: 64, k: 1001),
        Case(m: 61, n: 79, k: 2),
    ]

    /// Deterministic int8 values in [-127, 127].
    static func bytes(_ count: Int, seed: UInt64) -> [Int8] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Int8(Int(s % 255) - 127)
        }
    }

    /// Deterministic floats in [-1, 1), with a few rows scaled up so row scales differ.
    static func floats(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { i in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return (Float(s % 20_000) / 10_000 - 1) * (i % 7 == 0 ? 3 : 1)
        }
    }

    static let kernels = Int8Kernel.allCases.filter(\.isSupported)

    /// Runs `body` for every supported kernel at 1, 2 and 5 threads, then restores the automatic choice.
    func acrossKernelsAndThreads(_ body: (Int8Kernel, Int) -> Void) {
        let saved = Threading.threads
        defer { Threading.setThreads(saved); Int8Kernel.use(nil) }
        for kernel in Self.kernels {
            #expect(Int8Kernel.use(kernel))
            #expect(Int8Kernel.current == kernel)
            for t in [1, 2, 5] {
                Threading.setThreads(t)
                body(kernel, t)
            }
        }
    }

    @Test func portableAlwaysRunsAndTheBestIsChosen() {
        #expect(Int8Kernel.portable.isSupported)
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
        #expect(Int8Kernel.avx2.isSupported == flags.contains("avx2"))
        Int8Kernel.use(nil)
        defer { Int8Kernel.use(nil) }
        // Without an override the best supported kernel runs (the AVX2-target build keeps to AVX2).
        if ProcessInfo.processInfo.environment["AFFECT_INT8_KERNEL"] == nil {
            #expect(Int8Kernel.current == Self.kernels.max { $0.rawValue < $1.rawValue })
        }
        // scripts/test.sh exports the target of its AVX2 pass: that build must keep to the AVX2 kernel; the
        // native build of a VNNI host must use VNNI.
        let target = ProcessInfo.processInfo.environment["AFFECT_TARGET_CPU"] ?? "native"
        if target == "haswell" {
            #expect(!Int8Kernel.vnni.isSupported, "a build for an AVX2 target must not dispatch to VNNI")
        } else if target == "native" {
            #expect(Int8Kernel.vnni.isSupported == (flags.contains("avx512_vnni") && flags.contains("avx512bw")))
        }
        if Int8Kernel.vnni.isSupported { #expect(flags.contains("avx512_vnni")) }
    }

    @Test(arguments: shapes) func gemmMatchesReferenceExactly(_ c: Case) {
        let a = Self.bytes(c.m * c.k, seed: 1), w = Self.bytes(c.n * c.k, seed: 2)
        let expected = Reference.int8GEMM(a, w, m: c.m, n: c.n, k: c.k)
        let weights = Int8Weights(quantized: w, scales: [Float](repeating: 1, count: c.n), n: c.n, k: c.k)
        acrossKernelsAndThreads { kernel, threads in
            let got = int8GEMM(m: c.m, a: a, weights: weights)
            let wrong = zip(got, expected).filter { $0 != $1 }.count
            #expect(wrong == 0, "\(c) \(kernel) \(threads) threads: \(wrong) of \(got.count) sums differ")
        }
    }

    /// The largest sums: every product ±127·127. Pairs of them reach 32258 inside vpmaddubsw, just under
    /// int16's limit, and the VNNI offset adds 128·Σw; none of it may saturate or wrap.
    @Test func extremeValuesDoNotSaturate() {
        let c = Case(m: 9, n: 35, k: 4099)
        let a = (0..<c.m * c.k).map { Int8($0 % 3 == 0 ? 127 : -127) }
        let w = (0..<c.n * c.k).map { Int8(($0 / c.k) % 2 == 0 ? -127 : 127) }
        let expected = Reference.int8GEMM(a, w, m: c.m, n: c.n, k: c.k)
        let weights = Int8Weights(quantized: w, scales: [Float](repeating: 1, count: c.n), n: c.n, k: c.k)
        acrossKernelsAndThreads { kernel, threads in
            #expect(int8GEMM(m: c.m, a: a, weights: weights) == expected, "\(kernel) \(threads) threads")
        }
    }

    /// 7-bit weights (what ``Int8Weights`` makes for the AVX2 kernel): the extremes, (127 + 128) · 63 in every
    /// product, pairs of 32130 inside vpmaddubsw, and ordinary values, equal to the reference on every kernel.
    @Test func sevenBitWeightsAreExact() {
        let c = Case(m: 9, n: 35, k: 4099)
        let a = (0..<c.m * c.k).map { Int8($0 % 3 == 0 ? 127 : -127) }
        let w = (0..<c.n * c.k).map { Int8(($0 / c.k) % 2 == 0 ? -63 : 63) }
        let weights = Int8Weights(quantized: w, scales: [Float](repeating: 1, count: c.n), n: c.n, k: c.k)
        #expect(weights.limit == 63)
        let expected = Reference.int8GEMM(a, w, m: c.m, n: c.n, k: c.k)
        for shape in Self.shapes {
            let a2 = Self.bytes(shape.m * shape.k, seed: 11), w2 = Self.bytes(shape.n * shape.k, seed: 12).map { $0 / 2 }
            let narrow = Int8Weights(quantized: w2, scales: [Float](repeating: 1, count: shape.n), n: shape.n, k: shape.k)
            let want = Reference.int8GEMM(a2, w2, m: shape.m, n: shape.n, k: shape.k)
            acrossKernelsAndThreads { kernel, threads in
                #expect(int8GEMM(m: shape.m, a: a2, weights: narrow) == want, "\(shape) \(kernel) \(threads) threads")
            }
        }
        acrossKernelsAndThreads { kernel, threads in
            #expect(int8GEMM(m: c.m, a: a, weights: weights) == expected, "\(kernel) \(threads) threads")
        }
        // Unsigned inputs with zero points (what those layers quantise to): 255 · 63 in every product, pairs of
        // 32130, and ordinary bytes with zero points across 0 ... 255.
        func reference(_ u: [UInt8], _ z: [Int32], _ w: [Int8], _ m: Int, _ n: Int, _ k: Int) -> [Int32] {
            (0..<m * n).map { idx in
                let (i, j) = (idx / n, idx % n)
                var sum: Int32 = 0
                for p in 0..<k { sum += (Int32(u[i * k + p]) - z[i]) * Int32(w[j * k + p]) }
                return sum
            }
        }
        let u = (0..<c.m * c.k).map { UInt8($0 % 5 == 0 ? 0 : 255) }
        let zeros = (0..<c.m).map { Int32([0, 255, 128, 1, 254][$0 % 5]) }
        let wantExtreme = reference(u, zeros, w, c.m, c.n, c.k)
        let shape = Case(m: 50, n: 130, k: 129)
        let u2 = Self.bytes(shape.m * shape.k, seed: 13).map { UInt8(bitPattern: $0) }
        let z2 = (0..<shape.m).map { Int32($0 * 37 % 256) }
        let w2 = Self.bytes(shape.n * shape.k, seed: 14).map { $0 / 2 }
        let narrow2 = Int8Weights(quantized: w2, scales: [Float](repeating: 1, count: shape.n), n: shape.n, k: shape.k)
        let want2 = reference(u2, z2, w2, shape.m, shape.n, shape.k)
        acrossKernelsAndThreads { kernel, threads in
            #expect(int8GEMM(m: c.m, a: u, zeroPoints: zeros, weights: weights) == wantExtreme, "\(kernel) \(threads) threads")
            #expect(int8GEMM(m: shape.m, a: u2, zeroPoints: z2, weights: narrow2) == want2, "\(shape) \(kernel) \(threads) threads")
        }
    }

    /// The asymmetric quantiser (inputs of 7-bit-weight layers) gives the reference's bytes, scales and zero points,
    /// with and without factors, on rows with NaN, an infinity, only positive or only negative values, all zeros and
    /// exact halves, and dequantises within half a step.
    @Test func asymmetricQuantiserMatchesReference() {
        let (rows, cols) = (8, 75)
        var x = Self.floats(rows * cols, seed: 51)
        x[1 * cols + 4] = .nan
        x[2 * cols + 70] = -.infinity
        for j in 0..<cols { x[3 * cols + j] = abs(x[3 * cols + j]) + 0.25 }      // only positive: zero point 0
        for j in 0..<cols { x[4 * cols + j] = -abs(x[4 * cols + j]) - 0.25 }     // only negative: zero point 255
        for j in 0..<cols { x[5 * cols + j] = 0 }
        for j in 0..<cols { x[6 * cols + j] = Float(j - 37) * 0.5 }
        let factors = Self.floats(cols, seed: 52).map { abs($0) + 0.1 }             // positive: rows keep their sign
        for mul in [nil, factors] {
            var input = x
            if let mul { for r in 0..<rows { for j in 0..<cols { input[r * cols + j] = x[r * cols + j] * mul[j] } } }
            let (u, scales, zeros) = quantizeRowsAsymmetric(x, rows: rows, cols: cols, columnFactors: mul)
            for r in 0..<rows {
                let row = Array(input[r * cols ..< (r + 1) * cols])
                let reference = Reference.quantizeAsymmetric(row)
                #expect(Array(u[r * cols ..< (r + 1) * cols]) == reference.values, "row \(r), factors \(mul != nil)")
                #expect(scales[r] == reference.scale && zeros[r] == reference.zeroPoint, "row \(r), factors \(mul != nil)")
                guard scales[r] > 0 else { continue }
                for j in 0..<cols where row[j].isFinite {
                    let error = abs((Float(u[r * cols + j]) - Float(zeros[r])) * scales[r] - row[j])
                    #expect(error <= scales[r] * 0.5 * (1 + 1e-4), "row \(r) col \(j): error \(error), scale \(scales[r])")
                }
            }
            #expect(zeros[3] == 0 && zeros[4] == 255 && scales[5] == 0 && scales[2] == 0)
        }
    }

    /// Float weights quantised to a limit: the reference's values and scales, within half a step, and the limit
    /// the kernel wants (63 for AVX2, 127 otherwise) by default.
    @Test func weightsQuantiseToTheirLimit() {
        let (n, k) = (19, 70)
        var w = Self.floats(n * k, seed: 41)
        for j in 0..<k { w[3 * k + j] = 0 }
        w[6 * k + 1] = .nan
        for limit in [127, 63] {
            let weights = w.withUnsafeBufferPointer { Int8Weights(weight: $0.baseAddress!, n: n, k: k, limit: limit) }
            #expect(weights.limit == limit)
            for r in 0..<n {
                let reference = Reference.quantizeSymmetric(Array(w[r * k ..< (r + 1) * k]), limit: limit)
                #expect(weights.scales[r] == reference.scale, "limit \(limit) row \(r)")
            }
        }
        defer { Int8Kernel.use(nil) }
        for kernel in Self.kernels {
            Int8Kernel.use(kernel)
            #expect(Int8Weights.preferredLimit == (kernel == .avx2 ? 63 : 127), "\(kernel)")
        }
    }

    /// quantise → dequantise stays within half a step of every value, and the C quantiser used at run time
    /// gives the reference's values exactly.
    @Test func quantizeRoundTripBound() {
        let (rows, cols) = (23, 301)
        var x = Self.floats(rows * cols, seed: 9)
        for j in 0..<cols { x[5 * cols + j] = 0 }          // an all-zero row: scale 0, zeros
        x[7 * cols + 3] = 1e-30                              // a tiny row maximum next to normal rows
        let (q, scales) = quantizeRows(x, rows: rows, cols: cols)
        for r in 0..<rows {
            let row = Array(x[r * cols ..< (r + 1) * cols])
            let reference = Reference.quantizeSymmetric(row)
            #expect(Array(q[r * cols ..< (r + 1) * cols]) == reference.values, "row \(r)")
            #expect(scales[r] == reference.scale, "row \(r)")
            let maxAbs = row.map(abs).max() ?? 0
            #expect(scales[r] == maxAbs / 127)
            for j in 0..<cols {
                #expect(q[r * cols + j] != -128)
                let error = abs(Float(q[r * cols + j]) * scales[r] - row[j])
                #expect(error <= scales[r] * 0.5 * (1 + 1e-5) + 1e-37, "row \(r) col \(j): error \(error), scale \(scales[r])")
            }
        }
        #expect(scales[5] == 0 && q[5 * cols ..< 6 * cols].allSatisfy { $0 == 0 })
    }

    /// The whole layer at int8 (bias, residual, activation) against `Reference.int8Linear`, and within the
    /// quantisation error of the float layer. Every kernel must give the same floats (no FMA contraction in
    /// the dequantisation), so the result never depends on the CPU or the thread count.
    @Test func linearMatchesReferenceAndFloat() {
        let c = Case(m: 37, n: 83, k: 150)
        let x = Self.floats(c.m * c.k, seed: 3), w = Self.floats(c.n * c.k, seed: 4)
        let b = Self.floats(c.n, seed: 5), res = Self.floats(c.m * c.n, seed: 6)
        let xv = Reference.Values(shape: [c.m, c.k], data: x), wv = Reference.Values(shape: [c.n, c.k], data: w)
        let rv = Reference.Values(shape: [c.m, c.n], data: res)
        // The layer quantises its weights for the kernel in use now (7-bit for AVX2), before the loop switches.
        let expected = Reference.int8Linear(xv, weight: wv, bias: b, activation: .gelu, residual: rv,
                                            weightLimit: Int8Weights.preferredLimit)
        let exact = Reference.linear(xv, weight: wv, bias: b, activation: .gelu, residual: rv)
        let layer = Linear(weight: Tensor(shape: [c.n, c.k], values: w), bias: Tensor(shape: [c.n], values: b),
                           activation: .gelu, precision: .int8)
        #expect(layer.precision == .int8)
        var first: [Float]?
        acrossKernelsAndThreads { kernel, threads in
            let y = layer(Tensor(shape: [c.m, c.k], values: x), adding: Tensor(shape: [c.m, c.n], values: res)).array
            let worst = zip(y, expected.data).map { abs($0 - $1) }.max() ?? .nan
            #expect(worst < 1e-5, "\(kernel) \(threads) threads: \(worst) from Reference.int8Linear")
            if let first { #expect(y == first, "\(kernel) \(threads) threads differ from the first run") } else { first = y }
            let dot = zip(y, exact.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let cosine = dot / (y.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot() * exact.data.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot())
            #expect(cosine >= 0.999, "\(kernel): cosine \(cosine) with the float layer")
        }
    }

    /// A 1×1 convolution at int8 (`Conv2D(precision: .int8)`, EfficientNet's expansions and projections): the
    /// squeeze-and-excitation scale is applied inside the quantiser, one scale per pixel, then bias, residual
    /// and SiLU: equal to `Reference.int8Linear` of the scaled pixels for every kernel and thread count, and
    /// within the int8 error of the float32 convolution. Narrower reductions stay float32.
    @Test func pointwiseConvolutionQuantisesScaledPixels() {
        let (images, h, w, k, n) = (2, 5, 7, 80, 40)
        let pixels = images * h * w
        let x = Self.floats(pixels * k, seed: 21), weight = Self.floats(n * k, seed: 22)
        let bias = Self.floats(n, seed: 23), residual = Self.floats(pixels * n, seed: 24)
        let scale = Self.floats(images * k, seed: 25).map { 0.5 + 0.5 * $0 }   // sigmoid-like factors in [0, 1)
        let conv = Conv2D(weight: Tensor(shape: [n, k, 1, 1], values: weight), bias: Tensor(shape: [n], values: bias),
                          activation: .silu, precision: .int8)
        #expect(conv.precision == .int8)
        let narrow = Conv2D(weight: Tensor(shape: [n, 48, 1, 1], values: Array(weight[0 ..< n * 48])), bias: nil, precision: .int8)
        #expect(narrow.precision == .float32, "a 48-channel reduction must stay float32")

        var scaled = x
        for p in 0..<pixels { for c in 0..<k { scaled[p * k + c] = x[p * k + c] * scale[(p / (h * w)) * k + c] } }
        let xv = Reference.Values(shape: [pixels, k], data: scaled), wv = Reference.Values(shape: [n, k], data: weight)
        let rv = Reference.Values(shape: [pixels, n], data: residual)
        let expected = Reference.int8Linear(xv, weight: wv, bias: bias, activation: .silu, residual: rv,
                                            weightLimit: Int8Weights.preferredLimit)
        let exact = Reference.linear(xv, weight: wv, bias: bias, activation: .silu, residual: rv)
        var first: [Float]?
        acrossKernelsAndThreads { kernel, threads in
            let y = conv(Tensor(shape: [images, h, w, k], values: x), residual: Tensor(shape: [images, h, w, n], values: residual),
                         inputScale: Tensor(shape: [images, k], values: scale))
            #expect(y.shape == [images, h, w, n])
            let worst = zip(y.array, expected.data).map { abs($0 - $1) }.max() ?? .nan
            #expect(worst < 1e-5, "\(kernel) \(threads) threads: \(worst) from Reference.int8Linear")
            if let first { #expect(y.array == first, "\(kernel) \(threads) threads differ from the first run") } else { first = y.array }
            let dot = zip(y.array, exact.data).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let norms = y.array.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot() * exact.data.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
            #expect(dot / norms >= 0.999, "\(kernel): cosine \(dot / norms) with the float convolution")
        }
    }

    /// The vectorised quantiser gives the portable loop's bytes, with and without a factor per column, on
    /// rows that are not a multiple of 32 long and hold NaN, ±infinity and exact halves.
    @Test func scaledQuantiserMatchesReference() {
        let (rows, cols) = (9, 75)
        var x = Self.floats(rows * cols, seed: 31)
        x[2 * cols + 4] = .nan                      // ignored by the maximum, quantised to 0
        x[3 * cols + 70] = .infinity                // an infinite maximum: scale 0, zeros
        for j in 0..<cols { x[4 * cols + j] = Float(j - 37) * 0.5 }   // halves: round half to even
        let factors = Self.floats(cols, seed: 32)
        for mul in [nil, factors] {
            var input = x
            if let mul { for r in 0..<rows { for j in 0..<cols { input[r * cols + j] = x[r * cols + j] * mul[j] } } }
            let (q, scales) = quantizeRows(x, rows: rows, cols: cols, columnFactors: mul)
            for r in 0..<rows {
                let reference = Reference.quantizeSymmetric(Array(input[r * cols ..< (r + 1) * cols]))
                #expect(Array(q[r * cols ..< (r + 1) * cols]) == reference.values, "row \(r), factors \(mul != nil)")
                #expect(scales[r] == reference.scale, "row \(r), factors \(mul != nil)")
            }
        }
    }
}
