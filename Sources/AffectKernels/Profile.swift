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

    /// One product shape: `m` rows of `k` inputs times `k × n` weights, of one kind.
    public struct Shape: Hashable, Sendable {
        public var kind: String
        public var m: Int, n: Int, k: Int
    }

    nonisolated(unsafe) public private(set) static var isEnabled = false
    nonisolated(unsafe) static var shapes: [Shape: Totals] = [:]
    static let lock = NSLock()

    /// Starts (or restarts) counting from zero.
    public static func enable() {
        lock.lock(); shapes = [:]; lock.unlock()
        isEnabled = true
    }

    public static func disable() { isEnabled = false }

    /// What was counted since ``enable()``, by kind (`packed GEMM`, `OpenBLAS sgemm`).
    public static var snapshot: [String: Totals] {
        var totals: [String: Totals] = [:]
        for (shape, t) in shapeSnapshot {
            totals[shape.kind, default: Totals()].calls += t.calls
            totals[shape.kind, default: Totals()].flops += t.flops
            totals[shape.kind, default: Totals()].seconds += t.seconds
        }
        return totals
    }

    /// The same, by shape: which layers of a model fall short of the kernel's rate.
    public static var shapeSnapshot: [Shape: Totals] { lock.lock(); defer { lock.unlock() }; return shapes }

    @usableFromInline static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    @usableFromInline static func record(_ kind: String, m: Int, n: Int, k: Int, since start: UInt64) {
        let seconds = Double(now() - start) / 1e9, flops = 2 * Double(m) * Double(n) * Double(k)
        let shape = Shape(kind: kind, m: m, n: n, k: k)
        lock.lock()
        shapes[shape, default: Totals()].calls += 1
        shapes[shape, default: Totals()].flops += flops
        shapes[shape, default: Totals()].seconds += seconds
        lock.unlock()
    }
}
