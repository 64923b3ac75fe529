import Foundation

/// The Merkle–Damgård frame SHA-1 and SHA-256 share: bytes are buffered into 64-byte blocks for `compress`,
/// and the digest pads with 0x80, zeros and the big-endian bit length before reading the 32-bit state words.
protocol BlockHash {
    /// The state words, big-endian in the digest.
    var h: [UInt32] { get }
    /// Bytes of an incomplete block.
    var buffer: [UInt8] { get set }
    /// Bytes hashed so far.
    var length: UInt64 { get set }
    /// Folds one 64-byte block into the state.
    mutating func compress(_ block: UnsafeRawPointer)
}

extension BlockHash {
    mutating func update(_ p: UnsafeRawBufferPointer) {
        length &+= UInt64(p.count)
        var start = 0
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, p.count)
            buffer.append(contentsOf: p[0..<take])
            start = take
            if buffer.count == 64 {
                buffer.withUnsafeBytes { compress($0.baseAddress!) }
                buffer.removeAll(keepingCapacity: true)
            }
        }
        while p.count - start >= 64 {
            compress(p.baseAddress! + start)
            start += 64
        }
        if start < p.count { buffer.append(contentsOf: p[start...]) }
    }

    mutating func update(_ d: Data) { d.withUnsafeBytes { update($0) } }

    /// The digest as lowercase hex digits (8 per state word).
    mutating func hexDigest() -> String {
        let bits = length &* 8
        var tail: [UInt8] = [0x80]
        while (buffer.count + tail.count) % 64 != 56 { tail.append(0) }
        for s in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bits >> UInt64(s))) }
        let saved = length
        tail.withUnsafeBytes { update($0) }
        length = saved
        return h.map { String(format: "%08x", $0) }.joined()
    }
}
