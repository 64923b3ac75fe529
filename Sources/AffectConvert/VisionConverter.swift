import Foundation
import AffectKernels

/// EmotiEffLib / timm facial backbones (EfficientNet, MobileViT, MobileFaceNet) from whole pickled modules,
/// state dicts or ONNX exports, and facenet-pytorch's MTCNN folder (Tools/converters/vision.py,
/// mobilevit.py, mobilefacenet.py, mtcnn.py).
enum VisionConverter {
    static let expr8 = ["Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
    static let expr7 = ["Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness", "Surprise"]
    static let imagenet: [(String, JSON)] = [("mean", .array([.double(0.485), .double(0.456), .double(0.406)])),
                                             ("std", .array([.double(0.229), .double(0.224), .double(0.225)]))]

    static func labelsFor(_ n: Int?) -> [String]? {
        switch n {
        case 7?: return expr7
        case 8?: return expr8
        case 10?: return expr8 + ["Valence", "Arousal"]
        default: return nil
        }
    }

    static func isCheckpointFile(_ source: String) -> Bool {
        !isDirectory(source) && [".pt", ".pth", ".onnx"].contains(where: { source.hasSuffix($0) })
    }

    static func readStateDict(_ source: String) throws(AffectError) -> StateDict {
        source.hasSuffix(".onnx") ? try OnnxVision.stateDict(source) : try TorchCheckpoint.stateDict(source)
    }

    static func arch(of sd: StateDict) -> String? {
        if sd.contains("conv_stem.weight") { return "efficientnet" }
        if sd.names.contains(where: { $0.hasPrefix("stages.") }), sd.names.contains(where: { $0.contains(".transformer.") }) {
            return "mobilevit"
        }
        if sd.contains("conv_sep.layers.0.weight"), sd.contains("features.layers.0.layers.0.weight") { return "mobilefacenet" }
        return nil
    }

    static func detect(_ source: String) -> String? {
        guard isCheckpointFile(source), let sd = try? readStateDict(source) else { return nil }
        return arch(of: sd)
    }

    /// The first dimension of a tensor, or an error naming what the architecture needs.
    static func rows(_ sd: StateDict, _ name: String, _ source: String, _ arch: String) throws(AffectError) -> Int {
        guard let t = sd[name], let n = t.shape.first else {
            throw .badInput("\(source): tensor `\(name)` is missing or has no dimensions (arch \(arch)).")
        }
        return n
    }

    static func convert(_ source: String, arch: String, options: ConvertOptions) throws(AffectError) -> ConvertedModel {
        let sd = try readStateDict(source)
        let src = "\((source as NSString).lastPathComponent) sha256=\(try SHA256.file(source))"
        let pre: (Int) -> [(String, JSON)] = { size in
            [("input_size", .int(size)), ("color", .string("RGB")), ("resize", .string("bilinear_antialias")), ("layout", .string("NCHW"))]
        }
        switch arch {
        case "efficientnet":
            let head = try rows(sd, "conv_head.weight", source, arch)
            let size = [1280: 224, 1408: 260, 1536: 288][head] ?? 224
            let n = ["classifier.weight", "classifier.0.weight", "head.fc.weight", "fc.weight", "fc.0.weight"]
                .first(where: { sd.contains($0) }).flatMap { sd[$0]?.shape.first }
            let config = JSON.object([
                ("timm_model", .string(head == 1280 ? "tf_efficientnet_b0_ns" : "tf_efficientnet_b2_ns")),
                ("bn_eps", .double(1e-3)), ("pad_type", .string(options.padType ?? "same")),
                ("stage_strides", .array([1, 2, 2, 2, 1, 2, 1].map(JSON.int))), ("input_size", .int(size)),
                ("num_classes", .int(n ?? 0)),
            ])
            return ConvertedModel(arch: arch, tensors: sd, config: config, labels: options.labels ?? labelsFor(n),
                                  preprocess: .object(pre(size) + imagenet), source: src, tokenizer: nil)
        case "mobilevit":
            let width = try rows(sd, "final_conv.conv.weight", source, arch)
            let variant = [320: "mobilevit_xxs", 384: "mobilevit_xs", 640: "mobilevit_s"][width] ?? "mobilevit"
            let n = sd["head.fc.weight"]?.shape.first ?? 0
            let config = JSON.object([
                ("timm_model", .string(variant)), ("bn_eps", .double(1e-5)), ("ln_eps", .double(1e-5)), ("num_heads", .int(4)),
                ("patch_size", .int(2)), ("stage_strides", .array([1, 2, 2, 2, 2].map(JSON.int))), ("input_size", .int(224)),
                ("num_classes", .int(n)),
            ])
            return ConvertedModel(arch: arch, tensors: sd, config: config, labels: options.labels ?? labelsFor(n),
                                  preprocess: .object(pre(224) + imagenet), source: src, tokenizer: nil)
        case "mobilefacenet":
            let n = sd["fc.weight"]?.shape.first ?? 0
            let config = JSON.object([
                ("model", .string("mobilefacenet")), ("bn_eps", .double(1e-5)), ("input_size", .int(112)), ("num_classes", .int(n)),
                ("embedding_size", .int(try rows(sd, "features.layers.2.weight", source, arch))),
            ])
            let half = JSON.array([.double(0.5), .double(0.5), .double(0.5)])
            return ConvertedModel(arch: arch, tensors: sd, config: config, labels: options.labels ?? labelsFor(n),
                                  preprocess: .object(pre(112) + [("mean", half), ("std", half)]), source: src, tokenizer: nil)
        default:
            throw .badInput("\(source): `affect convert` has no \(arch) converter.")
        }
    }

    /// facenet-pytorch's folder of `pnet.pt`, `rnet.pt`, `onet.pt` → tensors `pnet.*`, `rnet.*`, `onet.*`.
    static func convertMTCNN(_ source: String) throws(AffectError) -> ConvertedModel {
        var tensors = StateDict()
        var sources: [String] = []
        for net in ["pnet", "rnet", "onet"] {
            let path = HFFolder.path(source, "\(net).pt")
            let sd = try TorchCheckpoint.stateDict(path)
            for k in sd.names { tensors["\(net).\(k)"] = sd[k] }
            sources.append("\(net).pt sha256=\(try SHA256.file(path))")
        }
        let config = JSON.object([("model", .string("facenet-pytorch MTCNN")),
                                  ("thresholds", .array([.double(0.6), .double(0.7), .double(0.7)])),
                                  ("factor", .double(0.709)), ("min_face_size", .int(20))])
        let pre = JSON.object([("color", .string("RGB")), ("scale", .string("(x - 127.5) * 0.0078125")), ("resize", .string("area"))])
        return ConvertedModel(arch: "mtcnn", tensors: tensors, config: config, labels: nil, preprocess: pre,
                              source: "facenet-pytorch 2.6.0: " + sources.joined(separator: ", "), tokenizer: nil)
    }
}
