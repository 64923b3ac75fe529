import Foundation
import AffectKernels

/// SHA-1 (FIPS 180-4), for git blob ids: GitHub pins a file's exact bytes by the SHA-1 of
/// `"blob <size>\0" + content`, which is what the registry records for EmotiEffLib's files.
public struct SHA1: BlockHash {
    var h: [UInt32] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    var buffer: [UInt8] = []
    var length: UInt64 = 0

    public init() {}

    mutating func compress(_ block: UnsafeRawPointer) {
        @inline(__always) func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { (x << n) | (x >> (32 - n)) }
        var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4]
        // The message schedule lives on the stack: no allocation per 64-byte block.
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 80) { w in
            for t in 0..<16 { w[t] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self)) }
            for t in 16..<80 { w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1) }
            for t in 0..<80 {
                let f: UInt32, k: UInt32
                switch t {
                case 0..<20: f = (b & c) | (~b & d); k = 0x5A827999
                case 20..<40: f = b ^ c ^ d; k = 0x6ED9EBA1
                case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC
                default: f = b ^ c ^ d; k = 0xCA62C1D6
                }
                let tmp = rotl(a, 5) &+ f &+ e &+ k &+ w[t]
                e = d; d = c; c = rotl(b, 30); b = a; a = tmp
            }
        }
        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e
    }

    /// The git blob id of a file: SHA-1 of `"blob <size>\0"` followed by its bytes.
    public static func gitBlob(_ path: String) throws(AffectError) -> String {
        let m: MappedFile
        do { m = try MappedFile(path: path) } catch let e as AffectError { throw e } catch { throw .badInput("\(path): cannot read the file.") }
        var s = SHA1()
        s.update(Data("blob \(m.size)\0".utf8))
        s.update(UnsafeRawBufferPointer(start: m.base, count: m.size))
        return s.hexDigest()
    }
}
