import Foundation
import AffectKernels

/// A storage of a PyTorch checkpoint: element type and bytes (filled after the pickle in legacy files).
final class PyStorage {
    let dtype: DType
    var data: Data?
    init(dtype: DType, data: Data?) { self.dtype = dtype; self.data = data }
}

/// A tensor as `torch._utils._rebuild_tensor_v2` describes it; materialised once its storage has bytes.
final class PyTensor {
    let storage: PyStorage
    let offset: Int
    let size: [Int]
    let stride: [Int]
    init(storage: PyStorage, offset: Int, size: [Int], stride: [Int]) {
        self.storage = storage; self.offset = offset; self.size = size; self.stride = stride
    }

    /// The tensor's elements in row-major order (a strided view of the storage, bounds-checked).
    func materialise(origin: String) throws(AffectError) -> SourceTensor {
        guard let data = storage.data else { throw .badInput("\(origin): a tensor's storage has no data.") }
        let e = storage.dtype.byteSize
        let numel = data.count / e
        var count = 1, last = offset
        for (n, s) in zip(size, stride) {
            guard n >= 0, s >= 0 else { throw .badInput("\(origin): a tensor has a negative size or stride.") }
            let (c, o1) = count.multipliedReportingOverflow(by: n)
            let (reach, o2) = (n > 0 ? n - 1 : 0).multipliedReportingOverflow(by: s)
            let (l, o3) = last.addingReportingOverflow(reach)
            guard !o1, !o2, !o3, c < (1 << 40) else { throw .badInput("\(origin): a tensor has an absurd shape \(size).") }
            count = c
            last = l
        }
        guard count == 0 || (offset >= 0 && last < numel) else {
            throw .badInput("\(origin): a tensor of shape \(size) reaches past its \(numel)-element storage.")
        }
        var out = Data(count: count * e)
        if count > 0 {
            let rank = size.count
            out.withUnsafeMutableBytes { (dst: UnsafeMutableRawBufferPointer) in
                data.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
                    var index = [Int](repeating: 0, count: rank)
                    var from = offset
                    for k in 0..<count {
                        dst.baseAddress!.advanced(by: k * e).copyMemory(from: src.baseAddress!.advanced(by: from * e), byteCount: e)
                        var d = rank - 1
                        while d >= 0 {
                            index[d] += 1
                            from += stride[d]
                            if index[d] < size[d] { break }
                            from -= stride[d] * size[d]
                            index[d] = 0
                            d -= 1
                        }
                    }
                }
            }
        }
        return SourceTensor(dtype: storage.dtype, shape: size, data: out)
    }
}

final class PyList { var items: [PyValue]; init(_ items: [PyValue] = []) { self.items = items } }
final class PyDict {
    var items: [(PyValue, PyValue)] = []
    /// Position of each string key, so a pickle with many items stays linear.
    var index: [String: Int] = [:]
}
/// Any class a pickle names other than the few understood: it keeps its state and runs nothing.
final class PyObject { let qualname: String; let state = PyDict(); init(_ q: String) { qualname = q } }

/// A value of the restricted unpickler.
enum PyValue {
    case none
    case bool(Bool)
    case int(Int64)
    /// An integer beyond 64 bits, as its little-endian two's-complement bytes.
    case bigInt([UInt8])
    case float(Double)
    case string(String)
    case bytes(Data)
    case tuple([PyValue])
    case list(PyList)
    case dict(PyDict)
    case global(String, String)
    case object(PyObject)
    case tensor(PyTensor)
    case storage(PyStorage)

    var string: String? { if case .string(let s) = self { return s }; return nil }
    var int: Int? { if case .int(let v) = self { return Int(v) }; return nil }
    var sequence: [PyValue]? {
        switch self {
        case .tuple(let t): return t
        case .list(let l): return l.items
        default: return nil
        }
    }
}

/// A pickle reader that builds no objects: it knows storages, `torch._utils._rebuild_tensor_v2` /
/// `_rebuild_parameter`, `collections.OrderedDict` and plain containers; every other class becomes an inert
/// ``PyObject`` that only records its state (Tools/affect_tools/unpickle.py). Malformed input is an
/// ``AffectError/badInput(_:)`` naming the file.
struct Unpickler {
    static let storageTypes: [String: DType] = [
        "FloatStorage": .f32, "DoubleStorage": .f64, "HalfStorage": .f16, "LongStorage": .i64, "IntStorage": .i32,
        "ShortStorage": .i16, "CharStorage": .i8, "ByteStorage": .u8, "BoolStorage": .bool, "BFloat16Storage": .bf16,
    ]
    static let maxStack = 1 << 20

    let bytes: [UInt8]
    let origin: String
    var pos: Int
    /// Resolves a persistent id (a storage); nil forbids them (header pickles).
    var persistent: ((PyValue) throws(AffectError) -> PyValue)?
    /// Whether any global is allowed (legacy header pickles hold plain data only).
    var allowGlobals = true

    init(_ bytes: [UInt8], origin: String, at pos: Int = 0) {
        self.bytes = bytes
        self.origin = origin
        self.pos = pos
    }

    func bad(_ m: String) -> AffectError { .badInput("\(origin): not a valid PyTorch pickle (\(m) at byte \(pos)).") }

    mutating func take(_ n: Int) throws(AffectError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - pos else { throw bad("truncated") }
        defer { pos += n }
        return bytes[pos..<pos + n]
    }
    mutating func byte() throws(AffectError) -> UInt8 { try take(1).first! }
    mutating func le(_ n: Int) throws(AffectError) -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try take(n).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }
    mutating func line() throws(AffectError) -> String {
        guard let nl = bytes[pos...].firstIndex(of: 0x0A) else { throw bad("unterminated line") }
        let s = String(decoding: bytes[pos..<nl], as: UTF8.self)
        pos = nl + 1
        return s
    }
    mutating func text(_ n: Int) throws(AffectError) -> String {
        guard let s = String(validating: try take(n), as: UTF8.self) else { throw bad("a string that is not UTF-8") }
        return s
    }
    func length(_ v: UInt64) throws(AffectError) -> Int {
        guard v <= UInt64(bytes.count - pos) else { throw bad("a length of \(v) past the end") }
        return Int(v)
    }

    /// Runs one pickle to its STOP and returns the value; `pos` then points after it.
    mutating func load() throws(AffectError) -> PyValue {
        var stack: [PyValue] = []
        var marks: [Int] = []
        var memo: [Int: PyValue] = [:]
        func pop() throws(AffectError) -> PyValue {
            guard let v = stack.popLast() else { throw bad("stack underflow") }
            return v
        }
        func popMark() throws(AffectError) -> [PyValue] {
            guard let m = marks.popLast(), m <= stack.count else { throw bad("no mark") }
            let items = Array(stack[m...])
            stack.removeSubrange(m...)
            return items
        }
        func push(_ v: PyValue) throws(AffectError) {
            guard stack.count < Unpickler.maxStack else { throw bad("stack too deep") }
            stack.append(v)
        }
        func top() throws(AffectError) -> PyValue {
            guard let v = stack.last else { throw bad("stack underflow") }
            return v
        }
        func setItems(_ target: PyValue, _ kv: [PyValue]) throws(AffectError) {
            guard kv.count % 2 == 0 else { throw bad("odd number of dict items") }
            guard case .dict(let d) = target else { throw bad("SETITEM on a non-dict") }
            for i in stride(from: 0, to: kv.count, by: 2) { d.set(kv[i], kv[i + 1]) }
        }
        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try take(8)                                  // FRAME
            case 0x2E: return try pop()                                 // STOP
            case 0x28: marks.append(stack.count)                        // MARK
            case 0x7D: try push(.dict(PyDict()))                        // EMPTY_DICT
            case 0x5D: try push(.list(PyList()))                        // EMPTY_LIST
            case 0x29: try push(.tuple([]))                             // EMPTY_TUPLE
            case 0x8F: try push(.list(PyList()))                        // EMPTY_SET
            case 0x4E: try push(.none)
            case 0x88: try push(.bool(true))
            case 0x89: try push(.bool(false))
            case 0x4B: try push(.int(Int64(try byte())))                // BININT1
            case 0x4D: try push(.int(Int64(try le(2))))                 // BININT2
            case 0x4A: try push(.int(Int64(Int32(truncatingIfNeeded: try le(4)))))  // BININT
            case 0x8A, 0x8B:                                            // LONG1, LONG4
                let n = op == 0x8A ? Int(try byte()) : try length(try le(4))
                let b = Array(try take(n))
                if b.isEmpty { try push(.int(0)) }
                else if b.count <= 8 {
                    var v: UInt64 = b.last! & 0x80 != 0 ? ~0 : 0
                    for (i, x) in b.enumerated() { v &= ~(0xFF << (8 * UInt64(i))); v |= UInt64(x) << (8 * UInt64(i)) }
                    try push(.int(Int64(bitPattern: v)))
                } else { try push(.bigInt(b)) }
            case 0x49:                                                  // INT (text)
                let s = try line()
                if s == "01" { try push(.bool(true)) } else if s == "00" { try push(.bool(false)) }
                else { guard let v = Int64(s) else { throw bad("bad INT") }; try push(.int(v)) }
            case 0x47: try push(.float(Double(bitPattern: UInt64(bigEndian: UInt64(littleEndian: try le(8))))))  // BINFLOAT
            case 0x58: try push(.string(try text(try length(try le(4)))))          // BINUNICODE
            case 0x8C: try push(.string(try text(Int(try byte()))))               // SHORT_BINUNICODE
            case 0x8D: try push(.string(try text(try length(try le(8)))))          // BINUNICODE8
            case 0x54, 0x55:                                                       // BINSTRING, SHORT_BINSTRING
                let n = op == 0x55 ? Int(try byte()) : try length(try le(4))
                try push(.string(String(bytes: try take(n), encoding: .isoLatin1) ?? ""))
            case 0x42: try push(.bytes(Data(try take(try length(try le(4))))))    // BINBYTES
            case 0x43: try push(.bytes(Data(try take(Int(try byte())))))           // SHORT_BINBYTES
            case 0x8E: try push(.bytes(Data(try take(try length(try le(8))))))    // BINBYTES8
            case 0x71: memo[Int(try byte())] = try top()                           // BINPUT
            case 0x72: memo[Int(try le(4))] = try top()                            // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()                                // MEMOIZE
            case 0x68, 0x6A:                                                       // BINGET, LONG_BINGET
                let k = op == 0x68 ? Int(try byte()) : Int(try le(4))
                guard let v = memo[k] else { throw bad("memo \(k) is unset") }
                try push(v)
            case 0x63:                                                             // GLOBAL
                let module = try line(), name = try line()
                try push(try global(module, name))
            case 0x93:                                                             // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = module.string, let n = name.string else { throw bad("STACK_GLOBAL of non-strings") }
                try push(try global(m, n))
            case 0x74: try push(.tuple(try popMark()))                             // TUPLE
            case 0x85: try push(.tuple([try pop()]))
            case 0x86: let b = try pop(), a = try pop(); try push(.tuple([a, b]))
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try push(.tuple([a, b, c]))
            case 0x6C: try push(.list(PyList(try popMark())))                      // LIST
            case 0x61:                                                             // APPEND
                let v = try pop()
                guard case .list(let l) = try top() else { throw bad("APPEND to a non-list") }
                l.items.append(v)
            case 0x65, 0x90:                                                       // APPENDS, ADDITEMS
                let items = try popMark()
                guard case .list(let l) = try top() else { throw bad("APPENDS to a non-list") }
                l.items += items
            case 0x91: try push(.list(PyList(try popMark())))                      // FROZENSET
            case 0x64:                                                             // DICT
                let kv = try popMark()
                let d = PyValue.dict(PyDict())
                try setItems(d, kv)
                try push(d)
            case 0x73: let v = try pop(), k = try pop(); try setItems(try top(), [k, v])  // SETITEM
            case 0x75: let kv = try popMark(); try setItems(try top(), kv)         // SETITEMS
            case 0x30: _ = try pop()                                               // POP
            case 0x31: _ = try popMark()                                           // POP_MARK
            case 0x32: try push(try top())                                         // DUP
            case 0x51:                                                             // BINPERSID
                let pid = try pop()
                guard let resolve = persistent else { throw bad("a persistent id where none is allowed") }
                try push(try resolve(pid))
            case 0x52:                                                             // REDUCE
                let args = try pop(), f = try pop()
                try push(try reduce(f, args))
            case 0x81:                                                             // NEWOBJ
                _ = try pop()
                let cls = try pop()
                try push(try instantiate(cls))
            case 0x92:                                                             // NEWOBJ_EX
                _ = try pop(); _ = try pop()
                let cls = try pop()
                try push(try instantiate(cls))
            case 0x62:                                                             // BUILD
                let state = try pop()
                try build(try top(), state)
            default:
                throw bad(String(format: "unsupported opcode 0x%02x", op))
            }
        }
    }

    func global(_ module: String, _ name: String) throws(AffectError) -> PyValue {
        guard allowGlobals else { throw bad("unexpected class \(module).\(name) in a checkpoint header") }
        return .global(module, name)
    }

    func instantiate(_ cls: PyValue) throws(AffectError) -> PyValue {
        guard case .global(let m, let n) = cls else { throw bad("NEWOBJ of a non-class") }
        if (m == "collections" && n == "OrderedDict") || (m == "builtins" && n == "dict") { return .dict(PyDict()) }
        if m == "builtins" && (n == "list" || n == "set" || n == "frozenset") { return .list(PyList()) }
        return .object(PyObject("\(m).\(n)"))
    }

    func reduce(_ f: PyValue, _ args: PyValue) throws(AffectError) -> PyValue {
        guard case .global(let m, let n) = f else { throw bad("REDUCE of a non-callable") }
        let a = args.sequence ?? []
        switch (m, n) {
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
            guard a.count >= 4, case .storage(let s) = a[0], let offset = a[1].int,
                  let size = a[2].sequence?.compactMap(\.int), let stride = a[3].sequence?.compactMap(\.int),
                  size.count == a[2].sequence?.count, stride.count == a[3].sequence?.count, size.count == stride.count else {
                throw bad("malformed _rebuild_tensor arguments")
            }
            return .tensor(PyTensor(storage: s, offset: offset, size: size, stride: stride))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            guard let first = a.first else { throw bad("malformed _rebuild_parameter arguments") }
            return first
        case ("collections", "OrderedDict"), ("builtins", "dict"):
            let d = PyDict()
            for pair in a.first?.sequence ?? [] {
                guard let kv = pair.sequence, kv.count == 2 else { throw bad("OrderedDict of non-pairs") }
                d.set(kv[0], kv[1])
            }
            return .dict(d)
        case ("builtins", "list"), ("builtins", "set"), ("builtins", "frozenset"):
            return .list(PyList(a.first?.sequence ?? []))
        case ("builtins", "tuple"):
            return .tuple(a.first?.sequence ?? [])
        default:
            if m == "torch", Unpickler.storageTypes[n] != nil { throw bad("a storage type called as a function") }
            return .object(PyObject("\(m).\(n)"))
        }
    }

    func build(_ target: PyValue, _ state: PyValue) throws(AffectError) {
        switch target {
        case .object(let o):
            var parts = [state]
            if case .tuple(let t) = state, t.count == 2 { parts = t }
            for p in parts {
                guard case .dict(let d) = p else { continue }
                for (k, v) in d.items where k.string != nil { o.state.set(k, v) }
            }
        case .dict, .tensor, .list: break  // attributes of an OrderedDict (`_metadata`) or a tensor carry no weights
        default: throw bad("BUILD on a plain value")
        }
    }
}

extension PyDict {
    func set(_ k: PyValue, _ v: PyValue) {
        if let s = k.string {
            if let i = index[s] { items[i].1 = v; return }
            index[s] = items.count
        }
        items.append((k, v))
    }
    func get(_ key: String) -> PyValue? { index[key].map { items[$0].1 } }
}
