import Foundation
import AffectKernels
import ZIPFoundation

/// PyTorch checkpoints (`torch.save` zip archives and legacy pre-1.6 files) read without executing anything:
/// their tensors as a state dict, whether the file holds a state dict, a dict wrapping one, or a whole pickled
/// module (Tools/affect_tools/unpickle.py).
public enum TorchCheckpoint {
    /// Deflate cannot expand more than about 1032:1; a larger declared ratio is a forged entry.
    static let maxCompressionRatio: UInt64 = 1100
    /// Entries a checkpoint archive may hold (one per storage: thousands for the largest models).
    static let maxZipEntries = 200_000
    static let maxDepth = 200

    /// The checkpoint's tensors by name, in the pickle's order.
    public static func stateDict(_ path: String) throws(AffectError) -> StateDict {
        let root = try load(path)
        var visited = 0
        return try toStateDict(root, path, depth: 0, visited: &visited)
    }

    static func load(_ path: String) throws(AffectError) -> PyValue {
        guard let h = FileHandle(forReadingAtPath: path) else { throw .badInput("\(path): cannot open the file.") }
        let head = (try? h.read(upToCount: 4)) ?? nil
        try? h.close()
        if let head, head.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return try loadZip(path) }
        return try loadLegacy(path, [UInt8](try readFile(path, limit: Int.max)))
    }

    static func loadZip(_ path: String) throws(AffectError) -> PyValue {
        try ZipLayout.check(path)
        let archive: Archive
        do { archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .read) } catch {
            throw .badInput("\(path): not a readable zip archive (\(error)).")
        }
        // One pass over the central directory: looking entries up by name walks it (and re-reads each local
        // header) every time, which made a checkpoint with many storages take minutes.
        var entries: [String: Entry] = [:]
        var pklEntry: Entry?
        for entry in archive {
            guard entries.count < maxZipEntries else {
                throw .badInput("\(path): the zip archive holds more than \(maxZipEntries) entries.")
            }
            if entries[entry.path] == nil { entries[entry.path] = entry }
            if pklEntry == nil && entry.path.hasSuffix("/data.pkl") { pklEntry = entry }
        }
        guard let pkl = pklEntry else {
            throw .badInput("\(path): no data.pkl in the checkpoint.")
        }
        let prefix = String(pkl.path.dropLast("/data.pkl".count))
        func read(_ entry: Entry) throws(AffectError) -> Data {
            let declared = UInt64(entry.uncompressedSize)
            // The zip's sizes are untrusted 64-bit numbers: the bound saturates instead of overflowing.
            let bound = max(UInt64(entry.compressedSize), 1).multipliedReportingOverflow(by: maxCompressionRatio)
            guard entry.type == .file, bound.overflow || declared <= bound.partialValue else {
                throw .badInput("\(path): the zip entry \(entry.path) declares an impossible size.")
            }
            var out = Data()
            do {
                _ = try archive.extract(entry, skipCRC32: false) { chunk in
                    guard UInt64(out.count + chunk.count) <= declared else { throw CocoaError(.fileReadCorruptFile) }
                    out.append(chunk)
                }
            } catch {
                throw .badInput("\(path): the zip entry \(entry.path) is corrupt (\(error)).")
            }
            return out
        }
        var storages: [String: PyStorage] = [:]
        var u = Unpickler([UInt8](try read(pkl)), origin: path)
        u.persistent = { (pid: PyValue) throws(AffectError) -> PyValue in
            let (dtype, key) = try storageID(pid, path)
            if let s = storages[key] { return .storage(s) }
            guard let entry = entries["\(prefix)/data/\(key)"] else {
                throw .badInput("\(path): the storage \(prefix)/data/\(key) is missing.")
            }
            let s = PyStorage(dtype: dtype, data: try read(entry))
            storages[key] = s
            return .storage(s)
        }
        return try u.load()
    }

    /// ('storage', storage_type, key, location, numel, ...) → element type and key.
    static func storageID(_ pid: PyValue, _ path: String) throws(AffectError) -> (DType, String) {
        guard let t = pid.sequence, t.count >= 3, t[0].string == "storage" else {
            throw .badInput("\(path): unsupported persistent id in the pickle.")
        }
        let name: String
        switch t[1] {
        case .global(_, let n): name = n
        case .string(let s): name = s
        default: throw .badInput("\(path): unsupported storage type in the pickle.")
        }
        guard let dtype = Unpickler.storageTypes[name] else { throw .badInput("\(path): unsupported storage type \(name).") }
        let key: String
        switch t[2] {
        case .string(let s): key = s
        case .int(let i): key = String(i)
        default: throw .badInput("\(path): unsupported storage key in the pickle.")
        }
        // A key names a file of the archive's data folder.
        guard !key.isEmpty, !key.contains("/"), key != "..", key != "." else { throw .badInput("\(path): invalid storage key `\(key)`.") }
        return (dtype, key)
    }

    /// `torch.save` before PyTorch 1.6: magic number, protocol, sys info, the object, the storage keys, then
    /// each storage's element count and raw little-endian bytes.
    static func loadLegacy(_ path: String, _ bytes: [UInt8]) throws(AffectError) -> PyValue {
        func header(_ at: Int) throws(AffectError) -> (PyValue, Int) {
            var u = Unpickler(bytes, origin: path, at: at)
            u.allowGlobals = false
            return (try u.load(), u.pos)
        }
        let magic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]
        guard bytes.count > 2, bytes[0] == 0x80, case (.bigInt(let m), var pos)? = try? header(0), m == magic else {
            throw .badInput("\(path): not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save file).")
        }
        pos = try header(pos).1  // protocol version
        pos = try header(pos).1  // sys info
        var storages: [String: PyStorage] = [:]
        var u = Unpickler(bytes, origin: path, at: pos)
        u.persistent = { (pid: PyValue) throws(AffectError) -> PyValue in
            // A whole pickled module names each module class by ('module', class, source file, source): the
            // class is a global like any other (never imported or run), its source text is ignored.
            if let t = pid.sequence, t.count >= 2, t[0].string == "module", case .global = t[1] { return t[1] }
            let (dtype, key) = try storageID(pid, path)
            if let s = storages[key] { return .storage(s) }
            let s = PyStorage(dtype: dtype, data: nil)
            storages[key] = s
            return .storage(s)
        }
        let root = try u.load()
        let (keysValue, dataStart) = try header(u.pos)
        guard let keys = keysValue.sequence else { throw .badInput("\(path): the storage key list is malformed.") }
        pos = dataStart
        for k in keys {
            let key: String
            switch k {
            case .string(let s): key = s
            case .int(let i): key = String(i)
            default: throw .badInput("\(path): the storage key list is malformed.")
            }
            guard let s = storages[key] else { throw .badInput("\(path): storage \(key) is listed but never used.") }
            guard bytes.count - pos >= 8 else { throw .badInput("\(path): truncated storage data.") }
            var numel: UInt64 = 0
            for i in 0..<8 { numel |= UInt64(bytes[pos + i]) << (8 * UInt64(i)) }
            pos += 8
            let (size, o) = numel.multipliedReportingOverflow(by: UInt64(s.dtype.byteSize))
            guard !o, size <= UInt64(bytes.count - pos) else { throw .badInput("\(path): truncated storage data.") }
            s.data = Data(bytes[pos..<pos + Int(size)])
            pos += Int(size)
        }
        return root
    }

    static func toStateDict(_ root: PyValue, _ path: String, depth: Int, visited: inout Int) throws(AffectError) -> StateDict {
        guard depth < maxDepth else { throw .badInput("\(path): the checkpoint nests too deeply.") }
        if case .dict(let d) = root {
            for key in ["state_dict", "model_state_dict", "model"] {
                if let v = d.get(key) {
                    if case .tensor = v { continue }
                    return try toStateDict(v, path, depth: depth + 1, visited: &visited)
                }
            }
            var out = StateDict()
            for (k, v) in d.items {
                if let name = k.string, case .tensor(let t) = v { out[name] = try t.materialise(origin: path) }
            }
            if !out.isEmpty { return out }
        }
        if case .object(let o) = root {
            var out = StateDict()
            try walk(o, "", &out, path, depth: depth, visited: &visited)
            return out
        }
        throw .badInput("\(path): the checkpoint holds neither a state dict nor a pickled module.")
    }

    static func walk(_ module: PyObject, _ prefix: String, _ out: inout StateDict, _ path: String, depth: Int, visited: inout Int) throws(AffectError) {
        // A pickle can make a module its own child; real models are a few dozen levels deep at most.
        visited += 1
        guard depth < maxDepth, visited < 1_000_000 else { throw .badInput("\(path): the pickled module nests too deeply.") }
        for group in ["_parameters", "_buffers"] {
            guard case .dict(let d)? = module.state.get(group) else { continue }
            for (k, v) in d.items {
                if let name = k.string, case .tensor(let t) = v { out[prefix + name] = try t.materialise(origin: path) }
            }
        }
        if case .dict(let d)? = module.state.get("_modules") {
            for (k, v) in d.items {
                if let name = k.string, case .object(let child) = v {
                    try walk(child, prefix + name + ".", &out, path, depth: depth + 1, visited: &visited)
                }
            }
        }
    }
}
