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

/// Recovers timm tensor names from an ONNX export of an EmotiEffLib EfficientNet by the graph's structure,
/// as Tools/converters/onnx_vision.py does (BatchNorm folded into biased convolutions, initializers renamed,
/// Identity nodes aliasing de-duplicated initializers).
enum OnnxVision {
    static func stateDict(_ path: String) throws(AffectError) -> StateDict {
        let g = try OnnxGraph(path: path)
        func notEfficientNet(_ why: String) -> AffectError {
            .badInput("\(path): not an EfficientNet export (\(why)).")
        }
        var inits: [String: OnnxTensor] = [:]
        for t in g.initializers { inits[t.name] = t }
        // MobileFaceNet and MobileViT exports also open with a 3-channel Conv; mapping them onto EfficientNet names
        // would write a file that fails later with a misleading shape error, so they are refused here.
        if g.nodes.contains(where: { $0.opType == "PRelu" }) {
            throw notEfficientNet("it has PRelu activations, as a MobileFaceNet export has; `affect convert` reads EfficientNet ONNX exports only, convert the .pt instead")
        }
        if g.nodes.filter({ $0.opType == "MatMul" && $0.inputs.count >= 2 && inits[$0.inputs[1]] != nil }).count > 1 {
            throw notEfficientNet("it has several MatMul layers, as a MobileViT transformer has; `affect convert` reads EfficientNet ONNX exports only, convert the .pt instead")
        }
        for n in g.nodes where n.opType == "Identity" {
            if let i = n.inputs.first, let t = inits[i], let o = n.outputs.first { inits[o] = t }
        }
        for n in g.nodes where n.opType == "Constant" {
            if case .tensor(let t)? = n.attributes["value"], let o = n.outputs.first { inits[o] = t }
        }
        var decoded: [String: SourceTensor] = [:]
        func tensor(_ name: String) throws(AffectError) -> SourceTensor {
            if let t = decoded[name] { return t }
            guard let p = inits[name] else { throw notEfficientNet("`\(name)` is not an initializer") }
            let t = try p.decode(g.buffer, origin: path)
            decoded[name] = t
            return t
        }
        var producer: [String: Int] = [:]
        for (i, n) in g.nodes.enumerated() { for o in n.outputs { producer[o] = i } }
        func fromGlobalPool(_ name: String, _ depth: Int) -> Bool {
            guard let i = producer[name], depth <= 3 else { return false }
            let n = g.nodes[i]
            if n.opType == "ReduceMean" || n.opType == "GlobalAveragePool" { return true }
            return n.inputs.contains { producer[$0] != nil && fromGlobalPool($0, depth + 1) }
        }

        struct Conv { var w: SourceTensor; var b: SourceTensor?; var group: Int64; var stride: Int64; var se: Bool }
        var convs: [Conv] = []
        for n in g.nodes where n.opType == "Conv" {
            guard n.inputs.count >= 2 else { throw notEfficientNet("a Conv without weights") }
            let w = try tensor(n.inputs[1])
            let b = n.inputs.count > 2 && !n.inputs[2].isEmpty ? try tensor(n.inputs[2]) : nil
            convs.append(Conv(w: w, b: b, group: n.int("group", default: 1), stride: n.ints("strides")?.first ?? 1,
                              se: fromGlobalPool(n.inputs[0], 0)))
        }
        guard let first = convs.first, first.w.shape.count >= 2, first.w.shape[1] == 3 else {
            throw notEfficientNet("first Conv does not take 3 channels")
        }
        var sd = StateDict()
        func put(_ name: String, _ c: Conv) {
            sd[name + ".weight"] = c.w
            if let b = c.b { sd[name + ".bias"] = b }
        }
        func conv(_ i: Int) throws(AffectError) -> Conv {
            guard i < convs.count else { throw notEfficientNet("the convolutions end inside a block") }
            return convs[i]
        }
        func outChannels(_ c: Conv) throws(AffectError) -> Int {
            guard let o = c.w.shape.first else { throw notEfficientNet("a Conv weight without dimensions") }
            return o
        }
        put("conv_stem", first)
        var (i, stage, idx, channels) = (1, -1, 0, try outChannels(first))
        while i < convs.count - 1 {
            var block: [(String, Conv)] = []
            let c = convs[i]
            let out: Int, stride: Int64
            if c.group > 1 {  // depthwise-separable
                block.append(("conv_dw", c)); i += 1
                if try conv(i).se { block += [("se.conv_reduce", try conv(i)), ("se.conv_expand", try conv(i + 1))]; i += 2 }
                let pw = try conv(i); i += 1
                block.append(("conv_pw", pw))
                (out, stride) = (try outChannels(pw), c.stride)
            } else {  // inverted residual
                let dw = try conv(i + 1)
                block += [("conv_pw", c), ("conv_dw", dw)]; i += 2
                if try conv(i).se { block += [("se.conv_reduce", try conv(i)), ("se.conv_expand", try conv(i + 1))]; i += 2 }
                let pwl = try conv(i); i += 1
                block.append(("conv_pwl", pwl))
                (out, stride) = (try outChannels(pwl), dw.stride)
            }
            if stride != 1 || out != channels || stage < 0 { (stage, idx) = (stage + 1, 0) }
            for (k, v) in block { put("blocks.\(stage).\(idx).\(k)", v) }
            idx += 1
            channels = out
        }
        put("conv_head", convs[convs.count - 1])

        for n in g.nodes {
            if n.opType == "Gemm" {
                guard n.inputs.count >= 2 else { throw notEfficientNet("a Gemm without weights") }
                let w = try tensor(n.inputs[1])
                sd["classifier.weight"] = n.int("transB", default: 0) != 0 ? w : w.transposed2D()
                if n.inputs.count > 2 { sd["classifier.bias"] = try tensor(n.inputs[2]) }
            } else if n.opType == "MatMul", n.inputs.count >= 2, inits[n.inputs[1]] != nil, !sd.contains("classifier.weight") {
                sd["classifier.weight"] = try tensor(n.inputs[1]).transposed2D()
                guard let o = n.outputs.first else { continue }
                for a in g.nodes where a.opType == "Add" && a.inputs.contains(o) {
                    guard let other = a.inputs.first(where: { $0 != o }) else { throw notEfficientNet("an Add of the MatMul with itself") }
                    if inits[other] != nil { sd["classifier.bias"] = try tensor(other) }
                }
            }
        }
        return sd
    }
}
