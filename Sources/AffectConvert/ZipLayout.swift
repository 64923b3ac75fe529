import Foundation
import AffectKernels

/// Checks a zip archive's directory before ZIPFoundation reads it. ZIPFoundation converts every offset it reads
/// from the file to `off_t` with a trapping conversion, so a forged offset of 2⁶³ or more (a zip64 field) ends
/// the process; and an offset past the end of the file is damage anyway. This walks the same records
/// ZIPFoundation walks (end of central directory, its zip64 locator and record, every central directory entry
/// with its zip64 extra field) and refuses any offset or size that does not fit inside the file.
enum ZipLayout {
    static func check(_ path: String) throws(AffectError) {
        guard let h = FileHandle(forReadingAtPath: path) else { throw .badInput("\(path): cannot open the file.") }
        defer { try? h.close() }
        guard let end = try? h.seekToEnd(), end >= 22 else { throw .badInput("\(path): too short to be a zip archive.") }
        let size = end
        func read(_ offset: UInt64, _ count: Int) throws(AffectError) -> [UInt8] {
            guard offset <= size, UInt64(count) <= size - offset else {
                throw .badInput("\(path): the zip archive's directory points past the end of the file.")
            }
            if count == 0 { return [] }   // FileHandle reads nothing as nil
            do {
                try h.seek(toOffset: offset)
                guard let d = try h.read(upToCount: count), d.count == count else { throw CocoaError(.fileReadCorruptFile) }
                return [UInt8](d)
            } catch { throw .badInput("\(path): cannot read the zip archive's directory.") }
        }
        func u16(_ b: [UInt8], _ i: Int) -> UInt64 { UInt64(b[i]) | UInt64(b[i + 1]) << 8 }
        func u32(_ b: [UInt8], _ i: Int) -> UInt64 { u16(b, i) | u16(b, i + 2) << 16 }
        func u64(_ b: [UInt8], _ i: Int) -> UInt64 { u32(b, i) | u32(b, i + 4) << 32 }
        func inside(_ offset: UInt64, _ what: String) throws(AffectError) {
            guard offset < size else { throw .badInput("\(path): the zip archive's \(what) (\(offset)) is past the end of the file (\(size) bytes).") }
        }

        // The end-of-central-directory record: the last 22 bytes, or earlier behind a comment of up to 64 KiB.
        let tailLength = Int(min(size, 22 + 65_535))
        let tail = try read(size - UInt64(tailLength), tailLength)
        guard let eocd = stride(from: tail.count - 22, through: 0, by: -1).first(where: {
            tail[$0] == 0x50 && tail[$0 + 1] == 0x4B && tail[$0 + 2] == 0x05 && tail[$0 + 3] == 0x06
        }) else { throw .badInput("\(path): no end-of-central-directory record (not a zip archive, or truncated).") }
        let eocdOffset = size - UInt64(tailLength) + UInt64(eocd)
        var entries = u16(tail, eocd + 10), cdSize = u32(tail, eocd + 12), cdOffset = u32(tail, eocd + 16)

        // Zip64: a locator just before the record points at the zip64 record, which holds the 64-bit numbers.
        if eocdOffset >= 20 {
            let locator = try read(eocdOffset - 20, 20)
            if u32(locator, 0) == 0x0706_4B50 {
                let recordOffset = u64(locator, 8)
                try inside(recordOffset, "zip64 record offset")
                let record = try read(recordOffset, 56)
                guard u32(record, 0) == 0x0606_4B50 else { throw .badInput("\(path): the zip64 end-of-central-directory record is damaged.") }
                entries = u64(record, 32); cdSize = u64(record, 40); cdOffset = u64(record, 48)
            }
        }
        guard cdOffset <= size, cdSize <= size - cdOffset else {
            throw .badInput("\(path): the zip archive's central directory (offset \(cdOffset), \(cdSize) bytes) does not fit in the file (\(size) bytes).")
        }

        // Every central directory entry ZIPFoundation will visit: fixed 46 bytes, then name, extra field, comment.
        var at = cdOffset
        var visited: UInt64 = 0
        while visited < entries {
            guard at + 46 <= size else { break }   // ZIPFoundation stops here too (a short read ends its iteration)
            let fixed = try read(at, 46)
            guard u32(fixed, 0) == 0x0201_4B50 else { break }
            let (nameLength, extraLength, commentLength) = (Int(u16(fixed, 28)), Int(u16(fixed, 30)), Int(u16(fixed, 32)))
            var compressed = u32(fixed, 20), uncompressed = u32(fixed, 24), local = u32(fixed, 42)
            guard at + 46 + UInt64(nameLength + extraLength + commentLength) <= size else { break }
            let extra = try read(at + 46 + UInt64(nameLength), extraLength)
            var i = 0
            while i + 4 <= extra.count {
                let (id, length) = (u16(extra, i), Int(u16(extra, i + 2)))
                if id == 0x0001 {
                    // Only the fields whose 32-bit value is 0xFFFFFFFF are present, in this order.
                    var j = i + 4
                    for field in [0, 1, 2] where j + 8 <= min(extra.count, i + 4 + length) {
                        switch field {
                        case 0 where uncompressed == 0xFFFF_FFFF: uncompressed = u64(extra, j); j += 8
                        case 1 where compressed == 0xFFFF_FFFF: compressed = u64(extra, j); j += 8
                        case 2 where local == 0xFFFF_FFFF: local = u64(extra, j); j += 8
                        default: break
                        }
                    }
                }
                i += 4 + length
            }
            try inside(local, "local header offset")
            guard compressed <= size else { throw .badInput("\(path): a zip entry declares \(compressed) compressed bytes, more than the file holds.") }
            _ = uncompressed   // bounded against the compressed size when the entry is read (TorchCheckpoint.read)
            at += 46 + UInt64(nameLength + extraLength + commentLength)
            visited += 1
        }
    }
}
