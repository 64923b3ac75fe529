import Foundation
import AffectKernels
import CHDF5

/// An attribute of an HDF5 object, as Keras writes them: strings (scalar or 1-D, fixed or variable length) or numbers.
public enum HDF5Attribute: Sendable, Equatable {
    case strings([String], scalar: Bool)
    case numbers([Double], scalar: Bool)
    /// A type this reader does not decode (compound, reference, ...), described.
    case unsupported(String)

    /// The value of a scalar string attribute or the only element of a one-element string array.
    public var string: String? {
        if case .strings(let s, _) = self, s.count == 1 { return s[0] }
        return nil
    }
    /// The elements of a string attribute (a scalar string is one element).
    public var strings: [String]? {
        if case .strings(let s, _) = self { return s }
        return nil
    }
}

/// One dataset: its shape and, when it holds 32- or 64-bit floats, its values (other types are described only).
public struct HDF5Dataset: Sendable {
    public var shape: [Int]
    /// float32 or float64 values (little-endian, row-major), or nil when the dataset is not floating point or
    /// its data was not read.
    public var tensor: SourceTensor?
    /// The element type, for messages (`float32`, `int64`, `string`, ...).
    public var typeName: String
    public var attributes: [String: HDF5Attribute]
}

/// A group: its attributes and its members in name order (as h5py lists them).
public struct HDF5Group: Sendable {
    public indirect enum Member: Sendable {
        case group(HDF5Group)
        case dataset(HDF5Dataset)
    }
    public var attributes: [String: HDF5Attribute] = [:]
    public var members: [(name: String, member: Member)] = []

    public func group(_ name: String) -> HDF5Group? {
        for m in members where m.name == name { if case .group(let g) = m.member { return g } }
        return nil
    }
    public func dataset(_ name: String) -> HDF5Dataset? {
        for m in members where m.name == name { if case .dataset(let d) = m.member { return d } }
        return nil
    }
}

/// Reads a whole HDF5 file into Swift values through libhdf5 (Debian's `libhdf5-dev`).
///
/// The file is untrusted: every rank, dimension, element type and size is checked before anything is allocated,
/// links other than hard links (soft and external links), datasets whose data lives in other files (external
/// storage, virtual datasets) and non-float data are never followed or read, the walk is bounded in depth and
/// object count, and libhdf5's own error printing is turned off. libhdf5 itself crashes and loops on some damaged
/// files, so it runs in a child process (``HDF5Isolation``). Any failure is one sentence naming the file.
public enum HDF5Reader {
    /// At most this many objects (groups, datasets, attributes) in a file.
    public static let maxObjects = 200_000
    /// Deepest group nesting read.
    public static let maxDepth = 64
    /// Largest dataset, and largest total of all datasets read, in bytes.
    public static let maxDatasetBytes = 1 << 31
    public static let maxTotalBytes = 1 << 32
    /// Largest attribute (Keras keeps its `model_config` JSON in one), in bytes.
    public static let maxAttributeBytes = 64 << 20
    /// Largest rank of a dataset or attribute.
    public static let maxRank = 16

    /// One read at a time (a child process each; libhdf5's error-printing switch is process-wide).
    private static let lock = NSLock()

    /// The root group of `path`. `readData(path)` says whether a dataset's values are read (e.g. a Keras file's
    /// optimizer state is skipped); its shape and type are recorded either way. libhdf5 runs in a child process
    /// (``HDF5Isolation``): its crash or hang on a damaged file is an error here, limited to `timeLimit` seconds
    /// (by default 10 s plus 1 s per 20 MB of file).
    public static func read(_ path: String, timeLimit: Double? = nil,
                            readData: @escaping (String) -> Bool = { _ in true }) throws(AffectError) -> HDF5Group {
        lock.lock()
        defer { lock.unlock() }
        guard FileManager.default.isReadableFile(atPath: path),
              let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int else {
            throw .badInput("\(path): cannot read the file.")
        }
        return try HDF5Isolation.run(path, fileSize: size, timeLimit: timeLimit) { () throws(AffectError) -> HDF5Group in
            chdf5_silence()
            guard H5Fis_hdf5(path) > 0 else { throw .badInput("\(path): not an HDF5 file (no HDF5 signature).") }
            let file = H5Fopen(path, chdf5_acc_rdonly(), chdf5_default())
            guard file >= 0 else { throw .badInput("\(path): cannot open the HDF5 file (damaged or truncated).") }
            defer { H5Fclose(file) }
            let root = H5Gopen2(file, "/", chdf5_default())
            guard root >= 0 else { throw .badInput("\(path): cannot open the HDF5 file's root group (damaged or truncated).") }
            defer { H5Gclose(root) }
            var walk = Walk(file: path, fileSize: size, readData: readData)
            return try walk.group(root, path: "", depth: 0)
        }
    }

    private struct Walk {
        let file: String
        /// Bytes of the file: raw data cannot be larger (libhdf5 reads past the end of a file as zeros, so a
        /// dataset's declared storage alone does not bound it), compressed data at most ~1100 times larger.
        let fileSize: Int
        let readData: (String) -> Bool
        var objects = 0
        var totalBytes = 0

        func fail(_ what: String, _ problem: String) -> AffectError {
            .badInput("\(file): \(what.isEmpty ? "the root group" : "`\(what)`") \(problem).")
        }

        mutating func count(_ what: String) throws(AffectError) {
            objects += 1
            guard objects <= HDF5Reader.maxObjects else { throw fail(what, "is past the limit of \(HDF5Reader.maxObjects) HDF5 objects") }
        }

        mutating func group(_ id: hid_t, path: String, depth: Int) throws(AffectError) -> HDF5Group {
            guard depth <= HDF5Reader.maxDepth else { throw fail(path, "is nested more than \(HDF5Reader.maxDepth) groups deep") }
            try count(path)
            var g = HDF5Group()
            g.attributes = try attributes(id, path: path)
            var info = H5G_info_t()
            guard H5Gget_info(id, &info) >= 0 else { throw fail(path, "cannot be listed (damaged group)") }
            guard info.nlinks <= UInt64(HDF5Reader.maxObjects) else { throw fail(path, "has \(info.nlinks) members, past the limit") }
            for i in 0..<info.nlinks {
                let name = try linkName(id, index: i, path: path)
                let childPath = path.isEmpty ? name : path + "/" + name
                var linfo = H5L_info_t()
                guard H5Lget_info_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, i, &linfo, chdf5_default()) >= 0 else {
                    throw fail(childPath, "cannot be read (damaged link)")
                }
                // Soft and external links could point anywhere (other files included): never followed.
                guard linfo.type == H5L_TYPE_HARD else { continue }
                let child = H5Oopen_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, i, chdf5_default())
                guard child >= 0 else { throw fail(childPath, "cannot be opened (damaged object)") }
                defer { H5Oclose(child) }
                switch H5Iget_type(child) {
                case H5I_GROUP: g.members.append((name, .group(try group(child, path: childPath, depth: depth + 1))))
                case H5I_DATASET: g.members.append((name, .dataset(try dataset(child, path: childPath))))
                default: continue  // committed datatypes
                }
            }
            return g
        }

        func linkName(_ id: hid_t, index: hsize_t, path: String) throws(AffectError) -> String {
            let n = H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, chdf5_default())
            guard n >= 0, n < 65_536 else { throw fail(path, "has a member whose name cannot be read") }
            var buf = [CChar](repeating: 0, count: Int(n) + 1)
            guard H5Lget_name_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buf, buf.count, chdf5_default()) == n else {
                throw fail(path, "has a member whose name cannot be read")
            }
            return try utf8(buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, path, "a member name")
        }

        func utf8(_ bytes: [UInt8], _ path: String, _ what: String) throws(AffectError) -> String {
            guard let s = String(validating: bytes, as: UTF8.self) else { throw fail(path, "has \(what) that is not UTF-8") }
            return s
        }

        /// The dimensions of a dataspace, checked: simple or scalar, rank ≤ maxRank, element count without overflow.
        func extent(_ space: hid_t, _ path: String) throws(AffectError) -> (shape: [Int], count: Int, scalar: Bool) {
            let kind = H5Sget_simple_extent_type(space)
            if kind == H5S_SCALAR { return ([], 1, true) }
            if kind == H5S_NULL { return ([0], 0, false) }
            guard kind == H5S_SIMPLE else { throw fail(path, "has an unreadable dataspace") }
            let rank = H5Sget_simple_extent_ndims(space)
            guard rank >= 0, rank <= Int32(HDF5Reader.maxRank) else { throw fail(path, "has rank \(rank) (at most \(HDF5Reader.maxRank))") }
            var dims = [hsize_t](repeating: 0, count: max(Int(rank), 1))
            guard H5Sget_simple_extent_dims(space, &dims, nil) == rank else { throw fail(path, "has unreadable dimensions") }
            var count = 1
            var shape: [Int] = []
            for d in dims.prefix(Int(rank)) {
                guard d <= UInt64(Int32.max) else { throw fail(path, "has a dimension of \(d)") }
                let (c, o) = count.multipliedReportingOverflow(by: Int(d))
                guard !o, c <= HDF5Reader.maxDatasetBytes else { throw fail(path, "has too many elements (\(dims.prefix(Int(rank))))") }
                count = c
                shape.append(Int(d))
            }
            return (shape, count, false)
        }

        func typeName(_ type: hid_t) -> String {
            let size = H5Tget_size(type)
            switch H5Tget_class(type) {
            case H5T_FLOAT: return "float\(size * 8)"
            case H5T_INTEGER: return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + "\(size * 8)"
            case H5T_STRING: return "string"
            case H5T_COMPOUND: return "compound"
            case H5T_ENUM: return "enum"
            default: return "an unsupported type"
            }
        }

        mutating func dataset(_ id: hid_t, path: String) throws(AffectError) -> HDF5Dataset {
            try count(path)
            let attrs = try attributes(id, path: path)
            let space = H5Dget_space(id)
            guard space >= 0 else { throw fail(path, "has no readable dataspace") }
            defer { H5Sclose(space) }
            let (shape, count, _) = try extent(space, path)
            let type = H5Dget_type(id)
            guard type >= 0 else { throw fail(path, "has no readable type") }
            defer { H5Tclose(type) }
            let name = typeName(type)
            var ds = HDF5Dataset(shape: shape, tensor: nil, typeName: name, attributes: attrs)
            let size = H5Tget_size(type)
            guard H5Tget_class(type) == H5T_FLOAT, size == 4 || size == 8, readData(path) else { return ds }

            let bytes = count * size
            guard bytes <= HDF5Reader.maxDatasetBytes, totalBytes + bytes <= HDF5Reader.maxTotalBytes else {
                throw fail(path, "holds \(bytes) bytes, past the reader's limit")
            }
            // Data stored in other files (external storage, virtual datasets) is refused: a weight file must not
            // read the machine's files. The stored size bounds what a small file can make us allocate.
            let dcpl = H5Dget_create_plist(id)
            guard dcpl >= 0 else { throw fail(path, "has no readable creation properties") }
            defer { H5Pclose(dcpl) }
            let layout = H5Pget_layout(dcpl)
            guard layout == H5D_CONTIGUOUS || layout == H5D_CHUNKED || layout == H5D_COMPACT else {
                throw fail(path, "uses a storage layout this reader refuses (virtual dataset)")
            }
            guard H5Pget_external_count(dcpl) == 0 else { throw fail(path, "keeps its data in an external file") }
            let filters = H5Pget_nfilters(dcpl)
            guard filters >= 0 else { throw fail(path, "has unreadable filters") }
            if bytes > 0 {
                let stored = min(Int(clamping: H5Dget_storage_size(id)), fileSize)
                guard stored > 0 else { throw fail(path, "has no data stored") }
                // deflate's best ratio is about 1032:1; unfiltered data must be stored whole.
                let ratio = filters > 0 ? 1100 : 1
                guard stored.multipliedReportingOverflow(by: ratio).partialValue >= bytes,
                      totalBytes + bytes <= fileSize.multipliedReportingOverflow(by: 1100).partialValue else {
                    throw fail(path, "declares \(bytes) bytes of data but the file stores \(stored)")
                }
            }
            var data = Data(count: bytes)
            let memType = size == 4 ? chdf5_native_float() : chdf5_native_double()
            let status: herr_t = bytes == 0 ? 0 : data.withUnsafeMutableBytes { H5Dread(id, memType, chdf5_all(), chdf5_all(), chdf5_default(), $0.baseAddress) }
            guard status >= 0 else { throw fail(path, "cannot be read (damaged, truncated or compressed with an unavailable filter)") }
            totalBytes += bytes
            ds.tensor = SourceTensor(dtype: size == 4 ? .f32 : .f64, shape: shape, data: data)
            return ds
        }

        mutating func attributes(_ id: hid_t, path: String) throws(AffectError) -> [String: HDF5Attribute] {
            var info = H5O_info_t()
            guard H5Oget_info2(id, &info, UInt32(H5O_INFO_NUM_ATTRS)) >= 0 else { throw fail(path, "has unreadable attributes") }
            guard info.num_attrs <= UInt64(HDF5Reader.maxObjects) else { throw fail(path, "has \(info.num_attrs) attributes") }
            var out: [String: HDF5Attribute] = [:]
            for i in 0..<info.num_attrs {
                try count(path)
                let attr = H5Aopen_by_idx(id, ".", H5_INDEX_NAME, H5_ITER_INC, i, chdf5_default(), chdf5_default())
                guard attr >= 0 else { throw fail(path, "has an attribute that cannot be opened") }
                defer { H5Aclose(attr) }
                let n = H5Aget_name(attr, 0, nil)
                guard n >= 0, n < 65_536 else { throw fail(path, "has an attribute whose name cannot be read") }
                var buf = [CChar](repeating: 0, count: Int(n) + 1)
                guard H5Aget_name(attr, buf.count, &buf) == n else { throw fail(path, "has an attribute whose name cannot be read") }
                let name = try utf8(buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, path, "an attribute name")
                out[name] = try attribute(attr, path: path.isEmpty ? "@" + name : path + "@" + name)
            }
            return out
        }

        func attribute(_ attr: hid_t, path: String) throws(AffectError) -> HDF5Attribute {
            let space = H5Aget_space(attr)
            guard space >= 0 else { throw fail(path, "has no readable dataspace") }
            defer { H5Sclose(space) }
            let (_, count, scalar) = try extent(space, path)
            let type = H5Aget_type(attr)
            guard type >= 0 else { throw fail(path, "has no readable type") }
            defer { H5Tclose(type) }
            let size = H5Tget_size(type)
            switch H5Tget_class(type) {
            case H5T_STRING:
                if H5Tis_variable_str(type) > 0 {
                    guard count <= HDF5Reader.maxAttributeBytes / 8 else { throw fail(path, "has too many strings") }
                    let mem = H5Tcopy(chdf5_c_s1())
                    guard mem >= 0 else { throw fail(path, "cannot be read") }
                    defer { H5Tclose(mem) }
                    H5Tset_size(mem, chdf5_variable())
                    H5Tset_cset(mem, H5Tget_cset(type))
                    var ptrs = [UnsafeMutablePointer<CChar>?](repeating: nil, count: max(count, 1))
                    guard H5Aread(attr, mem, &ptrs) >= 0 else { throw fail(path, "cannot be read (damaged)") }
                    defer { H5Dvlen_reclaim(mem, space, chdf5_default(), &ptrs) }
                    var strings: [String] = []
                    var total = 0
                    for p in ptrs.prefix(count) {
                        guard let p else { strings.append(""); continue }
                        let len = strnlen(p, HDF5Reader.maxAttributeBytes + 1)
                        total += len
                        guard total <= HDF5Reader.maxAttributeBytes else { throw fail(path, "is longer than \(HDF5Reader.maxAttributeBytes) bytes") }
                        strings.append(try utf8(Array(UnsafeBufferPointer(start: UnsafeRawPointer(p).assumingMemoryBound(to: UInt8.self), count: len)), path, "a value"))
                    }
                    return .strings(strings, scalar: scalar)
                }
                let (bytes, o) = count.multipliedReportingOverflow(by: size)
                guard !o, size > 0, bytes <= HDF5Reader.maxAttributeBytes else { throw fail(path, "is longer than \(HDF5Reader.maxAttributeBytes) bytes") }
                var buf = [UInt8](repeating: 0, count: max(bytes, 1))
                guard H5Aread(attr, type, &buf) >= 0 else { throw fail(path, "cannot be read (damaged)") }
                var strings: [String] = []
                for k in 0..<count {
                    // Fixed-length strings are NUL-padded (h5py and Keras write them so); the value ends at the first NUL.
                    let element = buf[(k * size)..<((k + 1) * size)]
                    let end = element.firstIndex(of: 0) ?? element.endIndex
                    strings.append(try utf8(Array(element[..<end]), path, "a value"))
                }
                return .strings(strings, scalar: scalar)
            case H5T_FLOAT, H5T_INTEGER:
                guard count <= HDF5Reader.maxAttributeBytes / 8 else { throw fail(path, "has too many values") }
                var values = [Double](repeating: 0, count: max(count, 1))
                guard H5Aread(attr, chdf5_native_double(), &values) >= 0 else { throw fail(path, "cannot be read (damaged)") }
                return .numbers(Array(values.prefix(count)), scalar: scalar)
            default:
                return .unsupported(typeName(type))
            }
        }
    }
}
