import CBLAS

/// C[m×n] = A[m×k] · B (+ C if `accumulate`), row-major. `bTransposed`: B is stored n×k (PyTorch's
/// Linear weight layout), so weights are used straight from the mapped file.
@inlinable
public func sgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int, bTransposed: Bool,
                  c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, accumulate: Bool = false) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        if !accumulate { for i in 0..<m { (c + i * ldc).initialize(repeating: 0, count: n) } }
        return
    }
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

/// A fully connected layer `y = x·Wᵀ + b` over the last axis, with a fused activation.
public struct Linear: Sendable {
    /// PyTorch layout `[out, in]`.
    public let weight: Tensor
    public let bias: Tensor?
    public var activation: Activation
    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public init(weight: Tensor, bias: Tensor?, activation: Activation = .none) {
        precondition(weight.rank == 2, "Linear weight must be 2-D, got \(weight.shape)")
        precondition(bias == nil || bias!.count == weight.shape[0], "Linear bias does not match the weight")
        self.weight = weight; self.bias = bias; self.activation = activation
    }

    /// `x`: `[..., in]` → `[..., out]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.shape.last == inFeatures, "Linear expects \(inFeatures) features, got \(x.shape)")
        let rows = x.count / inFeatures
        let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outFeatures])
        sgemm(m: rows, n: outFeatures, k: inFeatures, a: x.data, lda: inFeatures,
              b: weight.data, ldb: inFeatures, bTransposed: true, c: out.data, ldc: outFeatures)
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
