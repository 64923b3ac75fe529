import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Element types a safetensors file may declare.
public enum DType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }
    public var isFloat: Bool { [.f64, .f32, .f16, .bf16].contains(self) }
}

/// A read-only memory mapping of a whole file, unmapped when the last user lets go.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let size: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw AffectError.badInput("\(path): cannot open the file (\(String(cString: strerror(errno)))).")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            throw AffectError.badInput("\(path): not a regular file.")
        }
        size = Int(st.st_size)
        if size == 0 {
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 8))
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw AffectError.badInput("\(path): cannot memory-map the file.")
        }
        base = UnsafeRawPointer(p)
    }

    deinit {
        if size == 0 { UnsafeMutableRawPointer(mutating: base).deallocate() }
        else { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }
}

/// One tensor of a safetensors file: its declared type, shape and validated byte range.
public struct TensorInfo: Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Byte range inside the data section.
    public let range: Range<Int>
    public var count: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file (an 8-byte little-endian header length, a JSON header giving each tensor's
/// dtype, shape and byte range plus string metadata, then the raw little-endian data), fully validated on open.
///
/// Validation rejects: files shorter than the 8-byte length, header lengths past the end of the file or
/// over 100 MB, headers that are not a JSON object, unknown dtypes, negative or non-integer shapes, byte
/// ranges out of the data section or overlapping, and byte counts that disagree with dtype × shape.
public final class SafeTensorsFile: @unchecked Sendable {
    public let path: String
    public let file: MappedFile
    /// String metadata (`__metadata__`).
    public let metadata: [String: String]
    /// Tensors in file order (by offset).
    public let tensors: [TensorInfo]
    private let index: [String: Int]
    private let dataStart: Int

    public static let maxHeaderBytes = 100 << 20

    public convenience init(path: String) throws {
        try self.init(mapped: MappedFile(path: path))
    }

    public init(mapped file: MappedFile) throws {
        let path = file.path
        self.path = path
        self.file = file
        func bad(_ m: String) -> AffectError { .badInput("\(path): \(m)") }
        guard file.size >= 8 else {
            throw bad(file.size == 0 ? "the file is empty, not a safetensors file." :
                        "the file is \(file.size) bytes, too short for a safetensors header.")
        }
        let n = file.base.loadUnaligned(as: UInt64.self).littleEndian
        guard n <= UInt64(SafeTensorsFile.maxHeaderBytes) else {
            throw bad("the header length \(n) is absurd (over \(SafeTensorsFile.maxHeaderBytes) bytes); not a safetensors file?")
        }
        guard n >= 2, Int(n) <= file.size - 8 else {
            throw bad("the header length \(n) runs past the end of the \(file.size)-byte file.")
        }
        let headerLen = Int(n)
        dataStart = 8 + headerLen
        let headerData = Data(bytes: file.base + 8, count: headerLen)
        guard let json = try? JSONSerialization.jsonObject(with: headerData),
              let dict = json as? [String: Any] else {
            throw bad("the safetensors header is not a JSON object.")
        }
        var meta: [String: String] = [:]
        if let m = dict["__metadata__"] {
            guard let md = m as? [String: Any] else { throw bad("`__metadata__` is not a JSON object.") }
            for (k, v) in md {
                guard let s = v as? String else { throw bad("metadata `\(k)` is not a string.") }
                meta[k] = s
            }
        }
        metadata = meta
        let dataSize = file.size - dataStart
        var infos: [TensorInfo] = []
        for (name, value) in dict where name != "__metadata__" {
            guard let e = value as? [String: Any] else { throw bad("tensor `\(name)` is not a JSON object.") }
            guard let ds = e["dtype"] as? String else { throw bad("tensor `\(name)` has no dtype.") }
            guard let dtype = DType(rawValue: ds) else { throw bad("tensor `\(name)` has unknown dtype `\(ds)`.") }
            guard let shapeAny = e["shape"] as? [Any] else { throw bad("tensor `\(name)` has no shape.") }
            var shape: [Int] = []
            var elements = 1
            for d in shapeAny {
                guard let num = d as? NSNumber, num.doubleValue == Double(num.int64Value),
                      num.int64Value >= 0, num.int64Value < (1 << 40) else {
                    throw bad("tensor `\(name)` has an invalid shape \(shapeAny).")
                }
                let v = Int(num.int64Value)
                let (m, o) = elements.multipliedReportingOverflow(by: v)
                guard !o, m < (1 << 48) else { throw bad("tensor `\(name)` has an absurd shape \(shapeAny).") }
                elements = m
                shape.append(v)
            }
            guard let offs = e["data_offsets"] as? [Any], offs.count == 2,
                  let b = (offs[0] as? NSNumber)?.int64Value, let en = (offs[1] as? NSNumber)?.int64Value else {
                throw bad("tensor `\(name)` has invalid data_offsets.")
            }
            guard b >= 0, en >= b, en <= Int64(dataSize) else {
                throw bad("tensor `\(name)` has data offsets [\(b), \(en)] out of the \(dataSize)-byte data section.")
            }
            let bytes = Int(en - b)
            guard bytes == elements * dtype.byteSize else {
                throw bad("tensor `\(name)` declares \(ds) \(shape) (\(elements * dtype.byteSize) bytes) but its data holds \(bytes) bytes.")
            }
            infos.append(TensorInfo(name: name, dtype: dtype, shape: shape, range: Int(b)..<Int(en)))
        }
        infos.sort { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }
        for i in infos.indices.dropFirst() where infos[i].range.lowerBound < infos[i - 1].range.upperBound
            && !infos[i].range.isEmpty && !infos[i - 1].range.isEmpty {
            throw bad("tensors `\(infos[i - 1].name)` and `\(infos[i].name)` overlap in the data section.")
        }
        tensors = infos
        var idx: [String: Int] = [:]
        for (i, t) in infos.enumerated() { idx[t.name] = i }
        index = idx
    }

    public var names: [String] { tensors.map(\.name) }
    public func info(_ name: String) -> TensorInfo? { index[name].map { tensors[$0] } }
    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// Raw bytes of a tensor inside the mapping.
    public func rawPointer(_ t: TensorInfo) -> UnsafeRawPointer { file.base + dataStart + t.range.lowerBound }

    /// A tensor as Float32. F32 data that is 4-byte aligned is used in place (no copy); other types convert.
    public func tensor(_ name: String) throws -> Tensor {
        guard let t = info(name) else { throw AffectError.badInput("\(path): tensor `\(name)` is missing.") }
        return try tensor(t)
    }

    public func tensor(_ t: TensorInfo) throws -> Tensor {
        let src = rawPointer(t)
        let n = t.count
        if t.dtype == .f32, Int(bitPattern: src) % 4 == 0, n > 0 {
            let p = UnsafeMutablePointer(mutating: src.assumingMemoryBound(to: Float.self))
            return Tensor(storage: TensorStorage(borrowing: p, capacity: n, owner: file), shape: t.shape)
        }
        let out = Tensor(uninitialized: t.shape)
        let d = out.data
        switch t.dtype {
        case .f32: for i in 0..<n { d[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
        case .f64: for i in 0..<n { d[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        case .f16: for i in 0..<n { d[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16: for i in 0..<n { d[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        case .i64: for i in 0..<n { d[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
        case .i32: for i in 0..<n { d[i] = Float(src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .i16: for i in 0..<n { d[i] = Float(src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
        case .i8: for i in 0..<n { d[i] = Float(src.loadUnaligned(fromByteOffset: i, as: Int8.self)) }
        case .u8, .bool: for i in 0..<n { d[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
        }
        return out
    }

    /// A tensor of integers (token ids, masks). Float tensors are rejected.
    public func intTensor(_ name: String) throws -> IntTensor {
        guard let t = info(name) else { throw AffectError.badInput("\(path): tensor `\(name)` is missing.") }
        let src = rawPointer(t)
        let n = t.count
        var v = [Int64](repeating: 0, count: n)
        switch t.dtype {
        case .i64: for i in 0..<n { v[i] = src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self) }
        case .i32: for i in 0..<n { v[i] = Int64(src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
        case .i16: for i in 0..<n { v[i] = Int64(src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
        case .i8: for i in 0..<n { v[i] = Int64(src.loadUnaligned(fromByteOffset: i, as: Int8.self)) }
        case .u8, .bool: for i in 0..<n { v[i] = Int64(src.load(fromByteOffset: i, as: UInt8.self)) }
        default: throw AffectError.badInput("\(path): tensor `\(name)` is \(t.dtype.rawValue), expected an integer type.")
        }
        return IntTensor(shape: t.shape, values: v)
    }

    /// Parses a metadata value that holds JSON.
    public func jsonMetadata(_ key: String) throws -> Any? {
        guard let s = metadata[key] else { return nil }
        guard let v = try? JSONSerialization.jsonObject(with: Data(s.utf8), options: [.fragmentsAllowed]) else {
            throw AffectError.badInput("\(path): metadata `\(key)` is not valid JSON.")
        }
        return v
    }
}

/// Builds a safetensors file and writes it atomically (temporary file, then rename), so an interrupted
/// write never leaves a half-written file under the final name.
public struct SafeTensorsWriter {
    private var entries: [(name: String, dtype: DType, shape: [Int], bytes: Data)] = []
    public var metadata: [String: String] = [:]

    public init(metadata: [String: String] = [:]) { self.metadata = metadata }

    public mutating func add(_ name: String, _ t: Tensor) {
        let bytes = Data(bytes: t.data, count: t.count * 4)
        entries.append((name, .f32, t.shape, bytes))
    }

    public mutating func add(_ name: String, shape: [Int], floats: [Float]) {
        entries.append((name, .f32, shape, floats.withUnsafeBufferPointer { Data(buffer: $0) }))
    }

    public mutating func add(_ name: String, _ t: IntTensor) {
        entries.append((name, .i64, t.shape, t.values.withUnsafeBufferPointer { Data(buffer: $0) }))
    }

    public func serialized() throws -> Data {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for e in entries {
            header[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.bytes.count]] as [String: Any]
            offset += e.bytes.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data section starts 8-byte aligned and F32 tensors map in place.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        var len = UInt64(json.count).littleEndian
        out.append(Data(bytes: &len, count: 8))
        out.append(json)
        for e in entries { out.append(e.bytes) }
        return out
    }

    public func write(to path: String) throws {
        try writeAtomically(try serialized(), to: path)
    }
}

/// Writes `data` to a temporary file beside `path`, then renames it over `path` (``AtomicFile/write(_:to:)``).
public func writeAtomically(_ data: Data, to path: String) throws {
    try AtomicFile.write(data, to: path)
}

/// A safetensors file written front to back while its float32 tensors arrive in rows, so that an output as long
/// as its input (a recording's per-frame embeddings) never has to be held in memory.
///
/// Room for the header is reserved first: the metadata's JSON as given at `init` plus 4 KiB for the tensor
/// entries and for numbers the metadata gains by the end. ``finish()`` writes the header over that room, padded
/// with spaces (which the format allows). Write to a temporary path (``AtomicFile/write(to:_:)``): the file is
/// complete only after `finish`.
public final class SafeTensorsStreamWriter {
    public let path: String
    public var metadata: [String: String]
    private let handle: FileHandle
    private let reserved: Int
    private var entries: [(name: String, shape: [Int], bytes: Int)] = []
    private var current: (name: String, columns: Int, rows: Int)?
    private var written = 0

    /// Creates (or truncates) `path`.
    public init(path: String, metadata: [String: String]) throws {
        self.path = path
        self.metadata = metadata
        let json = try JSONSerialization.data(withJSONObject: ["__metadata__": metadata], options: [.sortedKeys])
        reserved = (json.count + 4096 + 7) / 8 * 8
        guard FileManager.default.createFile(atPath: path, contents: Data(count: 8 + reserved)),
              let h = FileHandle(forWritingAtPath: path) else {
            throw AffectError.badInput("\(path): cannot create the file.")
        }
        handle = h
        try h.seekToEnd()
    }

    deinit { try? handle.close() }

    /// Starts the next tensor: rows of `columns` floats (`columns` 0: a vector, one float a row).
    public func begin(_ name: String, columns: Int) {
        end()
        current = (name, columns, 0)
    }

    /// Appends `rows` rows to the current tensor.
    public func append(_ values: UnsafePointer<Float>, rows: Int) throws {
        guard var c = current else { preconditionFailure("append before begin") }
        let count = rows * max(1, c.columns)
        try handle.write(contentsOf: Data(bytes: values, count: count * 4))
        c.rows += rows
        current = c
    }

    private func end() {
        guard let c = current else { return }
        let bytes = c.rows * max(1, c.columns) * 4
        entries.append((c.name, c.columns == 0 ? [c.rows] : [c.rows, c.columns], bytes))
        written += bytes
        current = nil
    }

    /// Ends the last tensor and writes the header.
    public func finish() throws {
        end()
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        for e in entries {
            header[e.name] = ["dtype": DType.f32.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.bytes]] as [String: Any]
            offset += e.bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        guard json.count <= reserved else {
            throw AffectError.badInput("\(path): the header (\(json.count) bytes) outgrew the \(reserved) bytes reserved for it.")
        }
        json.append(Data(repeating: 0x20, count: reserved - json.count))
        var len = UInt64(reserved).littleEndian
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: Data(bytes: &len, count: 8) + json)
        try handle.synchronize()
        try handle.close()
    }
}
