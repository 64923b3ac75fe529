import Foundation

/// Time and work spent in matrix products, for `affect bench --profile`.
///
/// Off by default (one relaxed flag test per product). When on, the calling thread times each
/// ``packedGEMM(m:a:lda:weights:residual:ldr:c:ldc:activation:aGroupStride:)`` and ``sgemm(m:n:k:a:lda:b:ldb:bTransposed:c:ldc:alpha:accumulate:)``
/// call from entry to return (its worker threads included), so `flops / seconds` is the rate the model's
/// matrix products reach inside the real forward pass, epilogues and thread hand-off included.
public enum MatrixProfile {
    /// One kind of product.
    public struct Totals: Sendable {
        public var calls = 0
        public var flops = 0.0
        public var seconds = 0.0
        public var gflops: Double { seconds > 0 ? flops / seconds / 1e9 : 0 }
    }

    nonisolated(unsafe) public private(set) static var isEnabled = false
    nonisolated(unsafe) static var totals: [String: Totals] = [:]
    static let lock = NSLock()

    /// Starts (or restarts) counting from zero.
    public static func enable() {
        lock.lock(); totals = [:]; lock.unlock()
        isEnabled = true
    }

    public static func disable() { isEnabled = false }

    /// What was counted since ``enable()``, by kind (`packed GEMM`, `OpenBLAS sgemm`).
    public static var snapshot: [String: Totals] { lock.lock(); defer { lock.unlock() }; return totals }

    @usableFromInline static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    @usableFromInline static func record(_ kind: String, flops: Double, since start: UInt64) {
        let seconds = Double(now() - start) / 1e9
        lock.lock()
        totals[kind, default: Totals()].calls += 1
        totals[kind, default: Totals()].flops += flops
        totals[kind, default: Totals()].seconds += seconds
        lock.unlock()
    }
}
