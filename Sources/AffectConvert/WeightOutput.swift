import Foundation
import AffectKernels
#if canImport(Glibc)
import Glibc
#endif

/// One tensor read from a source checkpoint: element type, shape and little-endian row-major bytes.
public struct SourceTensor: Sendable {
    public var dtype: DType
    public var shape: [Int]
    /// Exactly `count × dtype.byteSize` bytes (may borrow a memory-mapped source file).
    public var data: Data

    public var count: Int { shape.reduce(1, *) }

    public init(dtype: DType, shape: [Int], data: Data) {
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    /// As Affect weight files store it (Tools/affect_tools/io.py): F64, F16 and BF16 become F32, and a scalar
    /// becomes shape [1] (numpy's `ascontiguousarray` there returns at least one dimension).
    func normalised() -> SourceTensor {
        let n = count
        if shape.isEmpty { return SourceTensor(dtype: dtype, shape: [1], data: data).normalised() }
        switch dtype {
        case .f64, .f16, .bf16:
            var out = [Float](repeating: 0, count: n)
            data.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
                for i in 0..<n {
                    switch dtype {
                    case .f64: out[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
                    case .f16: out[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                    default: out[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
                    }
                }
            }
            return SourceTensor(dtype: .f32, shape: shape, data: out.withUnsafeBufferPointer { Data(buffer: $0) })
        default: return self
        }
    }

    /// The transpose of a 2-D tensor (ONNX MatMul/Gemm weights are stored input-major).
    func transposed2D() -> SourceTensor {
        guard shape.count == 2 else { return self }
        let (r, c, e) = (shape[0], shape[1], dtype.byteSize)
        // An empty [r, 0] matrix of a hostile file could still claim 2^40 rows: nothing to move, no loop over them.
        if r == 0 || c == 0 { return SourceTensor(dtype: dtype, shape: [c, r], data: data) }
        var out = Data(count: data.count)
        out.withUnsafeMutableBytes { (dst: UnsafeMutableRawBufferPointer) in
            data.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
                for i in 0..<r { for j in 0..<c {
                    dst.baseAddress!.advanced(by: (j * r + i) * e).copyMemory(from: src.baseAddress!.advanced(by: (i * c + j) * e), byteCount: e)
                } }
            }
        }
        return SourceTensor(dtype: dtype, shape: [c, r], data: out)
    }
}

/// Tensors in the order a converter found them; a later tensor of the same name replaces the earlier one.
public struct StateDict: Sendable {
    public private(set) var names: [String] = []
    private var table: [String: SourceTensor] = [:]

    public init() {}

    public subscript(name: String) -> SourceTensor? {
        get { table[name] }
        set {
            if newValue != nil, table[name] == nil { names.append(name) }
            if newValue == nil, table[name] != nil { names.removeAll { $0 == name } }
            table[name] = newValue
        }
    }
    public var isEmpty: Bool { names.isEmpty }
    public var count: Int { names.count }
    public func contains(_ name: String) -> Bool { table[name] != nil }
    public mutating func merge(_ other: StateDict) { for n in other.names { self[n] = other[n] } }
    public func filter(_ keep: (String) -> Bool) -> StateDict {
        var out = StateDict()
        for n in names where keep(n) { out[n] = table[n] }
        return out
    }
}

/// What Tools/affect_tools/io.py `save_weights` writes: tensors plus the `affect.*` metadata.
public struct ConvertedModel: Sendable {
    public var arch: String
    public var tensors: StateDict
    public var config: JSON
    public var labels: [String]?
    public var preprocess: JSON?
    public var source: String
    public var tokenizer: String?

    /// The metadata keys and values, as `save_weights` builds them.
    public var metadata: [String: String] {
        var m = ["affect.format": "1", "affect.arch": arch, "affect.config": config.serialized(), "affect.source": source]
        if let labels { m["affect.labels"] = JSON.strings(labels).serialized() }
        if let preprocess { m["affect.preprocess"] = preprocess.serialized() }
        if let tokenizer { m["affect.tokenizer"] = tokenizer }
        return m
    }

    /// Writes the safetensors file atomically: a temporary file in the target folder, then a rename. Tensors
    /// are laid out as the Python `safetensors` writer does (larger element types first, then by name).
    public func write(to path: String) throws(AffectError) {
        var entries: [(String, SourceTensor)] = tensors.names.compactMap { n in tensors[n].map { (n, $0.normalised()) } }
        entries.sort { ($0.1.dtype.byteSize, $1.0) > ($1.1.dtype.byteSize, $0.0) }
        var header: [(String, JSON)] = [("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))]
        var offset = 0
        for (name, t) in entries {
            header.append((name, .object([("dtype", .string(t.dtype.rawValue)), ("shape", .array(t.shape.map(JSON.int))),
                                          ("data_offsets", .array([.int(offset), .int(offset + t.data.count)]))])))
            offset += t.data.count
        }
        var json = Data(JSON.object(header).serialized(asciiOnly: false).utf8)
        while json.count % 8 != 0 { json.append(0x20) }

        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.isEmpty ? "." : dir, isDirectory: &isDir), isDir.boolValue else {
            throw .badInput("\(path): the folder \(dir) does not exist.")
        }
        let tmp = AtomicFile.temporaryPath(for: path)   // unique per call, not per process: threads may write at once
        guard let f = fopen(tmp, "wb") else {
            throw .badInput("\(path): cannot write the file (\(String(cString: strerror(errno)))).")
        }
        var ok = true
        func put(_ d: Data) { if ok { ok = d.withUnsafeBytes { d.isEmpty || fwrite($0.baseAddress!, 1, d.count, f) == d.count } } }
        var len = UInt64(json.count).littleEndian
        put(Data(bytes: &len, count: 8))
        put(json)
        for (_, t) in entries { put(t.data) }
        ok = fclose(f) == 0 && ok
        guard ok, rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw .badInput("\(path): cannot write the file (\(reason)).")
        }
    }
}
