import CBLAS
import AffectKernels

/// Matrix products for training that give bit-identical results on any number of threads.
///
/// `AffectKernels.sgemm` splits its work by the thread count, and OpenBLAS's edge tiles may round a block of
/// another size differently, so a run on 2 threads could drift from a run on 1 over thousands of Adam steps.
/// Here the blocks depend only on the matrix shape: each block is one single-threaded `cblas_sgemm` call with
/// the same arguments whatever the thread count, and threads only decide who computes which block.
enum TrainingGEMM {
    /// Block sizes along the split axis: large enough that OpenBLAS's packing of the other operand (the
    /// whole weight, for a forward pass) amortises, small enough to give both cores work at the batch sizes
    /// training uses (256 to 4096 rows).
    static let rowBlock = 128
    static let columnBlock = 256
    /// Products below this many multiply-adds run as one call.
    static let smallWork = 1 << 19

    /// `C[m×n] = op(A)·op(B) (+ C if accumulate)`, row-major. `transA`: A is stored k×m; `transB`: B is stored n×k.
    static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool = false) {
        guard m > 0, n > 0 else { return }
        _ = Threading.threads   // fixes OpenBLAS's kernel set and its single-threaded mode before the first call
        if k == 0 {
            if !accumulate { for i in 0..<m { (c + i * ldc).initialize(repeating: 0, count: n) } }
            return
        }
        func call(_ m: Int, _ n: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>) {
            cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), accumulate ? 1 : 0, c, Int32(ldc))
        }
        if m * n * k < smallWork {
            call(m, n, a, b, c)
            return
        }
        if m >= n {
            let blocks = (m + rowBlock - 1) / rowBlock
            parallelFor(blocks) { b0, b1 in
                for blk in b0..<b1 {
                    let r0 = blk * rowBlock, rows = min(rowBlock, m - r0)
                    call(rows, n, transA ? a + r0 : a + r0 * lda, b, c + r0 * ldc)
                }
            }
        } else {
            let blocks = (n + columnBlock - 1) / columnBlock
            parallelFor(blocks) { b0, b1 in
                for blk in b0..<b1 {
                    let c0 = blk * columnBlock, cols = min(columnBlock, n - c0)
                    call(m, cols, a, transB ? b + c0 * ldb : b + c0, c + c0)
                }
            }
        }
    }
}
