import Foundation
import AffectKernels

/// Recovers EmotiEffLib / timm tensor names from an ONNX export of an EmotiEffLib facial model, as
/// Tools/converters/onnx_vision.py does.
///
/// EmotiEffLib's exporter (opset 11, constant folding) folds each BatchNorm into its convolution, renames most
/// initializers (`onnx::Conv_123`) and aliases equal ones through Identity nodes, so names cannot be trusted: they
/// are recovered from the graph's structure. The family is told by the graph: PRelu activations are MobileFaceNet's
/// (`mbf_va_mtl`), several weight MatMuls are MobileViT's transformers (`mobilevit_va_mtl`), anything else is read
/// as an EfficientNet.
enum OnnxVision {
    static func stateDict(_ path: String) throws(AffectError) -> StateDict {
        let g = OnnxWalk(try OnnxGraph(path: path))
        if g.nodes.contains(where: { $0.opType == "PRelu" }) { return try OnnxMobileFaceNet.stateDict(g) }
        if g.nodes.filter({ g.isWeightMatMul($0) }).count > 1 { return try OnnxMobileViT.stateDict(g) }
        return try OnnxEfficientNet.stateDict(g)
    }
}

/// A Conv node with its weights and the attributes the loaders depend on.
struct OnnxConv {
    var weight: SourceTensor
    var bias: SourceTensor?
    var group: Int64
    var strides: [Int64]
    var pads: [Int64]
    var dilations: [Int64]
    var autoPad: String
    var input: String
    var output: String
    /// Position of the node in the graph.
    var index: Int

    var stride: Int64 { strides.first ?? 1 }
    /// Output channels (0 for a weight without dimensions, which ``OnnxWalk/checkConv`` refuses).
    var outChannels: Int { weight.shape.first ?? 0 }
    var isPointwise: Bool { weight.shape.count == 4 && weight.shape[2] == 1 && weight.shape[3] == 1 }
}

/// An ONNX graph prepared for name recovery: initializers by name (with the tensors Identity nodes alias and
/// Constant nodes hold), and which node produces and which consume each value. Every lookup of untrusted
/// structure throws a sentence naming the file rather than trapping.
struct OnnxWalk {
    let graph: OnnxGraph
    private(set) var inits: [String: OnnxTensor] = [:]
    private(set) var producer: [String: Int] = [:]
    private(set) var consumers: [String: [Int]] = [:]

    var path: String { graph.path }
    var nodes: [OnnxNode] { graph.nodes }

    init(_ graph: OnnxGraph) {
        self.graph = graph
        for t in graph.initializers { inits[t.name] = t }
        // Identity nodes alias initializers (the exporter de-duplicates equal tensors through them).
        for n in graph.nodes where n.opType == "Identity" {
            if let i = n.inputs.first, let t = inits[i], let o = n.outputs.first { inits[o] = t }
        }
        for n in graph.nodes where n.opType == "Constant" {
            if case .tensor(let t)? = n.attributes["value"], let o = n.outputs.first { inits[o] = t }
        }
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs { producer[o] = i }
            for x in n.inputs { consumers[x, default: []].append(i) }
        }
    }

    /// `family` is spelt with its article ("a MobileViT").
    func error(_ family: String, _ why: String) -> AffectError { .badInput("\(path): not \(family) export (\(why)).") }

    func tensor(_ name: String, _ family: String) throws(AffectError) -> SourceTensor {
        guard let t = inits[name] else { throw error(family, "`\(name)` is not an initializer") }
        return try t.decode(graph.buffer, origin: path)
    }

    func node(_ i: Int) -> OnnxNode? { nodes.indices.contains(i) ? nodes[i] : nil }

    func consumerNodes(_ value: String) -> [OnnxNode] { (consumers[value] ?? []).compactMap(node) }

    /// Nodes `lo..<hi`, clamped to the graph.
    func nodes(_ lo: Int, _ hi: Int) -> ArraySlice<OnnxNode> {
        let l = max(0, min(lo, nodes.count)), h = max(l, min(hi, nodes.count))
        return nodes[l..<h]
    }

    func isWeightMatMul(_ n: OnnxNode) -> Bool { n.opType == "MatMul" && n.inputs.count >= 2 && inits[n.inputs[1]] != nil }

    /// Every Conv in node order.
    func convs(_ family: String) throws(AffectError) -> [OnnxConv] {
        var out: [OnnxConv] = []
        for (index, n) in nodes.enumerated() where n.opType == "Conv" {
            guard n.inputs.count >= 2, let output = n.outputs.first else { throw error(family, "a Conv without weights or output") }
            let b = n.inputs.count > 2 && !n.inputs[2].isEmpty ? try tensor(n.inputs[2], family) : nil
            out.append(OnnxConv(weight: try tensor(n.inputs[1], family), bias: b, group: n.int("group", default: 1),
                                strides: n.ints("strides") ?? [1, 1], pads: n.ints("pads") ?? [0, 0, 0, 0],
                                dilations: n.ints("dilations") ?? [1, 1], autoPad: n.string("auto_pad", default: "NOTSET"),
                                input: n.inputs[0], output: output, index: index))
        }
        return out
    }

    /// (weight as `[out, in]`, bias) of a weight MatMul (with the Add of an initializer that follows it) or a Gemm.
    func linear(_ n: OnnxNode, _ family: String) throws(AffectError) -> (SourceTensor, SourceTensor?) {
        guard n.inputs.count >= 2 else { throw error(family, "a \(n.opType) without weights") }
        if n.opType == "Gemm" {
            guard n.int("transA", default: 0) == 0, n.float("alpha", default: 1) == 1, n.float("beta", default: 1) == 1 else {
                throw error(family, "a Gemm with transA, alpha or beta, which a Linear layer does not export")
            }
            guard inits[n.inputs[1]] != nil else { throw error(family, "Gemm weight `\(n.inputs[1])` is not a 2-D initializer") }
            let w = try tensor(n.inputs[1], family)
            guard w.shape.count == 2 else { throw error(family, "Gemm weight `\(n.inputs[1])` is not a 2-D initializer") }
            var b: SourceTensor?
            if n.inputs.count > 2, !n.inputs[2].isEmpty {
                guard inits[n.inputs[2]] != nil else { throw error(family, "Gemm bias `\(n.inputs[2])` is not an initializer") }
                b = try tensor(n.inputs[2], family)
            }
            return (n.int("transB", default: 0) != 0 ? w : w.transposed2D(), b)
        }
        let w = try tensor(n.inputs[1], family)
        guard w.shape.count == 2 else { throw error(family, "MatMul weight `\(n.inputs[1])` has shape \(w.shape), not 2-D") }
        var b: SourceTensor?
        if let o = n.outputs.first {
            for a in consumerNodes(o) where a.opType == "Add" {
                let other = a.inputs.filter { $0 != o }
                if other.count == 1, inits[other[0]] != nil { b = try tensor(other[0], family) }
            }
        }
        return (w.transposed2D(), b)
    }

    /// The conv computes what the loader will: a square odd kernel, `stride`, symmetric (k-1)/2 padding (none
    /// when `valid`), no dilation, a bias (if any) of one value per output channel.
    func checkConv(_ c: OnnxConv, _ family: String, _ what: String, stride: Int64, valid: Bool = false) throws(AffectError) {
        let s = c.weight.shape
        guard s.count == 4, s[2] == s[3] else { throw error(family, "\(what) has weight shape \(s), not a square kernel") }
        // An empty weight would let a huge output-channel count through to the identity BatchNorm's allocation.
        guard s.allSatisfy({ $0 > 0 }) else { throw error(family, "\(what) has an empty weight of shape \(s)") }
        let k = s[2]
        if !valid, k % 2 != 1 { throw error(family, "\(what) has a \(k)x\(k) kernel, not an odd one") }
        let pad = valid ? 0 : Int64((k - 1) / 2)
        guard c.strides == [stride, stride] else { throw error(family, "\(what) has strides \(c.strides), expected \([stride, stride])") }
        guard c.pads == [pad, pad, pad, pad], c.dilations == [1, 1], c.autoPad == "NOTSET" else {
            throw error(family, "\(what) has pads \(c.pads) / dilations \(c.dilations), expected pads \([pad, pad, pad, pad])")
        }
        if let b = c.bias, b.shape != [s[0]] {
            throw error(family, "\(what) has a bias of shape \(b.shape) for \(s[0]) channels")
        }
    }

    /// `t` as float32 (F64, F16 and BF16 converted as numpy's `astype`), or an error naming `what`.
    func float32(_ t: SourceTensor, _ family: String, _ what: String) throws(AffectError) -> SourceTensor {
        let f = t.normalised()
        guard f.dtype == .f32 else { throw error(family, "\(what) is not a floating-point tensor") }
        return f
    }
}

/// The BatchNorm configuration eps of MobileFaceNet and MobileViT (`bn_eps` of their converters).
let onnxBatchNormEps = 1e-5

extension StateDict {
    /// A BatchNorm computing `x + bias`, where the exporter folded the real one into the convolution: weight 1,
    /// running mean 0, running variance 1 - eps (so 1/sqrt(var + eps) is exactly 1 in float32), bias the folded
    /// conv's (0 without one).
    mutating func putIdentityBatchNorm(_ prefix: String, bias: SourceTensor?, channels: Int) {
        func floats(_ v: [Float]) -> SourceTensor {
            SourceTensor(dtype: .f32, shape: [v.count], data: v.withUnsafeBufferPointer { Data(buffer: $0) })
        }
        self[prefix + ".weight"] = floats(Array(repeating: 1, count: channels))
        self[prefix + ".bias"] = bias ?? floats(Array(repeating: 0, count: channels))
        self[prefix + ".running_mean"] = floats(Array(repeating: 0, count: channels))
        self[prefix + ".running_var"] = floats(Array(repeating: Float(1 - onnxBatchNormEps), count: channels))
    }
}
