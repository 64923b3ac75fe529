import AffectKernels
import CBLAS

/// One layer as a model (arch `layer`): what `Tools/bench_peers.py --ops` times against ONNX Runtime and
/// PyTorch, and the raw `cblas_sgemm` ceiling for the same matrix shape.
///
/// Config: `op` = `conv2d` (weight OIHW, `stride`, `padding`, `groups`; input NCHW), `linear` (weight
/// `[out, in]`; input `[N, L, in]`) or `cblas_sgemm` (the linear layer's product through OpenBLAS with its
/// own threads, no bias: the ceiling), and `bench_shape` (input shape for `affect bench`). A conv2d with
/// `layout` = `nhwc` takes and returns NHWC tensors, so a benchmark times the convolution alone.
public struct SingleLayer: InferenceModel {
    public let arch = "layer"
    enum Op { case conv(Conv2D), linear(Linear), cblas(Tensor) }
    let op: Op
    let benchShape: [Int]
    /// conv2d input and output are NHWC (no layout conversion around the layer).
    let nhwc: Bool

    public init(weights w: WeightFile) throws {
        try w.require(arch: "layer")
        let kind = try w.configString("op")
        benchShape = try w.configInts("bench_shape", default: [])
        nhwc = try w.configString("layout", default: "nchw") == "nhwc"
        let weight = try w.tensor("weight")
        switch kind {
        case "conv2d":
            guard weight.rank == 4 else { throw AffectError.badInput("\(w.path): tensor `weight` must be 4-D for conv2d.") }
            let s = try w.configInt("stride", default: 1), p = try w.configInt("padding", default: 0)
            op = .conv(Conv2D(weight: weight, bias: try w.optionalTensor("bias", shape: [weight.shape[0]]), stride: (s, s),
                              padding: .symmetric(p), groups: try w.configInt("groups", default: 1)))
        case "linear":
            guard weight.rank == 2 else { throw AffectError.badInput("\(w.path): tensor `weight` must be 2-D for linear.") }
            op = .linear(Linear(weight: weight, bias: try w.optionalTensor("bias", shape: [weight.shape[0]])))
        case "cblas_sgemm":
            guard weight.rank == 2 else { throw AffectError.badInput("\(w.path): tensor `weight` must be 2-D for cblas_sgemm.") }
            op = .cblas(weight)
        default:
            throw AffectError.badInput("\(w.path): config `op` is `\(kind)`, expected conv2d, linear or cblas_sgemm.")
        }
    }

    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        let x = try inputs.float("input", source: source)
        switch op {
        case .conv(let c):
            guard x.rank == 4, x.shape[nhwc ? 3 : 1] == c.inChannels else {
                let expected = nhwc ? "N×H×W×\(c.inChannels)" : "N×\(c.inChannels)×H×W"
                throw AffectError.badInput("\(source): `input.input` has shape \(x.shape), expected \(expected).")
            }
            return ["output": nhwc ? c(x) : c(x.nchwToNHWC()).nhwcToNCHW()]
        case .linear(let l):
            guard x.shape.last == l.inFeatures else {
                throw AffectError.badInput("\(source): `input.input` has shape \(x.shape), expected last axis \(l.inFeatures).")
            }
            return ["output": l(x)]
        case .cblas(let w):
            let (o, i) = (w.shape[0], w.shape[1])
            guard x.shape.last == i else { throw AffectError.badInput("\(source): `input.input` last axis must be \(i).") }
            let rows = x.count / i
            let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [o])
            openblas_set_num_threads(Int32(Threading.threads))
            defer { openblas_set_num_threads(1) }
            sgemmBlock(m: rows, n: o, k: i, a: x.data, lda: i, b: w.data, ldb: i, bTransposed: true, c: out.data, ldc: o)
            return ["output": out]
        }
    }

    public func benchInputs(_ shape: BenchShape) -> ModelInputs {
        var s = benchShape
        if s.isEmpty {
            switch op {
            case .conv(let c): s = nhwc ? [1, 56, 56, c.inChannels] : [1, c.inChannels, 56, 56]
            case .linear(let l): s = [1, shape.tokens, l.inFeatures]
            case .cblas(let w): s = [1, shape.tokens, w.shape[1]]
            }
        }
        s[0] = shape.batch
        return ModelInputs(floats: ["input": Tensor.filled(s, with: 0.1)])
    }

    public func flops(_ inputs: ModelInputs) -> Double? {
        guard let x = inputs.floats["input"] else { return nil }
        switch op {
        case .conv(let c):
            let o = nhwc ? c.outputSize(height: x.shape[1], width: x.shape[2]) : c.outputSize(height: x.shape[2], width: x.shape[3])
            return 2 * Double(x.shape[0] * o.h * o.w * c.outChannels * c.kernel.h * c.kernel.w * (c.inChannels / c.groups))
        case .linear(let l): return 2 * Double(x.count / l.inFeatures * l.inFeatures * l.outFeatures)
        case .cblas(let w): return 2 * Double(x.count / w.shape[1] * w.count)
        }
    }
}
