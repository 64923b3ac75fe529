import CAffectInt8

/// The number format of a model's linear layers.
///
/// ``float32`` is the default and what every reference check is made against. ``int8`` quantises the weights of
/// the transformer encoders' linear layers and of wide 1×1 convolutions at load (symmetric, one scale per output
/// channel; 7-bit where the CPU has no VNNI, see ``Int8Weights``) and their inputs at run time (one scale per row
/// or pixel: symmetric, or with a zero point for 7-bit weights), multiplies in int8 with int32 sums and
/// dequantises in float, as ONNX Runtime's `quantize_dynamic` does. It trades a bounded error (cosine
/// ≥ 0.999 on last hidden states) for speed and a quarter of the weight memory.
public enum Precision: String, Sendable, CaseIterable {
    case float32
    case int8
}

/// The int8 kernel family (``Int8Kernel/current``), chosen at run time from the CPU: AVX-512 VNNI (`vpdpbusd`),
/// AVX2 (`vpmaddubsw` + `vpmaddwd`) or portable C. The environment variable `AFFECT_INT8_KERNEL`
/// (`vnni`, `avx2`, `portable`) overrides the choice when the CPU supports the named kernel.
public enum Int8Kernel: Int32, Sendable, CaseIterable, CustomStringConvertible {
    case portable = 0, avx2 = 1, vnni = 2

    /// The kernel in use.
    public static var current: Int8Kernel { Int8Kernel(rawValue: affect_int8_kernel()) ?? .portable }
    /// Whether this CPU and build run `self`.
    public var isSupported: Bool { affect_int8_supported(rawValue) != 0 }
    /// Switches every later int8 product to `kernel` (for tests and benchmarks); false when unsupported.
    @discardableResult
    public static func use(_ kernel: Int8Kernel?) -> Bool { affect_int8_set_kernel(kernel?.rawValue ?? -1) != 0 }

    public var description: String {
        switch self { case .portable: "portable"; case .avx2: "avx2"; case .vnni: "avx512-vnni" }
    }
}

/// A `[n, k]` weight quantised to int8 per output channel and packed for the int8 kernels.
///
/// `scale[j] = max|W[j, :]| / L` and `q[j, i] = round(W[j, i] / scale[j])` (half to even), in [-L, L], where the
/// limit L is 127, or 63 (7-bit weights) when the kernel in use is AVX2 (``preferredLimit``): without VNNI the
/// fast exact product, `vpmaddubsw` on unsigned activations, holds only 7-bit weights (ONNX Runtime's
/// quantiser recommends the same `reduce_range` on such CPUs). Layers with 7-bit weights quantise their inputs
/// asymmetrically (a zero point per row, all 256 levels over the row's range) to win back the lost bit: on
/// roberta-base (3 × 128 tokens) the cosine to float32 is 0.99951 with 8-bit weights, 0.99898 with 7-bit weights
/// and symmetric inputs, below the 0.999 bound. Every kernel gives the same sums for the same quantised values.
public final class Int8Weights: @unchecked Sendable {
    /// Output channels.
    public let n: Int
    /// Input features.
    public let k: Int
    /// One dequantisation scale per output channel.
    public let scales: [Float]
    /// The largest |q|: at most 127, or the limit the weights were quantised to.
    public let limit: Int
    let packed: UnsafeMutableRawPointer
    /// Σ q[j, :] per channel, padded to whole panels (the VNNI kernel's compensation term).
    let columnSums: UnsafeMutablePointer<Int32>

    /// The longest input the int32 sums take without overflow.
    public static let maxInputFeatures = Int(AFFECT_INT8_MAX_K)

    /// The weight limit the int8 kernel in use runs fastest: 63 for AVX2, 127 for VNNI and portable.
    public static var preferredLimit: Int { Int(affect_int8_weight_limit(affect_int8_kernel())) }

    /// Quantises and packs `weight` (row-major `[n, k]`, PyTorch's Linear layout) to [-limit, limit].
    public init(weight: UnsafePointer<Float>, n: Int, k: Int, limit: Int = Int8Weights.preferredLimit) {
        precondition(n > 0 && k > 0 && k <= Self.maxInputFeatures, "int8 weights need n > 0 and 0 < k ≤ \(Self.maxInputFeatures)")
        precondition((1...127).contains(limit), "int8 weights: limit \(limit) is not in 1...127")
        self.n = n; self.k = k; self.limit = limit
        let q = UnsafeMutablePointer<Int8>.allocate(capacity: n * k)
        defer { q.deallocate() }
        var s = [Float](repeating: 0, count: n)
        s.withUnsafeMutableBufferPointer { sp in
            affect_int8_quantize_weights(weight, Int32(n), Int32(k), Int32(limit), q, sp.baseAddress!)
        }
        scales = s
        packed = UnsafeMutableRawPointer.allocate(byteCount: affect_int8_packed_size(Int32(n), Int32(k)), alignment: 64)
        let np = (n + 15) / 16 * 16
        columnSums = .allocate(capacity: np)
        affect_int8_pack(q, Int32(n), Int32(k), packed.assumingMemoryBound(to: Int8.self), columnSums)
    }

    /// Packs weights that are already int8 (`[n, k]`, values in [-127, 127]) with their channel scales.
    public init(quantized q: [Int8], scales: [Float], n: Int, k: Int) {
        precondition(n > 0 && k > 0 && k <= Self.maxInputFeatures && q.count == n * k && scales.count == n,
                     "int8 weights: \(q.count) values and \(scales.count) scales for [\(n), \(k)]")
        precondition(!q.contains(-128), "int8 weights are symmetric: -128 is not allowed")
        self.n = n; self.k = k; self.scales = scales
        limit = q.reduce(0) { max($0, abs(Int($1))) }
        packed = UnsafeMutableRawPointer.allocate(byteCount: affect_int8_packed_size(Int32(n), Int32(k)), alignment: 64)
        columnSums = .allocate(capacity: (n + 15) / 16 * 16)
        q.withUnsafeBufferPointer { affect_int8_pack($0.baseAddress!, Int32(n), Int32(k), packed.assumingMemoryBound(to: Int8.self), columnSums) }
    }

    deinit { packed.deallocate(); columnSums.deallocate() }

    /// Bytes per quantised input row: `k` rounded up to the kernels' group of 4.
    var rowBytes: Int { (k + 3) / 4 * 4 }
}

/// Quantises `rows` rows of `cols` floats symmetrically per row (`scale = max|x| / 127`, round half to even):
/// what the int8 linear layers do to their inputs. Returns the int8 values and one scale per row.
///
/// - Parameter columnFactors: `cols` factors multiplying every row first (the products rounded to float), as a
///   squeeze-and-excitation scale is applied inside the int8 convolutions' quantiser.
public func quantizeRows(_ x: [Float], rows: Int, cols: Int, columnFactors: [Float]? = nil) -> (values: [Int8], scales: [Float]) {
    precondition(x.count == rows * cols && (columnFactors == nil || columnFactors!.count == cols),
                 "quantizeRows: \(x.count) values for \(rows)×\(cols)")
    var q = [Int8](repeating: 0, count: rows * cols), s = [Float](repeating: 0, count: rows)
    x.withUnsafeBufferPointer { xp in q.withUnsafeMutableBufferPointer { qp in s.withUnsafeMutableBufferPointer { sp in
        if let factors = columnFactors {
            factors.withUnsafeBufferPointer { fp in
                affect_int8_quantize_rows_scaled(xp.baseAddress!, cols, Int32(rows), Int32(cols), fp.baseAddress!,
                                                 qp.baseAddress!, cols, sp.baseAddress!, 0)
            }
        } else {
            affect_int8_quantize_rows(xp.baseAddress!, cols, Int32(rows), Int32(cols), qp.baseAddress!, cols, sp.baseAddress!, 0)
        }
    } } }
    return (q, s)
}

/// Quantises `rows` rows of `cols` floats asymmetrically per row to unsigned bytes (`x ≈ scale · (u − zeroPoint)`,
/// see `affect_int8_quantize_rows_asymmetric`): what the int8 layers with 7-bit weights do to their inputs.
public func quantizeRowsAsymmetric(_ x: [Float], rows: Int, cols: Int, columnFactors: [Float]? = nil)
    -> (values: [UInt8], scales: [Float], zeroPoints: [Int32]) {
    precondition(x.count == rows * cols && (columnFactors == nil || columnFactors!.count == cols),
                 "quantizeRowsAsymmetric: \(x.count) values for \(rows)×\(cols)")
    var q = [UInt8](repeating: 0, count: rows * cols), s = [Float](repeating: 0, count: rows)
    var z = [Int32](repeating: 0, count: rows)
    x.withUnsafeBufferPointer { xp in q.withUnsafeMutableBufferPointer { qp in s.withUnsafeMutableBufferPointer { sp in
        z.withUnsafeMutableBufferPointer { zp in
            if let factors = columnFactors {
                factors.withUnsafeBufferPointer { fp in
                    affect_int8_quantize_rows_asymmetric(xp.baseAddress!, cols, Int32(rows), Int32(cols), fp.baseAddress!,
                                                         qp.baseAddress!, cols, sp.baseAddress!, zp.baseAddress!)
                }
            } else {
                affect_int8_quantize_rows_asymmetric(xp.baseAddress!, cols, Int32(rows), Int32(cols), nil,
                                                     qp.baseAddress!, cols, sp.baseAddress!, zp.baseAddress!)
            }
        }
    } } }
    return (q, s, z)
}

/// Splits an `m × n` product into blocks of rows × 64 output channels over ``Threading/threads`` and runs `body`
/// on each. Every output element is one whole int32 sum computed by one thread, so the result does not
/// depend on the thread count.
@usableFromInline
func int8Blocks(m: Int, n: Int, k: Int, _ body: (_ r0: Int, _ r1: Int, _ c0: Int, _ c1: Int) -> Void) {
    let rowBlock = 48, colBlock = 64
    let rb = (m + rowBlock - 1) / rowBlock, cb = (n + colBlock - 1) / colBlock
    // Below ~1 M multiply-adds a second thread costs more than it saves.
    let minChunk = m * n * k < 1 << 20 ? rb * cb : 1
    parallelFor(rb * cb, minChunk: minChunk) { t0, t1 in
        for t in t0..<t1 {
            let (c, r) = t.quotientAndRemainder(dividingBy: rb)
            body(r * rowBlock, min(m, (r + 1) * rowBlock), c * colBlock, min(n, (c + 1) * colBlock))
        }
    }
}

/// The raw int32 product `C[i, j] = Σ_k A[i, k] · q[j, k]` of int8 rows `a` (`m × k`, values in [-127, 127]) and
/// packed weights, across threads. For tests and for callers that dequantise themselves.
public func int8GEMM(m: Int, a: [Int8], weights w: Int8Weights) -> [Int32] {
    precondition(a.count == m * w.k && !a.contains(-128), "int8GEMM: \(a.count) values for \(m)×\(w.k) in [-127, 127]")
    let ld = w.rowBytes
    var padded = [Int8](repeating: 0, count: m * ld)
    for i in 0..<m { for p in 0..<w.k { padded[i * ld + p] = a[i * w.k + p] } }
    var c = [Int32](repeating: 0, count: m * w.n)
    padded.withUnsafeBufferPointer { ap in c.withUnsafeMutableBufferPointer { cp in
        let a = ap.baseAddress!, out = cp.baseAddress!
        int8Blocks(m: m, n: w.n, k: w.k) { r0, r1, c0, c1 in
            affect_int8_gemm(-1, 0, Int32(r1 - r0), Int32(w.n), Int32(c0), Int32(c1), Int32(w.k), a + r0 * ld, ld,
                             w.packed.assumingMemoryBound(to: Int8.self), w.columnSums, Int32(w.limit), nil, out + r0 * w.n, w.n,
                             nil, nil, nil, nil, 0, nil, 0)
        }
    } }
    return c
}

/// The raw int32 product `C[i, j] = Σ_k (A[i, k] − zeroPoints[i]) · q[j, k]` of unsigned rows `a` (`m × k`) and
/// packed weights, across threads: the product the layers with 7-bit weights run.
public func int8GEMM(m: Int, a: [UInt8], zeroPoints: [Int32], weights w: Int8Weights) -> [Int32] {
    precondition(a.count == m * w.k && zeroPoints.count == m, "int8GEMM: \(a.count) values and \(zeroPoints.count) zero points for \(m)×\(w.k)")
    let ld = w.rowBytes
    var padded = [UInt8](repeating: 0, count: m * ld)
    for i in 0..<m { for p in 0..<w.k { padded[i * ld + p] = a[i * w.k + p] } }
    var c = [Int32](repeating: 0, count: m * w.n)
    padded.withUnsafeBufferPointer { ap in c.withUnsafeMutableBufferPointer { cp in zeroPoints.withUnsafeBufferPointer { zp in
        let a = UnsafeRawPointer(ap.baseAddress!).assumingMemoryBound(to: Int8.self), out = cp.baseAddress!
        let z = zp.baseAddress!
        int8Blocks(m: m, n: w.n, k: w.k) { r0, r1, c0, c1 in
            affect_int8_gemm(-1, 0, Int32(r1 - r0), Int32(w.n), Int32(c0), Int32(c1), Int32(w.k), a + r0 * ld, ld,
                             w.packed.assumingMemoryBound(to: Int8.self), w.columnSums, Int32(w.limit), z + r0,
                             out + r0 * w.n, w.n, nil, nil, nil, nil, 0, nil, 0)
        }
    } } }
    return c
}

/// `out = act(dequant(quant(x) · qᵀ) + bias + residual)` for `m` rows of `k` floats: the inputs are quantised per
/// row, multiplied in int8 with int32 sums, and each sum is scaled by its row's and its channel's scale.
/// `out` (`m × n`) may be `residual`. The activation runs on each output block while it is in cache.
///
/// - Parameters:
///   - inputScale: factors multiplying the inputs before they are quantised, `k` per group of `rowsPerScale`
///     rows (row `r` takes `inputScale[(r / rowsPerScale) · k ..< … + k]`): a squeeze-and-excitation's
///     per-image channel scale, applied inside the quantiser's pass.
public func int8Linear(m: Int, x: UnsafePointer<Float>, weights w: Int8Weights, bias: UnsafePointer<Float>?,
                       residual: UnsafePointer<Float>?, out: UnsafeMutablePointer<Float>, activation: Activation = .none,
                       inputScale: UnsafePointer<Float>? = nil, rowsPerScale: Int = 1) {
    precondition(inputScale == nil || rowsPerScale > 0, "int8Linear: rowsPerScale must be positive")
    guard m > 0 else { return }
    let started = MatrixProfile.isEnabled ? MatrixProfile.now() : 0
    defer { if started != 0 { MatrixProfile.record("int8 GEMM", m: m, n: w.n, k: w.k, since: started) } }
    let ld = w.rowBytes
    let raw = UnsafeMutableRawPointer.allocate(byteCount: m * ld, alignment: 64)
    let q = raw.bindMemory(to: Int8.self, capacity: m * ld)
    let rowScales = UnsafeMutablePointer<Float>.allocate(capacity: m)
    // 7-bit weights take asymmetric inputs (see ``Int8Weights``): unsigned bytes and a zero point per row.
    let asymmetric = w.limit <= 63
    let zeroPoints: UnsafeMutablePointer<Int32>? = asymmetric ? .allocate(capacity: m) : nil
    defer { raw.deallocate(); rowScales.deallocate(); zeroPoints?.deallocate() }
    // One kernel for the whole product: the quantiser stores the +128 offset for the VNNI and AVX2 kernels.
    let kernel = affect_int8_kernel(), offset = affect_int8_prefers_offset(kernel)
    @inline(__always) func quantize(_ r: Int, _ count: Int, _ factors: UnsafePointer<Float>?) {
        if let zeroPoints {
            affect_int8_quantize_rows_asymmetric(x + r * w.k, w.k, Int32(count), Int32(w.k), factors,
                                                 UnsafeMutableRawPointer(q + r * ld).assumingMemoryBound(to: UInt8.self),
                                                 ld, rowScales + r, zeroPoints + r)
        } else {
            affect_int8_quantize_rows_scaled(x + r * w.k, w.k, Int32(count), Int32(w.k), factors, q + r * ld, ld,
                                             rowScales + r, offset)
        }
    }
    parallelFor(m, minChunk: max(1, 16384 / w.k)) { r0, r1 in
        guard let factors = inputScale else { quantize(r0, r1 - r0, nil); return }
        var r = r0
        while r < r1 {
            let group = r / rowsPerScale, end = min(r1, (group + 1) * rowsPerScale)
            quantize(r, end - r, factors + group * w.k)
            r = end
        }
    }
    // PReLU slopes are indexed by channel from 0: they take a pass of their own.
    let blockActivation: Activation
    if case .prelu = activation { blockActivation = .none } else { blockActivation = activation }
    w.scales.withUnsafeBufferPointer { sp in
        let colScales = sp.baseAddress!
        int8Blocks(m: m, n: w.n, k: w.k) { r0, r1, c0, c1 in
            affect_int8_gemm(kernel, offset, Int32(r1 - r0), Int32(w.n), Int32(c0), Int32(c1), Int32(w.k), q + r0 * ld, ld,
                             w.packed.assumingMemoryBound(to: Int8.self), w.columnSums, Int32(w.limit), zeroPoints.map { $0 + r0 }, nil, 0,
                             rowScales + r0, colScales, bias, residual.map { $0 + r0 * w.n }, w.n, out + r0 * w.n, w.n)
            if blockActivation != .none {
                for r in r0..<r1 { applyActivation(blockActivation, out + r * w.n + c0, count: c1 - c0, channels: c1 - c0) }
            }
        }
    }
    if case .prelu = activation { biasActivation(out, rows: m, cols: w.n, bias: nil, act: activation) }
}
