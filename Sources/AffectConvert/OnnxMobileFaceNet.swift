import Foundation
import AffectKernels

/// EmotiEffLib MobileFaceNet names (`emotiefflib/backbones/mobilefacenet.py` plus `fc`, `mbf_va_mtl`) from its
/// ONNX export, as Tools/converters/onnx_vision.py `mobilefacenet` recovers them.
///
/// A ConvBlock is a conv followed by a PRelu, a LinearBlock a conv without one. In node order: the stem
/// (`layers.0`), then ConvBlocks (`layers.K`), DepthWise triples (1×1 ConvBlock, grouped k×k ConvBlock of stride 2,
/// 1×1 LinearBlock: `layers.K.layers.0…2`) and runs of residual triples (stride 1, their output added to their
/// input: `layers.K.layers.J.layers.0…2`); then `conv_sep` (ConvBlock), the GDC's depthwise LinearBlock
/// (`features.layers.0`), the embedding MatMul (`features.layers.2`), its BatchNormalization (`features.layers.3`,
/// which the exporter leaves unfolded) and the classifier (`fc`). Each folded conv keeps its folded weight and gets
/// an identity BatchNorm carrying the folded bias; strides and paddings are checked against what the
/// MobileFaceNet loader assumes (stem and DepthWise stride 2, everything else 1, padding (k-1)/2, GDC unpadded).
enum OnnxMobileFaceNet {
    static let family = "a MobileFaceNet"

    static func stateDict(_ g: OnnxWalk) throws(AffectError) -> StateDict {
        func fail(_ why: String) -> AffectError { g.error(family, why) }
        let convs = try g.convs(family)
        guard convs.count >= 3 else { throw fail("\(convs.count) convolutions, fewer than stem, conv_sep and GDC") }
        // Each conv's PRelu slope (one per output channel, stored [C, 1, 1]), or nil for a LinearBlock.
        var slopes: [SourceTensor?] = []
        for c in convs {
            var slope: SourceTensor?
            for n in g.consumerNodes(c.output) where n.opType == "PRelu" {
                let name = n.inputs.count > 1 ? n.inputs[1] : ""
                let o = c.outChannels
                let bad = fail("PRelu slope `\(name)` is not a per-channel initializer of \(o) values")
                guard g.inits[name] != nil else { throw bad }
                let t = try g.tensor(name, family)
                guard t.count == o, t.shape.filter({ $0 != 1 }).count <= 1 else { throw bad }
                slope = try g.float32(SourceTensor(dtype: t.dtype, shape: [o], data: t.data), family, "PRelu slope `\(name)`")
            }
            slopes.append(slope)
        }

        var sd = StateDict()
        func put(_ prefix: String, _ i: Int, _ what: String, stride: Int64, valid: Bool = false, act: Bool = true) throws(AffectError) {
            let c = convs[i]
            try g.checkConv(c, family, what, stride: stride, valid: valid)
            guard act == (slopes[i] != nil) else { throw fail("\(what) \(act ? "has no" : "has a") PRelu") }
            sd[prefix + ".layers.0.weight"] = c.weight
            let bias = try c.bias.map { (b) throws(AffectError) in try g.float32(b, family, "the bias of \(what)") }
            sd.putIdentityBatchNorm(prefix + ".layers.1", bias: bias, channels: c.outChannels)
            if act, let s = slopes[i] { sd[prefix + ".layers.2.weight"] = s }
        }
        let bodyEnd = convs.count - 2
        /// convs[i...i+2] form a DepthWise block: 1×1 ConvBlock, grouped ConvBlock, LinearBlock.
        func tripleAt(_ i: Int) -> Bool {
            guard i + 2 < bodyEnd else { return false }
            return slopes[i] != nil && convs[i].group == 1 && convs[i].isPointwise
                && slopes[i + 1] != nil && convs[i + 1].group > 1 && slopes[i + 2] == nil
        }
        /// The triple at `i` adds its input to its output.
        func residual(_ i: Int) -> Bool {
            let want = [convs[i].input, convs[i + 2].output].sorted()
            return g.consumerNodes(convs[i + 2].output).contains { $0.opType == "Add" && $0.inputs.sorted() == want }
        }

        guard convs[0].weight.shape.count == 4, convs[0].weight.shape[1] == 3 else { throw fail("first Conv does not take 3 channels") }
        try put("layers.0", 0, "the stem Conv", stride: 2)
        var (i, k) = (1, 1)
        while i < bodyEnd {
            if tripleAt(i), residual(i) {
                var j = 0
                while i < bodyEnd, tripleAt(i), residual(i) {
                    for m in 0..<3 {
                        try put("layers.\(k).layers.\(j).layers.\(m)", i + m, "Conv \(i + m) (residual block)", stride: 1, act: m < 2)
                    }
                    (i, j) = (i + 3, j + 1)
                }
            } else if tripleAt(i) {
                for (m, s) in [Int64(1), 2, 1].enumerated() {
                    try put("layers.\(k).layers.\(m)", i + m, "Conv \(i + m) (DepthWise block)", stride: s, act: m < 2)
                }
                i += 3
            } else {
                try put("layers.\(k)", i, "Conv \(i) (ConvBlock)", stride: 1)
                i += 1
            }
            k += 1
        }
        try put("conv_sep", convs.count - 2, "the conv_sep Conv", stride: 1)
        let gdc = convs[convs.count - 1]
        try put("features.layers.0", convs.count - 1, "the GDC Conv", stride: 1, valid: true, act: false)

        let after = g.nodes(gdc.index + 1, g.nodes.count)
        let linears = after.filter { g.isWeightMatMul($0) || $0.opType == "Gemm" }
        guard let embedding = linears.first else { throw fail("no embedding MatMul after the GDC") }
        let (w, b) = try g.linear(embedding, family)
        guard b == nil else { throw fail("the embedding layer has a bias, which GDC's Linear has not") }
        sd["features.layers.2.weight"] = w
        let bns = after.filter { $0.opType == "BatchNormalization" }
        guard bns.count == 1, let bn = bns.first, bn.inputs.count >= 5, bn.inputs[1...4].allSatisfy({ g.inits[$0] != nil }) else {
            throw fail("no BatchNormalization with initializers after the embedding MatMul")
        }
        let eps = bn.float("epsilon", default: 1e-5)
        guard abs(Double(eps) - onnxBatchNormEps) <= 1e-9 else {
            throw fail("the embedding BatchNormalization has epsilon \(eps), not \(onnxBatchNormEps)")
        }
        for (suffix, name) in zip(["weight", "bias", "running_mean", "running_var"], bn.inputs[1...4]) {
            sd["features.layers.3.\(suffix)"] = try g.tensor(name, family)
        }
        guard linears.count <= 2 else { throw fail("\(linears.count) linear layers after the GDC, expected the embedding and fc") }
        if linears.count == 2, let fc = linears.last {
            let (w, b) = try g.linear(fc, family)
            sd["fc.weight"] = w
            if let b { sd["fc.bias"] = b }
        }
        return sd
    }
}
