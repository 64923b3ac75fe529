import Foundation
import AffectKernels

/// timm EfficientNet names from an EmotiEffLib ONNX export (`enet_b0_*`, `enet_b2_*`), as
/// Tools/converters/onnx_vision.py `efficientnet` recovers them.
///
/// Conv nodes appear in forward order: the first is `conv_stem`; a block opens with a depthwise conv
/// (depthwise-separable block, stage 0) or a 1×1 conv (inverted residual); a squeeze-excitation pair is recognised
/// by its input coming from a global average (ReduceMean / GlobalAveragePool); the last conv is `conv_head`; a
/// block that cannot keep its input (stride 2 or new width) opens a new stage. Folded convolutions keep their
/// `.bias` and get no BatchNorm tensors (the EfficientNet loader then skips folding).
enum OnnxEfficientNet {
    static let family = "an EfficientNet"

    static func stateDict(_ g: OnnxWalk) throws(AffectError) -> StateDict {
        func fail(_ why: String) -> AffectError { g.error(family, why) }
        func fromGlobalPool(_ name: String, _ depth: Int) -> Bool {
            guard let i = g.producer[name], depth <= 3, let n = g.node(i) else { return false }
            if n.opType == "ReduceMean" || n.opType == "GlobalAveragePool" { return true }
            return n.inputs.contains { g.producer[$0] != nil && fromGlobalPool($0, depth + 1) }
        }
        let convs = try g.convs(family)
        let se = convs.map { fromGlobalPool($0.input, 0) }
        guard let first = convs.first, first.weight.shape.count >= 2, first.weight.shape[1] == 3 else {
            throw fail("first Conv does not take 3 channels")
        }
        var sd = StateDict()
        func put(_ name: String, _ c: OnnxConv) {
            sd[name + ".weight"] = c.weight
            if let b = c.bias { sd[name + ".bias"] = b }
        }
        func conv(_ i: Int) throws(AffectError) -> OnnxConv {
            guard i < convs.count else { throw fail("the convolutions end inside a block") }
            return convs[i]
        }
        func isSE(_ i: Int) throws(AffectError) -> Bool {
            guard i < se.count else { throw fail("the convolutions end inside a block") }
            return se[i]
        }
        func outChannels(_ c: OnnxConv) throws(AffectError) -> Int {
            guard let o = c.weight.shape.first else { throw fail("a Conv weight without dimensions") }
            return o
        }
        put("conv_stem", first)
        var (i, stage, idx, channels) = (1, -1, 0, try outChannels(first))
        while i < convs.count - 1 {
            var block: [(String, OnnxConv)] = []
            let c = convs[i]
            let out: Int, stride: Int64
            if c.group > 1 {  // depthwise-separable
                block.append(("conv_dw", c)); i += 1
                if try isSE(i) { block += [("se.conv_reduce", try conv(i)), ("se.conv_expand", try conv(i + 1))]; i += 2 }
                let pw = try conv(i); i += 1
                block.append(("conv_pw", pw))
                (out, stride) = (try outChannels(pw), c.stride)
            } else {  // inverted residual
                let dw = try conv(i + 1)
                block += [("conv_pw", c), ("conv_dw", dw)]; i += 2
                if try isSE(i) { block += [("se.conv_reduce", try conv(i)), ("se.conv_expand", try conv(i + 1))]; i += 2 }
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
                guard n.inputs.count >= 2 else { throw fail("a Gemm without weights") }
                let w = try g.tensor(n.inputs[1], family)
                sd["classifier.weight"] = n.int("transB", default: 0) != 0 ? w : w.transposed2D()
                if n.inputs.count > 2 { sd["classifier.bias"] = try g.tensor(n.inputs[2], family) }
            } else if g.isWeightMatMul(n), !sd.contains("classifier.weight") {
                sd["classifier.weight"] = try g.tensor(n.inputs[1], family).transposed2D()
                guard let o = n.outputs.first else { continue }
                for a in g.nodes where a.opType == "Add" && a.inputs.contains(o) {
                    guard let other = a.inputs.first(where: { $0 != o }) else { throw fail("an Add of the MatMul with itself") }
                    if g.inits[other] != nil { sd["classifier.bias"] = try g.tensor(other, family) }
                }
            }
        }
        return sd
    }
}
