import CAffectInt8

/// The number format of a model's linear layers.
///
/// ``float32`` is the default and what every reference check is made against. ``int8`` quantises the weights of
/// the transformer encoders' linear layers and of wide 1×1 convolutions at load (symmetric, one scale per output
/// channel) and their inputs at run time (symmetric, one scale per row or pixel), multiplies in int8 with int32
/// sums and dequantises in float, as ONNX Runtime's `quantize_dynamic` does. It trades a bounded error (cosine
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
/// `scale[j] = max|W[j, :]| / 127` and `q[j, i] = round(W[j, i] / scale[j])` (half to even), in [-127, 127].
public final class Int8Weights: @unchecked Sendable {
    /// Output channels.
    public let n: Int
    /// Input features.
    public let k: Int
    /// One dequantisation scale per output channel.
    public let scales: [Float]
    let packed: UnsafeMutableRawPointer
    /// Σ q[j, :] per channel, padded to whole panels (the VNNI kernel's compensation term).
    let columnSums: UnsafeMutablePointer<Int32>

    /// The longest input the int32 sums take without overflow.
    public static let maxInputFeatures = Int(AFFECT_INT8_MAX_K)

    /// Quantises and packs `weight` (row-major `[n, k]`, PyTorch's Linear layout).
    public init(weight: UnsafePointer<Float>, n: Int, k: Int) {
        precondition(n > 0 && k > 0 && k <= Self.maxInputFeatures, "int8 weights need n > 0 and 0 < k ≤ \(Self.maxInputFeatures)")
        self.n = n; self.k = k
        let q = UnsafeMutablePointer<Int8>.allocate(capacity: n * k)
        defer { q.deallocate() }
        var s = [Float](repeating: 0, count: n)
        s.withUnsafeMutableBufferPointer { sp in
            affect_int8_quantize_rows(weight, k, Int32(n), Int32(k), q, k, sp.baseAddress!, 0)
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
                             w.packed.assumingMemoryBound(to: Int8.self), w.columnSums, out + r0 * w.n, w.n,
                             nil, nil, nil, nil, 0, nil, 0)
        }
    } }
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
    defer { if started != 0 { MatrixProfile.record("int8 GEMM", flops: 2 * Double(m) * Double(w.n) * Double(w.k), since: started) } }
    let ld = w.rowBytes
    let q = UnsafeMutableRawPointer.allocate(byteCount: m * ld, alignment: 64).bindMemory(to: Int8.self, capacity: m * ld)
    let rowScales = UnsafeMutablePointer<Float>.allocate(capacity: m)
    defer { q.deallocate(); rowScales.deallocate() }
    // One kernel for the whole product: the quantiser stores the +128 offset for the VNNI kernel.
    let kernel = affect_int8_kernel(), offset = affect_int8_prefers_offset(kernel)
    parallelFor(m, minChunk: max(1, 16384 / w.k)) { r0, r1 in
        guard let factors = inputScale else {
            affect_int8_quantize_rows(x + r0 * w.k, w.k, Int32(r1 - r0), Int32(w.k), q + r0 * ld, ld, rowScales + r0, offset)
            return
        }
        var r = r0
        while r < r1 {
            let group = r / rowsPerScale, end = min(r1, (group + 1) * rowsPerScale)
            affect_int8_quantize_rows_scaled(x + r * w.k, w.k, Int32(end - r), Int32(w.k), factors + group * w.k,
                                             q + r * ld, ld, rowScales + r, offset)
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
                             w.packed.assumingMemoryBound(to: Int8.self), w.columnSums, nil, 0,
                             rowScales + r0, colScales, bias, residual.map { $0 + r0 * w.n }, w.n, out + r0 * w.n, w.n)
            if blockActivation != .none {
                for r in r0..<r1 { applyActivation(blockActivation, out + r * w.n + c0, count: c1 - c0, channels: c1 - c0) }
            }
        }
    }
    if case .prelu = activation { biasActivation(out, rows: m, cols: w.n, bias: nil, act: activation) }
}
