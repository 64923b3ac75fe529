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
        // Bench inputs are allocated from this shape: each side and the total stay bounded.
        benchShape = try w.configInts("bench_shape", default: [], in: 1 ... 1 << 16, count: 0 ... 6)
        guard benchShape.reduce(1.0, { $0 * Double($1) }) <= Double(1 << 28) else {
            throw w.problem("config `bench_shape` \(benchShape) holds more than 2^28 values.")
        }
        nhwc = try w.configString("layout", default: "nchw") == "nhwc"
        switch kind {
        case "conv2d":
            let weight = try w.convWeight("weight")
            let s = try w.configInt("stride", default: 1, in: WeightFile.Limits.stride)
            let p = try w.configInt("padding", default: 0, in: 0 ... WeightFile.Limits.kernel.upperBound)
            let groups = try w.configInt("groups", default: 1, in: 1 ... Int.max)
            guard weight.shape[0] % groups == 0 else {
                throw w.problem("config `groups` is \(groups), which does not divide the \(weight.shape[0]) outputs of tensor `weight`.")
            }
            if benchShape.count > 0 && benchShape.count != 4 {
                throw w.problem("config `bench_shape` \(benchShape) is not a 4-D image shape for conv2d.")
            }
            op = .conv(Conv2D(weight: weight, bias: try w.optionalTensor("bias", shape: [weight.shape[0]]), stride: (s, s),
                              padding: .symmetric(p), groups: groups))
        case "linear":
            op = .linear(try w.linear("", in: -1, bias: .optional))
        case "cblas_sgemm":
            op = .cblas(try w.tensor("weight", shape: [-1, -1]))
        default:
            throw AffectError.badInput("\(w.path): config `op` is `\(kind)`, expected conv2d, linear or cblas_sgemm.")
        }
    }

    public func run(_ inputs: ModelInputs, source: String) throws -> [String: Tensor] {
        let x = try inputs.float("input", source: source)
        switch op {
        case .conv(let c):
            let (h, wd) = x.rank == 4 ? (nhwc ? (x.shape[1], x.shape[2]) : (x.shape[2], x.shape[3])) : (0, 0)
            let o = c.outputSize(height: h, width: wd)
            guard x.rank == 4, x.shape[0] > 0, x.shape[nhwc ? 3 : 1] == c.inChannels, o.h > 0, o.w > 0 else {
                let expected = nhwc ? "N×H×W×\(c.inChannels)" : "N×\(c.inChannels)×H×W"
                throw AffectError.badInput("\(source): `input.input` has shape \(x.shape), expected \(expected) with N ≥ 1 and H, W at least the kernel.")
            }
            return ["output": nhwc ? c(x) : c(x.nchwToNHWC()).nhwcToNCHW()]
        case .linear(let l):
            guard x.rank >= 2, x.shape.last == l.inFeatures else {
                throw AffectError.badInput("\(source): `input.input` has shape \(x.shape), expected last axis \(l.inFeatures).")
            }
            return ["output": l(x)]
        case .cblas(let w):
            let (o, i) = (w.shape[0], w.shape[1])
            guard x.rank >= 2, x.shape.last == i else { throw AffectError.badInput("\(source): `input.input` last axis must be \(i).") }
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
