import Foundation
import AffectKernels

/// A protobuf wire-format reader over a byte buffer; every read is bounds-checked and reports the file.
struct ProtoReader {
    let buf: [UInt8]
    let origin: String
    var pos: Int
    let end: Int

    init(_ buf: [UInt8], origin: String, range: Range<Int>? = nil) {
        self.buf = buf
        self.origin = origin
        pos = range?.lowerBound ?? 0
        end = range?.upperBound ?? buf.count
    }

    var atEnd: Bool { pos >= end }

    func bad(_ m: String) -> AffectError { .badInput("\(origin): not a valid ONNX file (\(m) at byte \(pos)).") }

    mutating func varint() throws(AffectError) -> UInt64 {
        var v: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard pos < end else { throw bad("truncated varint") }
            let b = buf[pos]
            pos += 1
            guard shift < 64 else { throw bad("varint longer than 10 bytes") }
            v |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return v }
            shift += 7
        }
    }

    /// A field key: (field number, wire type).
    mutating func key() throws(AffectError) -> (Int, Int) {
        let k = try varint()
        guard k >> 3 <= UInt64(Int32.max), k >> 3 > 0 else { throw bad("field number out of range") }
        return (Int(k >> 3), Int(k & 7))
    }

    /// The byte range of a length-delimited field's payload.
    mutating func lengthDelimited() throws(AffectError) -> Range<Int> {
        let n = try varint()
        guard n <= UInt64(end - pos) else { throw bad("a field of \(n) bytes runs past its message") }
        let r = pos..<(pos + Int(n))
        pos += Int(n)
        return r
    }

    mutating func fixed32() throws(AffectError) -> UInt32 {
        guard end - pos >= 4 else { throw bad("truncated fixed32") }
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(buf[pos + i]) << (8 * i) }
        pos += 4
        return v
    }

    mutating func fixed64() throws(AffectError) -> UInt64 {
        guard end - pos >= 8 else { throw bad("truncated fixed64") }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(buf[pos + i]) << (8 * i) }
        pos += 8
        return v
    }

    mutating func skip(_ wire: Int) throws(AffectError) {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try fixed64()
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw bad("unsupported wire type \(wire)")
        }
    }

    mutating func string(_ wire: Int) throws(AffectError) -> String {
        guard wire == 2 else { throw bad("a string field with wire type \(wire)") }
        let r = try lengthDelimited()
        guard let s = String(validating: buf[r], as: UTF8.self) else { throw bad("a string that is not UTF-8") }
        return s
    }

    func sub(_ r: Range<Int>) -> ProtoReader { ProtoReader(buf, origin: origin, range: r) }

    /// Repeated scalars, packed (one length-delimited run) or one per field.
    mutating func repeated<T>(_ wire: Int, packedWire: Int, into out: inout [T], _ read: (inout ProtoReader) throws(AffectError) -> T) throws(AffectError) {
        if wire == 2 {
            var r = sub(try lengthDelimited())
            while !r.atEnd { out.append(try read(&r)) }
        } else if wire == packedWire {
            out.append(try read(&self))
        } else {
            throw bad("a repeated field with wire type \(wire)")
        }
    }
}

/// The parts of ONNX's `TensorProto` the converters read; data is decoded only when a tensor is used.
struct OnnxTensor {
    var name = ""
    var dims: [Int64] = []
    var dataType: Int = 0
    var raw: Range<Int>?
    var floats: [UInt32] = []
    var int32s: [Int64] = []
    var int64s: [Int64] = []
    var doubles: [UInt64] = []
    var external = false

    static func parse(_ r: inout ProtoReader) throws(AffectError) -> OnnxTensor {
        var t = OnnxTensor()
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: try r.repeated(wire, packedWire: 0, into: &t.dims) { (p: inout ProtoReader) throws(AffectError) in Int64(bitPattern: try p.varint()) }
            case 2 where wire == 0: t.dataType = Int(truncatingIfNeeded: try r.varint())
            case 4: try r.repeated(wire, packedWire: 5, into: &t.floats) { (p: inout ProtoReader) throws(AffectError) in try p.fixed32() }
            case 5: try r.repeated(wire, packedWire: 0, into: &t.int32s) { (p: inout ProtoReader) throws(AffectError) in Int64(bitPattern: try p.varint()) }
            case 7: try r.repeated(wire, packedWire: 0, into: &t.int64s) { (p: inout ProtoReader) throws(AffectError) in Int64(bitPattern: try p.varint()) }
            case 8: t.name = try r.string(wire)
            case 9 where wire == 2: t.raw = try r.lengthDelimited()
            case 10: try r.repeated(wire, packedWire: 1, into: &t.doubles) { (p: inout ProtoReader) throws(AffectError) in try p.fixed64() }
            case 13: t.external = true; try r.skip(wire)
            case 14 where wire == 0: if try r.varint() == 1 { t.external = true }
            default: try r.skip(wire)
            }
        }
        return t
    }

    /// The tensor's values, as `onnx.numpy_helper.to_array` reads them.
    func decode(_ buf: [UInt8], origin: String) throws(AffectError) -> SourceTensor {
        let label = name.isEmpty ? "an initializer" : "initializer `\(name)`"
        func bad(_ m: String) -> AffectError { .badInput("\(origin): \(label) \(m).") }
        guard !external else { throw bad("keeps its data in an external file, which `affect convert` does not read") }
        var shape: [Int] = []
        var count = 1
        for d in dims {
            guard d >= 0, d < (1 << 40) else { throw bad("has an invalid dimension \(d)") }
            let (m, o) = count.multipliedReportingOverflow(by: Int(d))
            guard !o, m < (1 << 48) else { throw bad("has an absurd shape \(dims)") }
            count = m
            shape.append(Int(d))
        }
        let dtype: DType
        switch dataType {
        case 1: dtype = .f32
        case 2: dtype = .u8
        case 3: dtype = .i8
        case 5: dtype = .i16
        case 6: dtype = .i32
        case 7: dtype = .i64
        case 9: dtype = .bool
        case 10: dtype = .f16
        case 11: dtype = .f64
        case 16: dtype = .bf16
        default: throw bad("has ONNX data type \(dataType), which `affect convert` does not read")
        }
        if let raw {
            guard raw.count == count * dtype.byteSize else {
                throw bad("holds \(raw.count) bytes of data for shape \(shape) (\(count * dtype.byteSize) expected)")
            }
            return SourceTensor(dtype: dtype, shape: shape, data: Data(buf[raw]))
        }
        var data = Data()
        func need(_ n: Int) throws(AffectError) {
            guard n == count else { throw bad("holds \(n) values for shape \(shape) (\(count) expected)") }
        }
        func append<T>(_ v: T) { withUnsafeBytes(of: v) { data.append(contentsOf: $0) } }
        switch dtype {
        case .f32: try need(floats.count); for v in floats { append(v.littleEndian) }
        case .f64: try need(doubles.count); for v in doubles { append(v.littleEndian) }
        case .i64: try need(int64s.count); for v in int64s { append(v.littleEndian) }
        case .i32: try need(int32s.count); for v in int32s { append(Int32(truncatingIfNeeded: v).littleEndian) }
        case .i16, .f16, .bf16: try need(int32s.count); for v in int32s { append(UInt16(truncatingIfNeeded: v).littleEndian) }
        case .i8, .u8, .bool: try need(int32s.count); for v in int32s { append(UInt8(truncatingIfNeeded: v)) }
        }
        return SourceTensor(dtype: dtype, shape: shape, data: data)
    }
}

/// An attribute value of a node (the kinds the converters read).
enum OnnxAttribute {
    case int(Int64)
    case ints([Int64])
    case float(Float)
    case string(String)
    case tensor(OnnxTensor)
    case other
}

struct OnnxNode {
    var opType = ""
    var inputs: [String] = []
    var outputs: [String] = []
    var attributes: [String: OnnxAttribute] = [:]

    static func parse(_ r: inout ProtoReader) throws(AffectError) -> OnnxNode {
        var n = OnnxNode()
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch field {
            case 1: n.inputs.append(try r.string(wire))
            case 2: n.outputs.append(try r.string(wire))
            case 4: n.opType = try r.string(wire)
            case 5 where wire == 2:
                var a = r.sub(try r.lengthDelimited())
                var name = "", value = OnnxAttribute.other
                var ints: [Int64] = []
                while !a.atEnd {
                    let (f, w) = try a.key()
                    switch f {
                    case 1: name = try a.string(w)
                    case 2 where w == 5: value = .float(Float(bitPattern: try a.fixed32()))
                    case 3 where w == 0: value = .int(Int64(bitPattern: try a.varint()))
                    case 4 where w == 2:
                        let r = try a.lengthDelimited()
                        value = .string(String(decoding: a.buf[r], as: UTF8.self))
                    case 5 where w == 2:
                        var t = a.sub(try a.lengthDelimited())
                        value = .tensor(try OnnxTensor.parse(&t))
                    case 8:
                        try a.repeated(w, packedWire: 0, into: &ints) { (p: inout ProtoReader) throws(AffectError) in Int64(bitPattern: try p.varint()) }
                        value = .ints(ints)
                    default: try a.skip(w)
                    }
                }
                n.attributes[name] = value
            default: try r.skip(wire)
            }
        }
        return n
    }

    func int(_ name: String, default d: Int64) -> Int64 {
        if case .int(let v)? = attributes[name] { return v }
        return d
    }
    func ints(_ name: String) -> [Int64]? {
        if case .ints(let v)? = attributes[name] { return v }
        return nil
    }
    func float(_ name: String, default d: Float) -> Float {
        if case .float(let v)? = attributes[name] { return v }
        return d
    }
    func string(_ name: String, default d: String) -> String {
        if case .string(let v)? = attributes[name] { return v }
        return d
    }
}

/// `ModelProto.graph`: its nodes and initializers.
struct OnnxGraph {
    let buffer: [UInt8]
    let path: String
    var nodes: [OnnxNode] = []
    var initializers: [OnnxTensor] = []

    init(path: String) throws(AffectError) {
        self.path = path
        buffer = [UInt8](try readFile(path))
        var r = ProtoReader(buffer, origin: path)
        var graph: Range<Int>?
        while !r.atEnd {
            let (field, wire) = try r.key()
            if field == 7, wire == 2 { graph = try r.lengthDelimited() } else { try r.skip(wire) }
        }
        guard let graph else { throw .badInput("\(path): not an ONNX model (no graph).") }
        var g = r.sub(graph)
        while !g.atEnd {
            let (field, wire) = try g.key()
            switch (field, wire) {
            case (1, 2):
                var n = g.sub(try g.lengthDelimited())
                nodes.append(try OnnxNode.parse(&n))
            case (5, 2):
                var t = g.sub(try g.lengthDelimited())
                initializers.append(try OnnxTensor.parse(&t))
            default: try g.skip(wire)
            }
        }
    }
}
