import Foundation
import AffectKernels

/// timm MobileViT (v1) names (`mobilevit_va_mtl`) from its ONNX export, as Tools/converters/onnx_vision.py
/// `mobilevit` recovers them.
///
/// In node order: `stem`, then per stage bottlenecks (1×1, depthwise k×k, 1×1 convs: `conv1_1x1`, `conv2_kxk`,
/// `conv3_1x1`) and MobileViT blocks (`conv_kxk`, the bias-free `conv_1x1`, transformer layers whose linears are
/// MatMul + Add of the bias — `attn.qkv`, `attn.proj`, `mlp.fc1`, `mlp.fc2` — with LayerNorms `norm1` / `norm2`
/// spelt out in opset 11's primitive ops, a final `norm`, then `conv_proj` and `conv_fusion`), `final_conv` and the
/// classifier (`head.fc`). A stage opens with the first block and at every bottleneck of stride 2; the strides are
/// checked against the loader's `stage_strides` (1, 2, 2, 2, 2 for each stage's first block). Folded convolutions
/// get identity BatchNorms carrying their folded bias.
enum OnnxMobileViT {
    static let family = "a MobileViT"
    /// converters/mobilevit.py's `stage_strides`: the loader strides block 0 of stage s by these.
    static let stageStrides: [Int64] = [1, 2, 2, 2, 2]

    /// (weight, bias) of each LayerNorm among nodes `lo..<hi`: opset 11 spells it ReduceMean, Sub, Pow, ReduceMean,
    /// Add, Sqrt, Div, then Mul by the weight and Add of the bias.
    static func layerNorms(_ g: OnnxWalk, _ lo: Int, _ hi: Int) throws(AffectError) -> [(SourceTensor, SourceTensor)] {
        var out: [(SourceTensor, SourceTensor)] = []
        for n in g.nodes(lo, hi) where n.opType == "Mul" && n.inputs.count == 2 {
            let ws = n.inputs.filter { g.inits[$0] != nil }, xs = n.inputs.filter { g.inits[$0] == nil }
            guard ws.count == 1, xs.count == 1, let p = g.producer[xs[0]], g.node(p)?.opType == "Div", let o = n.outputs.first else { continue }
            var bias: SourceTensor?
            for a in g.consumerNodes(o) where a.opType == "Add" {
                let other = a.inputs.filter { $0 != o }
                if other.count == 1, g.inits[other[0]] != nil { bias = try g.tensor(other[0], family) }
            }
            guard let bias else { throw g.error(family, "the LayerNorm with weight `\(ws[0])` has no bias Add") }
            out.append((try g.tensor(ws[0], family), bias))
        }
        return out
    }

    static func stateDict(_ g: OnnxWalk) throws(AffectError) -> StateDict {
        func fail(_ why: String) -> AffectError { g.error(family, why) }
        let convs = try g.convs(family)
        guard convs.count >= 5 else { throw fail("\(convs.count) convolutions") }
        var sd = StateDict()
        func put(_ prefix: String, _ c: OnnxConv, _ what: String, stride: Int64) throws(AffectError) {
            try g.checkConv(c, family, what, stride: stride)
            sd[prefix + ".conv.weight"] = c.weight
            let bias = try c.bias.map { (b) throws(AffectError) in try g.float32(b, family, "the bias of \(what)") }
            sd.putIdentityBatchNorm(prefix + ".bn", bias: bias, channels: c.outChannels)
        }
        /// Writes a linear layer checked to take `cin` inputs (and give `cout` outputs); returns its outputs.
        @discardableResult
        func linear(_ prefix: String, _ n: OnnxNode, cin: Int, cout: Int?, _ what: String) throws(AffectError) -> Int {
            let (w, b) = try g.linear(n, family)
            guard w.shape.count == 2, w.shape[1] == cin, cout == nil || w.shape[0] == cout else {
                throw fail("\(what) has weight shape \(Array(w.shape.reversed())) (as stored), expected in = \(cin)"
                           + (cout.map { ", out = \($0)" } ?? ""))
            }
            sd[prefix + ".weight"] = w
            if let b {
                guard b.shape == [w.shape[0]] else { throw fail("\(what) has a bias of shape \(b.shape)") }
                sd[prefix + ".bias"] = b
            }
            return w.shape[0]
        }
        func norm(_ prefix: String, _ wb: (SourceTensor, SourceTensor), _ dim: Int, _ what: String) throws(AffectError) {
            let (w, b) = wb
            guard w.shape == [dim], b.shape == [dim] else {
                throw fail("\(what) has weight / bias shapes \(w.shape) / \(b.shape), expected [\(dim)]")
            }
            sd[prefix + ".weight"] = w
            sd[prefix + ".bias"] = b
        }

        guard convs[0].weight.shape.count == 4, convs[0].weight.shape[1] == 3 else { throw fail("first Conv does not take 3 channels") }
        try put("stem", convs[0], "the stem Conv", stride: 2)
        var (i, s, b) = (1, -1, 0)
        let last = convs.count - 1
        while i < last {
            let c = convs[i]
            let next: OnnxConv? = i + 1 < last ? convs[i + 1] : nil
            if let nxt = next, c.group == 1, nxt.group > 1, i + 2 < last {  // bottleneck
                if s < 0 || nxt.stride != 1 { (s, b) = (s + 1, 0) }
                let expected = b == 0 && s < stageStrides.count ? stageStrides[s] : 1
                let p = "stages.\(s).\(b)"
                try put("\(p).conv1_1x1", c, "Conv \(i) (bottleneck expansion)", stride: 1)
                try put("\(p).conv2_kxk", nxt, "Conv \(i + 1) (bottleneck depthwise, block \(b) of stage \(s))", stride: expected)
                try put("\(p).conv3_1x1", convs[i + 2], "Conv \(i + 2) (bottleneck projection)", stride: 1)
                i += 3
            } else if let nxt = next, c.group == 1, nxt.bias == nil, i + 3 < last {  // MobileViT block
                guard s >= 0 else { throw fail("a transformer block before any bottleneck") }
                let p = "stages.\(s).\(b)"
                try put("\(p).conv_kxk", c, "Conv \(i) (MobileViT local conv)", stride: 1)
                try g.checkConv(nxt, family, "Conv \(i + 1) (MobileViT conv_1x1)", stride: 1)
                guard nxt.isPointwise else { throw fail("Conv \(i + 1) (MobileViT conv_1x1) is not a 1x1 convolution") }
                let w1 = nxt.weight.shape
                guard w1[1] == c.outChannels else {
                    throw fail("Conv \(i + 1) (MobileViT conv_1x1) takes \(w1[1]) channels, not \(c.outChannels)")
                }
                sd["\(p).conv_1x1.weight"] = nxt.weight
                let dim = w1[0]
                let (lo, hi) = (nxt.index + 1, convs[i + 2].index)
                let mms = g.nodes(lo, hi).filter { g.isWeightMatMul($0) }
                let lns = try layerNorms(g, lo, hi)
                guard !mms.isEmpty, mms.count % 4 == 0, lns.count == mms.count / 2 + 1 else {
                    throw fail("the transformer after Conv \(i + 1) has \(mms.count) weight MatMuls and \(lns.count) LayerNorms, "
                               + "expected 4 and 2 per layer plus a final LayerNorm")
                }
                for layer in 0..<(mms.count / 4) {
                    let q = "\(p).transformer.\(layer)"
                    let m = Array(mms[(4 * layer)..<(4 * layer + 4)])
                    let at = "of layer \(layer) after Conv \(i + 1)"
                    try norm("\(q).norm1", lns[2 * layer], dim, "LayerNorm \(2 * layer) of the transformer after Conv \(i + 1)")
                    try linear("\(q).attn.qkv", m[0], cin: dim, cout: 3 * dim, "the qkv MatMul \(at)")
                    try linear("\(q).attn.proj", m[1], cin: dim, cout: dim, "the attention projection \(at)")
                    try norm("\(q).norm2", lns[2 * layer + 1], dim, "LayerNorm \(2 * layer + 1) of the transformer after Conv \(i + 1)")
                    let hidden = try linear("\(q).mlp.fc1", m[2], cin: dim, cout: nil, "the fc1 MatMul \(at)")
                    try linear("\(q).mlp.fc2", m[3], cin: hidden, cout: dim, "the fc2 MatMul \(at)")
                }
                try norm("\(p).norm", lns[lns.count - 1], dim, "the final LayerNorm of the transformer after Conv \(i + 1)")
                try put("\(p).conv_proj", convs[i + 2], "Conv \(i + 2) (MobileViT projection)", stride: 1)
                try put("\(p).conv_fusion", convs[i + 3], "Conv \(i + 3) (MobileViT fusion)", stride: 1)
                i += 4
            } else {
                throw fail("Conv \(i) opens neither a bottleneck nor a MobileViT block")
            }
            b += 1
        }
        let final = convs[last]
        try put("final_conv", final, "the final Conv", stride: 1)
        let heads = g.nodes(final.index + 1, g.nodes.count).filter { g.isWeightMatMul($0) || $0.opType == "Gemm" }
        guard heads.count <= 1 else { throw fail("\(heads.count) linear layers after the final Conv, expected the classifier") }
        if let head = heads.first { try linear("head.fc", head, cin: final.outChannels, cout: nil, "the classifier") }
        return sd
    }
}
