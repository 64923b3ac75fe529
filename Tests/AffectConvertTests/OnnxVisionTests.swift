import Foundation
import Testing
import AffectKernels
@testable import AffectConvert

/// A protobuf writer for the parts of ONNX's ModelProto that OnnxGraph reads, so tests can re-serialise a fixture's
/// graph with one node changed.
struct OnnxWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func key(_ field: Int, _ wire: Int) { varint(UInt64(field << 3 | wire)) }
    mutating func message(_ field: Int, _ m: OnnxWriter) { key(field, 2); varint(UInt64(m.bytes.count)); bytes += m.bytes }
    mutating func blob(_ field: Int, _ b: [UInt8]) { key(field, 2); varint(UInt64(b.count)); bytes += b }
    mutating func string(_ field: Int, _ s: String) { blob(field, Array(s.utf8)) }
    mutating func int(_ field: Int, _ v: Int64) { key(field, 0); varint(UInt64(bitPattern: v)) }

    static func tensor(_ t: OnnxTensor, buffer: [UInt8]) -> OnnxWriter {
        var w = OnnxWriter()
        for d in t.dims { w.int(1, d) }
        w.int(2, Int64(t.dataType))
        w.string(8, t.name)
        if let raw = t.raw { w.blob(9, Array(buffer[raw])) }
        for f in t.floats { w.key(4, 5); for i in 0..<4 { w.bytes.append(UInt8(truncatingIfNeeded: f >> (8 * UInt32(i)))) } }
        for v in t.int32s { w.int(5, v) }
        for v in t.int64s { w.int(7, v) }
        for d in t.doubles { w.key(10, 1); for i in 0..<8 { w.bytes.append(UInt8(truncatingIfNeeded: d >> (8 * UInt64(i)))) } }
        return w
    }

    static func node(_ n: OnnxNode, buffer: [UInt8]) -> OnnxWriter {
        var w = OnnxWriter()
        for i in n.inputs { w.string(1, i) }
        for o in n.outputs { w.string(2, o) }
        w.string(4, n.opType)
        for (name, value) in n.attributes.sorted(by: { $0.key < $1.key }) {
            var a = OnnxWriter()
            a.string(1, name)
            switch value {
            case .int(let v): a.int(3, v)
            case .ints(let v): for x in v { a.int(8, x) }
            case .float(let f): a.key(2, 5); let b = f.bitPattern; for i in 0..<4 { a.bytes.append(UInt8(truncatingIfNeeded: b >> (8 * UInt32(i)))) }
            case .string(let s): a.string(4, s)
            case .tensor(let t): a.message(5, tensor(t, buffer: buffer))
            case .other: continue
            }
            w.message(5, a)
        }
        return w
    }

    /// `graph` as an ONNX file at `path`.
    static func write(_ graph: OnnxGraph, nodes: [OnnxNode], to path: String) throws {
        var g = OnnxWriter()
        for n in nodes { g.message(1, node(n, buffer: graph.buffer)) }
        for t in graph.initializers { g.message(5, tensor(t, buffer: graph.buffer)) }
        var m = OnnxWriter()
        m.message(7, g)
        try Data(m.bytes).write(to: URL(fileURLWithPath: path))
    }
}

/// Name recovery from MobileFaceNet and MobileViT ONNX exports (Tools/converters/onnx_vision.py in Swift): the
/// fixtures' conversions are checked against Tools/convert.py and the framework in ConvertFixtureTests; here, graphs
/// that differ from what the loaders assume are refused with one sentence naming the file and the node.
@Suite struct OnnxVisionTests {
    func fixture(_ name: String) -> String { (convertFixtures as NSString).appendingPathComponent(name) }

    /// The fixture's graph with `change` applied to its nodes, written into `scratch`; returns the new file's path.
    func edited(_ name: String, _ scratch: ScratchFolder, _ change: (inout [OnnxNode]) throws -> Void) throws -> String {
        try editedGraph(name, scratch) { try change(&$0.nodes) }
    }

    /// The fixture's graph with `change` applied to its nodes and initializers.
    func editedGraph(_ name: String, _ scratch: ScratchFolder, _ change: (inout OnnxGraph) throws -> Void) throws -> String {
        var g = try OnnxGraph(path: fixture(name))
        try change(&g)
        let path = scratch.file("edited-" + name)
        try OnnxWriter.write(g, nodes: g.nodes, to: path)
        return path
    }

    /// Initializer `name` replaced by an empty one claiming `dims` (no data: 0 values for a shape with a 0).
    func empty(_ g: inout OnnxGraph, _ name: String, _ dims: [Int64]) throws {
        let i = try #require(g.initializers.firstIndex { $0.name == name })
        var t = OnnxTensor()
        (t.name, t.dims, t.dataType) = (name, dims, 1)
        g.initializers[i] = t
    }

    /// Empty weights claiming 2^39 rows: refused at once, without allocating or looping over the claimed size.
    @Test func emptyWeightsClaimingHugeShapesAreRefused() throws {
        let scratch = ScratchFolder()
        let conv = try editedGraph("mobilefacenet.onnx", scratch) { g in
            let gdc = try #require(g.nodes.last { $0.opType == "Conv" })
            try empty(&g, gdc.inputs[1], [1 << 39, 0, 7, 7])
        }
        expectRefused(conv, ["the GDC Conv has an empty weight"])
        let scratch2 = ScratchFolder()
        let matmul = try editedGraph("mobilevit.onnx", scratch2) { g in
            let names = Set(g.initializers.map(\.name))
            let qkv = try #require(g.nodes.first { $0.opType == "MatMul" && names.contains($0.inputs[1]) })
            try empty(&g, qkv.inputs[1], [1 << 39, 0])
        }
        expectRefused(matmul, ["the qkv MatMul of layer 0"])
    }

    func indices(_ nodes: [OnnxNode], _ op: String) -> [Int] { nodes.indices.filter { nodes[$0].opType == op } }

    /// Converting fails with badInput naming the file and containing each of `parts`.
    func expectRefused(_ path: String, _ parts: [String]) {
        do {
            _ = try OnnxVision.stateDict(path)
            Issue.record("\(path) was converted")
        } catch {
            guard case .badInput(let m) = error else { Issue.record("\(error) is not badInput"); return }
            #expect(m.hasPrefix(path + ": "), "\(m)")
            for p in parts { #expect(m.contains(p), "\(m) does not say \(p)") }
            #expect(!m.dropLast().contains("\n"), "\(m) is more than one line")
        }
    }

    /// The writer itself: the re-serialised fixtures convert to the same tensors as the originals.
    @Test(arguments: ["mobilefacenet.onnx", "mobilevit.onnx", "efficientnet.onnx"])
    func rewrittenGraphConvertsTheSame(_ name: String) throws {
        let scratch = ScratchFolder()
        let a = try OnnxVision.stateDict(fixture(name)), b = try OnnxVision.stateDict(try edited(name, scratch) { _ in })
        #expect(a.names == b.names)
        for n in a.names { #expect(a[n]?.shape == b[n]?.shape && a[n]?.data == b[n]?.data, "\(n)") }
    }

    /// Where the exporter kept a parameter's own name (an initializer, or an Identity alias of a de-duplicated one),
    /// the tensor recovered from the graph's structure under that name holds that initializer's values: the walk
    /// agrees with the exporter on every name it can be checked against, aliases included.
    @Test(arguments: ["mobilefacenet.onnx", "mobilevit.onnx"])
    func recoveredNamesAgreeWithTheExporters(_ name: String) throws {
        let g = try OnnxGraph(path: fixture(name))
        var named: [String: OnnxTensor] = [:]
        for t in g.initializers { named[t.name] = t }
        var aliases = 0
        for n in g.nodes where n.opType == "Identity" {
            if let src = n.inputs.first, let t = named[src], let out = n.outputs.first { named[out] = t; aliases += 1 }
        }
        #expect(aliases > 0, "the fixture has no Identity-aliased initializer")
        let sd = try OnnxVision.stateDict(fixture(name))
        var checked = 0
        for (k, t) in named where sd.contains(k) {
            let want = try t.decode(g.buffer, origin: name)
            #expect(sd[k]?.shape == want.shape && sd[k]?.data == want.data, "\(k)")
            checked += 1
        }
        #expect(checked >= 6, "only \(checked) names to check")
    }

    @Test func mobileFaceNetDepthWiseWithoutStrideIsRefused() throws {
        let scratch = ScratchFolder()
        let path = try edited("mobilefacenet.onnx", scratch) { nodes in
            let convs = indices(nodes, "Conv")
            nodes[convs[3]].attributes["strides"] = .ints([1, 1])  // layers.2's grouped conv: stride 2 in the loader
        }
        expectRefused(path, ["MobileFaceNet", "Conv 3 (DepthWise block)", "strides [1, 1], expected [2, 2]"])
    }

    @Test func mobileFaceNetPReluSlopeMustBeAnInitializer() throws {
        let scratch = ScratchFolder()
        let path = try edited("mobilefacenet.onnx", scratch) { nodes in
            nodes[indices(nodes, "PRelu")[2]].inputs[1] = "computed_slope"
        }
        expectRefused(path, ["PRelu slope `computed_slope`"])
    }

    @Test func mobileFaceNetPaddingIsChecked() throws {
        let scratch = ScratchFolder()
        let path = try edited("mobilefacenet.onnx", scratch) { nodes in
            nodes[indices(nodes, "Conv")[0]].attributes["pads"] = .ints([0, 0, 1, 1])
        }
        expectRefused(path, ["the stem Conv has pads [0, 0, 1, 1]"])
    }

    @Test func mobileFaceNetNeedsTheEmbeddingBatchNorm() throws {
        let scratch = ScratchFolder()
        let path = try edited("mobilefacenet.onnx", scratch) { nodes in
            nodes[indices(nodes, "BatchNormalization")[0]].opType = "Identity"
        }
        expectRefused(path, ["no BatchNormalization"])
    }

    @Test func missingConvWeightIsNamed() throws {
        let scratch = ScratchFolder()
        let path = try edited("mobilefacenet.onnx", scratch) { nodes in
            nodes[indices(nodes, "Conv")[5]].inputs[1] = "lost_weight"
        }
        expectRefused(path, ["`lost_weight` is not an initializer"])
    }

    @Test func mobileViTStageZeroMustNotStride() throws {
        let scratch = ScratchFolder()
        let path = try edited("mobilevit.onnx", scratch) { nodes in
            nodes[indices(nodes, "Conv")[2]].attributes["strides"] = .ints([2, 2])  // stages.0.0.conv2_kxk
        }
        expectRefused(path, ["MobileViT", "Conv 2 (bottleneck depthwise, block 0 of stage 0)", "expected [1, 1]"])
    }

    @Test func mobileViTTransformerLayersMustBeWhole() throws {
        let scratch = ScratchFolder()
        let g = try OnnxGraph(path: fixture("mobilevit.onnx"))
        let weights = Set(g.initializers.map(\.name))
        let path = try edited("mobilevit.onnx", scratch) { nodes in
            // The first transformer's mlp.fc2: its MatMul becomes something else.
            let mms = nodes.indices.filter { nodes[$0].opType == "MatMul" && weights.contains(nodes[$0].inputs[1]) }
            nodes[mms[3]].opType = "Relu"
        }
        expectRefused(path, ["7 weight MatMuls and 5 LayerNorms"])
    }

    @Test func mobileViTLayerNormNeedsItsBias() throws {
        let scratch = ScratchFolder()
        let path = try edited("mobilevit.onnx", scratch) { nodes in
            // The first LayerNorm's bias Add (after the Mul by its weight) becomes a Sub.
            let div = indices(nodes, "Div")[0]
            let mul = try #require(nodes.indices.first { $0 > div && nodes[$0].opType == "Mul" })
            let add = try #require(nodes.indices.first { $0 > mul && nodes[$0].opType == "Add" && nodes[$0].inputs.contains(nodes[mul].outputs[0]) })
            nodes[add].opType = "Sub"
        }
        expectRefused(path, ["has no bias Add"])
    }

    @Test func mobileViTQkvWidthIsChecked() throws {
        let scratch = ScratchFolder()
        let g = try OnnxGraph(path: fixture("mobilevit.onnx"))
        let weights = Set(g.initializers.map(\.name))
        let path = try edited("mobilevit.onnx", scratch) { nodes in
            // qkv reads the projection's weight (16×16) instead of its own (16×48).
            let mms = nodes.indices.filter { nodes[$0].opType == "MatMul" && weights.contains(nodes[$0].inputs[1]) }
            nodes[mms[0]].inputs[1] = nodes[mms[1]].inputs[1]
        }
        expectRefused(path, ["the qkv MatMul of layer 0", "out = 48"])
    }
}
