import Foundation
import Testing
import AffectKernels

/// ``tileAttention(qkv:heads:scale:)`` against its reference (`Reference.attention`), on shapes that hit
/// every tile width: sequences not a multiple of 4 (spare query rows) or 16 (partial key vectors, scalar
/// softmax tail), heads of 1 to 4 vectors and not a multiple of 16 (partial output rows next to the
/// neighbouring head), and a head wider than 64 (handed to the BLAS path).
@Suite struct TileAttentionTests {
    struct Case: CustomStringConvertible {
        var batch: Int, length: Int, heads: Int, headSize: Int
        var description: String { "b\(batch) L\(length) \(heads)×\(headSize)" }
    }

    static let cases = [
        Case(batch: 1, length: 1, heads: 1, headSize: 8),
        Case(batch: 2, length: 5, heads: 3, headSize: 16),
        Case(batch: 1, length: 16, heads: 4, headSize: 60),
        Case(batch: 3, length: 17, heads: 2, headSize: 20),
        Case(batch: 4, length: 49, heads: 4, headSize: 48),
        Case(batch: 2, length: 66, heads: 4, headSize: 24),
        Case(batch: 4, length: 196, heads: 4, headSize: 36),
        Case(batch: 1, length: 70, heads: 2, headSize: 64),
        Case(batch: 2, length: 9, heads: 2, headSize: 80),
    ]

    /// Deterministic values in [-2, 2), so scores span several units and the softmax is far from uniform.
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Float(s % 40_000) / 10_000 - 2
        }
    }

    /// softmax(q·kᵀ·scale)·v per head (`Reference.attention`).
    func reference(_ x: [Float], _ c: Case, scale: Float? = nil) -> [Float] {
        let width = 3 * c.heads * c.headSize
        return Reference.attention(qkv: Reference.Values(shape: [c.batch, c.length, width], data: x), heads: c.heads, scale: scale).data
    }

    @Test(arguments: cases)
    func matchesReference(_ c: Case) {
        let hd = c.heads * c.headSize
        let x = Self.values(c.batch * c.length * 3 * hd, seed: UInt64(c.length * 131 + c.headSize))
        let qkv = Tensor(shape: [c.batch, c.length, 3 * hd], values: x)
        let expected = reference(x, c)
        let y = tileAttention(qkv: qkv, heads: c.heads)
        #expect(y.shape == [c.batch, c.length, hd])
        var worst: Float = 0
        for i in 0..<expected.count { worst = max(worst, abs(y.data[i] - expected[i]) / max(1, abs(expected[i]))) }
        #expect(worst < 2e-6, "\(c): max error \(worst)")
    }

    /// An explicit scale reaches the scores (a wrong one changes which keys dominate).
    @Test func explicitScale() {
        let c = Case(batch: 1, length: 20, heads: 2, headSize: 16)
        let x = Self.values(20 * 96, seed: 7)
        let expected = reference(x, c, scale: 0.5)
        let y = tileAttention(qkv: Tensor(shape: [1, 20, 96], values: x), heads: 2, scale: 0.5)
        var worst: Float = 0
        for i in 0..<expected.count { worst = max(worst, abs(y.data[i] - expected[i])) }
        #expect(worst < 2e-6, "max error \(worst)")
    }
}
