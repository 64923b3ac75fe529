import CBLAS

/// C[m×n] = A[m×k] · B (+ C if `accumulate`), row-major. `bTransposed`: B is stored n×k (PyTorch's
/// Linear weight layout), so weights are used straight from the mapped file.
///
/// Threading is ours, not OpenBLAS's: OpenBLAS runs single-threaded and we split C into row (or column)
/// blocks across ``Threading/threads``. With both OpenBLAS's pthreads and our workers alive, each spun and
/// yielded while the other worked (13 % of EfficientNet-B0's time went to the scheduler).
@inlinable
public func sgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
                  c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, accumulate: Bool = false) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        if !accumulate { for i in 0..<m { (c + i * ldc).initialize(repeating: 0, count: n) } }
        return
    }
    let started = MatrixProfile.isEnabled ? MatrixProfile.now() : 0
    defer { if started != 0 { MatrixProfile.record("OpenBLAS sgemm", m: m, n: n, k: k, since: started) } }
    let threads = Threading.threads
    let work = Double(m) * Double(n) * Double(k)
    if threads <= 1 || work < 1e6 {
        sgemmBlock(m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, bTransposed: bTransposed, c: c, ldc: ldc,
                   alpha: alpha, accumulate: accumulate)
        return
    }
    // Each block's OpenBLAS call packs its own slices of A and B, and all of the other operand. Splitting
    // rows repacks all of B (the n×k weight of a Linear) in every thread, splitting columns repacks all of A,
    // so the split goes along the larger of m and n. For transformer layers (m = 128 to 500 tokens, n = 768 to
    // 3072 features) row blocks made weight packing a third of RoBERTa-base's time.
    if m >= n {
        // Row blocks, multiples of 16 rows so OpenBLAS's micro-kernel tiles stay whole.
        let blocks = min(threads, max(1, m / 16))
        parallelFor(blocks, minChunk: 1) { b0, b1 in
            for blk in b0..<b1 {
                let r0 = (m * blk / blocks) & ~15, r1 = blk == blocks - 1 ? m : (m * (blk + 1) / blocks) & ~15
                if r1 > r0 {
                    sgemmBlock(m: r1 - r0, n: n, k: k, a: a + r0 * lda, lda: lda, b: b, ldb: ldb, bTransposed: bTransposed,
                               c: c + r0 * ldc, ldc: ldc, alpha: alpha, accumulate: accumulate)
                }
            }
        }
    } else {
        let blocks = min(threads, max(1, n / 16))
        parallelFor(blocks, minChunk: 1) { b0, b1 in
            for blk in b0..<b1 {
                let c0 = (n * blk / blocks) & ~15, c1 = blk == blocks - 1 ? n : (n * (blk + 1) / blocks) & ~15
                if c1 > c0 {
                    let bp = bTransposed ? b + c0 * ldb : b + c0
                    sgemmBlock(m: m, n: c1 - c0, k: k, a: a, lda: lda, b: bp, ldb: ldb, bTransposed: bTransposed,
                               c: c + c0, ldc: ldc, alpha: alpha, accumulate: accumulate)
                }
            }
        }
    }
}

/// One single-threaded `cblas_sgemm` call.
@inlinable
public func sgemmBlock(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                       b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
                       c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, accumulate: Bool = false) {
    _ = Threading.threads   // first BLAS use: OpenBLAS's kernel set is fixed up before any call (see Threading)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, bTransposed ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                accumulate ? 1 : 0, c, Int32(ldc))
}

/// Adds `bias` (length = last axis) to every row and applies `act`, in place, across threads.
@inlinable
public func biasActivation(_ out: UnsafeMutablePointer<Float>, rows: Int, cols: Int, ldc: Int? = nil,
                           bias: UnsafePointer<Float>?, act: Activation) {
    let ld = ldc ?? cols
    if bias == nil && act == .none { return }
    parallelFor(rows, minChunk: max(1, 8192 / max(cols, 1))) { r0, r1 in
        for r in r0..<r1 {
            let row = out + r * ld
            if let b = bias {
                var j = 0
                while j + 16 <= cols { store(load(row + j) + load(b + j), row + j); j += 16 }
                while j < cols { row[j] += b[j]; j += 1 }
            }
            applyActivation(act, row, count: cols, channels: cols)
        }
    }
}

/// A fully connected layer `y = act(x·Wᵀ + b)` over the last axis.
///
/// The weights are repacked once, at load, into ``PackedWeights`` for the micro-kernel of
/// ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)``, which also adds the bias, an optional residual
/// and the activation on each output tile while it is in L1. Tiny layers (under 4096 weights) keep the OpenBLAS
/// path. At ``Precision/int8`` the weight is quantised per output channel instead (``Int8Weights``) and each
/// call quantises its input per row (``int8Linear(m:x:weights:bias:residual:out:)``).
public struct Linear: Sendable {
    public let inFeatures: Int
    public let outFeatures: Int
    public let bias: Tensor?
    public let activation: Activation
    /// The `[out, in]` weight, kept only when it is not packed.
    let weight: Tensor?
    let packed: PackedWeights?
    /// The int8 weight at ``Precision/int8``.
    let int8: Int8Weights?

    /// The precision the layer computes in (``Precision/int8`` only when it was asked for and the input is at
    /// most ``Int8Weights/maxInputFeatures`` wide).
    public var precision: Precision { int8 == nil ? .float32 : .int8 }

    /// - Parameters:
    ///   - weight: PyTorch layout `[out, in]`. Once packed, the weight's pages in a mapped weight file are handed
    ///     back to the system (they are re-read from the file if anything touches them again), so the packed copy
    ///     does not double the resident memory.
    ///   - precision: ``Precision/int8`` quantises the weight per output channel (dynamic int8 inputs at run time).
    public init(weight: Tensor, bias: Tensor?, activation: Activation = .none, precision: Precision = .float32) {
        precondition(weight.rank == 2, "Linear weight must be 2-D, got \(weight.shape)")
        precondition(bias == nil || bias!.count == weight.shape[0], "Linear bias does not match the weight")
        outFeatures = weight.shape[0]; inFeatures = weight.shape[1]
        self.bias = bias; self.activation = activation
        if precision == .int8 && inFeatures <= Int8Weights.maxInputFeatures {
            int8 = Int8Weights(weight: weight.data, n: outFeatures, k: inFeatures)
            weight.releaseMappedPages()
            packed = nil
            self.weight = nil
            return
        }
        int8 = nil
        if weight.count >= 4096 {
            packed = PackedWeights(weight: weight.data, n: outFeatures, k: inFeatures, bias: bias.map { UnsafePointer($0.data) })
            weight.releaseMappedPages()
            self.weight = nil
        } else {
            packed = nil
            self.weight = weight
        }
    }

    /// `x`: `[..., in]` → `[..., out]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { self(x, adding: nil) }

    /// `act(x·Wᵀ + b + residual)`: the residual (same shape as the output) is added inside the product's
    /// epilogue instead of in a separate pass.
    public func callAsFunction(_ x: Tensor, adding residual: Tensor?) -> Tensor {
        precondition(x.shape.last == inFeatures, "Linear expects \(inFeatures) features, got \(x.shape)")
        let rows = x.count / inFeatures
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outFeatures])
        if let residual { precondition(residual.count == out.count, "Linear residual \(residual.shape) does not match \(out.shape)") }
        if let int8 {
            int8Linear(m: rows, x: x.data, weights: int8, bias: bias.map { UnsafePointer($0.data) },
                       residual: residual.map { UnsafePointer($0.data) }, out: out.data, activation: activation)
            return out
        }
        if let packed {
            packedGEMM(m: rows, a: x.data, lda: inFeatures, weights: packed,
                       residual: residual.map { UnsafePointer($0.data) }, ldr: outFeatures,
                       c: out.data, ldc: outFeatures, activation: activation)
            return out
        }
        sgemm(m: rows, n: outFeatures, k: inFeatures, a: x.data, lda: inFeatures,
              b: weight!.data, ldb: inFeatures, bTransposed: true, c: out.data, ldc: outFeatures)
        if let residual {
            parallelFor(rows, minChunk: max(1, 8192 / max(outFeatures, 1))) { r0, r1 in
                for i in r0 * outFeatures..<r1 * outFeatures { out.data[i] += residual.data[i] }
            }
        }
        biasActivation(out.data, rows: rows, cols: outFeatures, bias: bias.map { UnsafePointer($0.data) }, act: activation)
        return out
    }
}

/// Batched matrix product over the last two axes: `[..., m, k] · [..., k, n]` (or `[..., n, k]` if
/// `transposeB`) with equal leading axes.
public func matmul(_ a: Tensor, _ b: Tensor, transposeB: Bool = false) -> Tensor {
    precondition(a.rank >= 2 && b.rank == a.rank, "matmul needs equal ranks ≥ 2")
    let m = a.shape[a.rank - 2], k = a.shape[a.rank - 1]
    let n = transposeB ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
    let kb = transposeB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
    precondition(k == kb, "matmul inner sizes differ: \(a.shape) · \(b.shape)")
    let batch = a.count / max(m * k, 1)
    let out = Tensor(uninitialized: Array(a.shape.dropLast(2)) + [m, n])
    for i in 0..<batch {
        sgemm(m: m, n: n, k: k, a: a.data + i * m * k, lda: k, b: b.data + i * k * n, ldb: transposeB ? k : n,
              bTransposed: transposeB, c: out.data + i * m * n, ldc: n)
    }
    return out
}
