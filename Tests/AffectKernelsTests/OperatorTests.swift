import Foundation
import Testing
import AffectKernels

/// Every operator against PyTorch (Tests/Fixtures/ops, made by `Tools/make_reference.py ops`): max |ours − torch|
/// within 1e-5 of the reference's max magnitude. Files hold PyTorch layouts; our kernels take channels-last.
@Suite struct OperatorTests {
    static let file: SafeTensorsFile = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/ops/ops.safetensors").path
        return try! SafeTensorsFile(path: path)
    }()

    static var cases: [[String: Any]] {
        let json = file.metadata["affect.cases"] ?? "[]"
        return (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [[String: Any]] ?? []
    }

    static var caseNames: [String] { cases.map { $0["name"] as! String } }

    func t(_ name: String, _ role: String) throws -> Tensor { try Self.file.tensor("\(name).\(role)") }

    func expectClose(_ ours: Tensor, _ ref: Tensor, _ name: String, tolerance: Float = 1e-5) {
        #expect(ours.shape == ref.shape, "\(name): shape \(ours.shape) vs \(ref.shape)")
        guard ours.shape == ref.shape else { return }
        var maxErr: Float = 0, maxRef: Float = 0
        for i in 0..<ref.count {
            maxErr = max(maxErr, abs(ours.data[i] - ref.data[i]))
            maxRef = max(maxRef, abs(ref.data[i]))
        }
        #expect(maxErr <= tolerance * max(maxRef, 1e-12), "\(name): max error \(maxErr) vs max |ref| \(maxRef)")
    }

    func act(_ name: String) -> Activation {
        switch name {
        case "relu": return .relu
        case "relu6": return .relu6
        case "silu": return .silu
        case "gelu": return .gelu
        case "sigmoid": return .sigmoid
        case "tanh": return .tanh
        case "hardswish": return .hardSwish
        default: return .none
        }
    }

    @Test func fixtureHasEveryOperator() {
        let ops = Set(Self.cases.compactMap { $0["op"] as? String })
        for op in ["conv2d", "conv_bn", "conv1d", "linear", "layernorm", "groupnorm", "activation", "prelu", "softmax",
                   "maxpool", "avgpool", "globalavgpool", "add", "mul", "concat", "se", "attention", "resize"] {
            #expect(ops.contains(op), "no case for \(op)")
        }
    }

    @Test(arguments: OperatorTests.caseNames)
    func matchesPyTorch(_ name: String) throws {
        let c = Self.cases.first { $0["name"] as? String == name }!
        let op = c["op"] as! String
        let ref = try t(name, "output")
        func int(_ k: String) -> Int { (c[k] as? NSNumber)?.intValue ?? 0 }
        switch op {
        case "conv2d":
            let w = try t(name, "weight")
            let bias = try? t(name, "bias")
            let padding: Padding = (c["padding"] as? String) == "same" ? .tfSame : .symmetric(int("padding"))
            let conv = Conv2D(weight: w, bias: bias, stride: (int("stride"), int("stride")), padding: padding,
                              dilation: (int("dilation"), int("dilation")), groups: int("groups"),
                              activation: act(c["activation"] as? String ?? "none"))
            expectClose(conv(try t(name, "input").nchwToNHWC()).nhwcToNCHW(), ref, name)
        case "conv_bn":
            let bn = BatchNorm(gamma: try t(name, "bn_weight"), beta: try t(name, "bn_bias"), mean: try t(name, "bn_mean"),
                               variance: try t(name, "bn_var"), eps: Float((c["eps"] as! NSNumber).doubleValue))
            let conv = Conv2D(weight: try t(name, "weight"), bias: try t(name, "bias"), batchNorm: bn, padding: .symmetric(1))
            expectClose(conv(try t(name, "input").nchwToNHWC()).nhwcToNCHW(), ref, name)
            // The same BatchNorm applied on its own after an unfolded conv.
            let plain = Conv2D(weight: try t(name, "weight"), bias: try t(name, "bias"), padding: .symmetric(1))
            expectClose(bn(plain(try t(name, "input").nchwToNHWC())).nhwcToNCHW(), ref, name + " (unfolded)")
        case "conv1d":
            let conv = Conv1D(weight: try t(name, "weight"), bias: try? t(name, "bias"), stride: int("stride"),
                              padding: int("padding"), groups: int("groups"))
            expectClose(conv(try t(name, "input").permuted([0, 2, 1])).permuted([0, 2, 1]), ref, name)
            // The packed-GEMM forms wav2vec2 uses: strided unpadded layers, and the grouped positional conv.
            if int("padding") == 0 && int("groups") == 1 {
                let strided = StridedConv1D(weight: try t(name, "weight"), bias: try? t(name, "bias"), stride: int("stride"))
                expectClose(strided(try t(name, "input").permuted([0, 2, 1])).permuted([0, 2, 1]), ref, name + " (StridedConv1D)")
            }
            if int("stride") == 1 {
                let grouped = GroupedConv1D(weight: try t(name, "weight"), bias: try? t(name, "bias"), padding: int("padding"),
                                            groups: int("groups"))
                expectClose(grouped(try t(name, "input").permuted([0, 2, 1])).permuted([0, 2, 1]), ref, name + " (GroupedConv1D)")
            }
        case "linear":
            expectClose(Linear(weight: try t(name, "weight"), bias: try t(name, "bias"))(try t(name, "input")), ref, name)
        case "layernorm":
            let ln = LayerNorm(weight: try t(name, "weight"), bias: try t(name, "bias"), eps: Float((c["eps"] as! NSNumber).doubleValue))
            expectClose(ln(try t(name, "input")), ref, name)
        case "groupnorm":
            let gn = GroupNorm(groups: int("groups"), weight: try t(name, "weight"), bias: try t(name, "bias"),
                               eps: Float((c["eps"] as! NSNumber).doubleValue))
            expectClose(gn(try t(name, "input").nchwToNHWC()).nhwcToNCHW(), ref, name)
        case "activation":
            // Channels-last view so the same values pass through; element order is restored after.
            let x = try t(name, "input")
            expectClose(activation(x, act(c["activation"] as! String)), ref, name)
        case "prelu":
            let slopes = try t(name, "weight").array
            let x = try t(name, "input").permuted([0, 2, 1])
            expectClose(activation(x, .prelu(slopes)).permuted([0, 2, 1]), ref, name)
        case "softmax":
            expectClose(softmax(try t(name, "input")), ref, name)
        case "maxpool", "avgpool":
            let k = int("kernel"), s = int("stride"), p = int("padding")
            let ceil = (c["ceil"] as? Bool) ?? false
            let x = try t(name, "input").nchwToNHWC()
            let y = op == "maxpool"
                ? maxPool2d(x, kernel: (k, k), stride: (s, s), padding: .symmetric(p), ceilMode: ceil)
                : avgPool2d(x, kernel: (k, k), stride: (s, s), padding: .symmetric(p), ceilMode: ceil,
                            countIncludePad: (c["count_include_pad"] as? Bool) ?? true)
            expectClose(y.nhwcToNCHW(), ref, name)
        case "globalavgpool":
            expectClose(globalAveragePool(try t(name, "input").nchwToNHWC()), ref, name)
        case "add":
            expectClose(add(try t(name, "a"), try t(name, "b")), ref, name)
        case "mul":
            expectClose(mul(try t(name, "a"), try t(name, "b")), ref, name)
        case "concat":
            expectClose(concat([try t(name, "a"), try t(name, "b")], axis: int("axis")), ref, name)
        case "se":
            let se = SqueezeExcite(reduceWeight: try t(name, "reduce_weight"), reduceBias: try t(name, "reduce_bias"),
                                   expandWeight: try t(name, "expand_weight"), expandBias: try t(name, "expand_bias"))
            expectClose(se(try t(name, "input").nchwToNHWC()).nhwcToNCHW(), ref, name)
        case "attention":
            let y = attention(q: try t(name, "q"), k: try t(name, "k"), v: try t(name, "v"), heads: int("heads"),
                              keyMask: try t(name, "mask").array)
            expectClose(y, ref, name)
        case "resize":
            let method: ResizeMethod = switch c["method"] as! String {
            case "bilinear": .bilinear
            case "bilinear_antialias": .bilinearAntialias
            default: .area
            }
            let x = try t(name, "input").item(0).permuted([1, 2, 0])
            let y = resize(x, height: ref.shape[2], width: ref.shape[3], method: method)
            expectClose(y.permuted([2, 0, 1]).reshaped(ref.shape), ref, name)
        default:
            Issue.record("unknown op \(op)")
        }
    }
}
