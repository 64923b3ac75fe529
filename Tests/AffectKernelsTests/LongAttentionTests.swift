import Foundation
import Testing
import AffectKernels

/// ``longAttention(qkv:heads:keyMask:scale:)`` against its reference (`Reference.attention`, a double-precision
/// softmax(q·kᵀ·scale)·v over each item's unmasked keys): sequences that leave a short last block of queries
/// (not a multiple of 6) and a partial last slab of 64 keys, right-padded masks (including an item with no keys
/// at all), a mask with a hole (handed to the BLAS path), and a head width other than 64 (also handed over).
@Suite struct LongAttentionTests {
    struct Case: CustomStringConvertible {
        var batch: Int, length: Int, heads: Int, headSize: Int
        /// Unmasked keys per item (nil: no mask); a negative count masks key 1 as well (a hole).
        var keys: [Int]?
        var description: String { "b\(batch) L\(length) \(heads)×\(headSize) keys \(keys.map { "\($0)" } ?? "all")" }
    }

    static let cases = [
        Case(batch: 1, length: 1, heads: 1, headSize: 64, keys: nil),
        Case(batch: 1, length: 13, heads: 2, headSize: 64, keys: nil),
        Case(batch: 2, length: 70, heads: 3, headSize: 64, keys: nil),
        Case(batch: 1, length: 131, heads: 2, headSize: 64, keys: nil),
        Case(batch: 3, length: 67, heads: 2, headSize: 64, keys: [67, 40, 0]),
        Case(batch: 2, length: 29, heads: 2, headSize: 64, keys: [29, -20]),
        Case(batch: 2, length: 23, heads: 2, headSize: 32, keys: [23, 11]),
    ]

    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            s ^= s << 13; s ^= s >> 7; s ^= s << 17
            return Float(s % 40_000) / 10_000 - 2
        }
    }

    @Test(arguments: cases)
    func matchesDoublePrecisionSoftmax(_ c: Case) {
        let (l, hd) = (c.length, c.heads * c.headSize)
        let w = 3 * hd
        let x = Self.values(c.batch * l * w, seed: UInt64(l * 131 + hd))
        var mask: [Float]? = nil
        if let keys = c.keys {
            var m = [Float](repeating: 0, count: c.batch * l)
            for (i, k) in keys.enumerated() {
                for j in 0..<abs(k) { m[i * l + j] = 1 }
                if k < 0 { m[i * l + 1] = 0 }
            }
            mask = m
        }
        let y = longAttention(qkv: Tensor(shape: [c.batch, l, w], values: x), heads: c.heads, keyMask: mask)
        let expected = Reference.attention(qkv: Reference.Values(shape: [c.batch, l, w], data: x), heads: c.heads, keyMask: mask)
        #expect(y.shape == [c.batch, l, hd] && expected.shape == y.shape)
        let worst = zip(y.array, expected.data).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
        #expect(worst < 2e-6, "max error \(worst)")
    }
}
