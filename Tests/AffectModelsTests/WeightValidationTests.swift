import Foundation
import Testing
import AffectKernels
import AffectModels
import AffectTestSupport

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures").path
private let weightsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Weights").path

/// A committed safetensors file taken apart (header JSON + raw data) so a test can change one tensor's shape or
/// values, or one metadata key, and write it back as a new file. Tensors keep their dtype and bytes unless
/// replaced (replacements are F32).
struct SafeTensorsRewrite {
    var metadata: [String: String]
    var tensors: [(name: String, dtype: String, shape: [Int], bytes: Data)]
    let source: String

    init(_ path: String) throws {
        source = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }.littleEndian)
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
        metadata = header["__metadata__"] as? [String: String] ?? [:]
        tensors = header.filter { $0.key != "__metadata__" }.map { name, v in
            let e = v as! [String: Any], offsets = e["data_offsets"] as! [Int]
            return (name, e["dtype"] as! String, e["shape"] as! [Int], data.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1])))
        }.sorted { $0.name < $1.name }
    }

    private func index(_ name: String) -> Int {
        guard let i = tensors.firstIndex(where: { $0.name == name }) else { fatalError("fixture has no tensor \(name)") }
        return i
    }

    /// Replaces `name` by an F32 tensor of `shape` filled with `value`.
    mutating func reshape(_ name: String, to shape: [Int], fill value: Float = 0.01) {
        let floats = [Float](repeating: value, count: shape.reduce(1, *))
        tensors[index(name)] = (name, "F32", shape, floats.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    /// Sets element `i` of the F32 tensor `name`.
    mutating func set(_ name: String, at i: Int, to value: Float) {
        let k = index(name)
        precondition(tensors[k].dtype == "F32")
        var bits = value.bitPattern.littleEndian
        tensors[k].bytes.replaceSubrange((4 * i)..<(4 * i + 4), with: Data(bytes: &bits, count: 4))
    }

    /// Multiplies every element of the F32 tensor `name` by `factor` and adds `offset`.
    mutating func scale(_ name: String, by factor: Float, plus offset: Float = 0) {
        let k = index(name)
        let values = tensors[k].bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }.map { $0 * factor + offset }
        tensors[k].bytes = values.withUnsafeBufferPointer { Data(buffer: $0) }
    }

    mutating func drop(_ name: String) { tensors.remove(at: index(name)) }

    /// Edits the JSON object held by metadata `key` (`affect.config`, `affect.preprocess`).
    mutating func json(_ key: String, _ edit: (inout [String: Any]) -> Void) throws {
        var object = try JSONSerialization.jsonObject(with: Data((metadata[key] ?? "{}").utf8)) as! [String: Any]
        edit(&object)
        metadata[key] = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }
    mutating func config(_ edit: (inout [String: Any]) -> Void) throws { try json("affect.config", edit) }
    mutating func preprocess(_ edit: (inout [String: Any]) -> Void) throws { try json("affect.preprocess", edit) }
    mutating func labels(_ l: [String]) throws {
        metadata["affect.labels"] = String(decoding: try JSONSerialization.data(withJSONObject: l), as: UTF8.self)
    }

    /// Writes the file to the temporary folder as `<source>-<tag>.safetensors`.
    func write(_ tag: String) throws -> String {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for t in tensors {
            header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]] as [String: Any]
            offset += t.bytes.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var n = UInt64(json.count).littleEndian
        out.append(Data(bytes: &n, count: 8))
        out.append(json)
        for t in tensors { out.append(t.bytes) }
        let path = Scratch.path("wv-\(source)-\(tag).safetensors")
        try out.write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// Expects `body` to throw ``AffectError/badInput(_:)`` whose message names `path` and every string in
/// `mentions` (the tensor or config key, and expected / found values).
private func expectBadInput(_ path: String, mentioning mentions: [String], sourceLocation: SourceLocation = #_sourceLocation,
                            _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("accepted \(path); expected an error mentioning \(mentions)", sourceLocation: sourceLocation)
    } catch AffectError.badInput(let message) {
        #expect(message.contains(path), "message does not name the file: \(message)", sourceLocation: sourceLocation)
        for m in mentions {
            #expect(message.contains(m), "message does not mention `\(m)`: \(message)", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
}

/// Rewrites the fixture at `path` with `edit`, then expects loading it to fail naming the file and `mentions`.
private func expectRejected(_ path: String, _ tag: String, mentioning mentions: [String],
                            sourceLocation: SourceLocation = #_sourceLocation,
                            _ edit: (inout SafeTensorsRewrite) throws -> Void) throws {
    var file = try SafeTensorsRewrite(path)
    try edit(&file)
    let bad = try file.write(tag)
    defer { try? FileManager.default.removeItem(atPath: bad) }
    expectBadInput(bad, mentioning: mentions, sourceLocation: sourceLocation) { _ = try ModelLoader.load(bad) }
}

private let mtcnn = "\(weightsFolder)/mtcnn.safetensors"
private let miniXception = "\(weightsFolder)/mini_xception.safetensors"
private let efficientNet = "\(fixtures)/models/efficientnet_tiny.safetensors"
private let mobileFaceNet = "\(fixtures)/models/mobilefacenet_tiny.safetensors"
private let mobileViT = "\(fixtures)/models/mobilevit_tiny.safetensors"
private let wav2vec2 = "\(fixtures)/audio/wav2vec2_tiny.safetensors"
private let hubert = "\(fixtures)/audio/hubert_tiny.safetensors"
private let roberta = "\(fixtures)/text/tiny_roberta_go.safetensors"
private let head = "\(fixtures)/fusion/head_torch.safetensors"

/// Issue 16, part 1: every shape and config number of a weight file is checked at load against what the forward
/// pass indexes, and every input of `run`; a bad file is a `badInput` naming the file, the tensor or key, and
/// what was expected and found.
@Suite struct WeightValidationTests {
    @Test(arguments: [mtcnn, miniXception, efficientNet, mobileFaceNet, mobileViT, wav2vec2, hubert, roberta, head])
    func goodFilesStillLoad(_ path: String) throws {
        _ = try ModelLoader.load(path)
        // A rewrite that changes nothing loads too (the helper writes valid files).
        let copy = try SafeTensorsRewrite(path).write("unchanged")
        defer { try? FileManager.default.removeItem(atPath: copy) }
        _ = try ModelLoader.load(copy)
    }

    // MARK: MTCNN

    /// A 1×1 R-Net conv would leave a 4×4 map for a dense layer sized for 3×3 (a heap write past the features).
    @Test func mtcnnKernelsAreTheArchitecture() throws {
        try expectRejected(mtcnn, "k1", mentioning: ["rnet.conv3.weight", "[64, 48, 1, 1]", "2, 2]"]) {
            $0.reshape("rnet.conv3.weight", to: [64, 48, 1, 1])
        }
        try expectRejected(mtcnn, "pk5", mentioning: ["pnet.conv1.weight", "[10, 3, 5, 5]"]) {
            $0.reshape("pnet.conv1.weight", to: [10, 3, 5, 5])
        }
    }

    /// Heads narrower than what detection reads (2 scores, 4 offsets, 10 landmark coordinates).
    @Test func mtcnnHeadsHaveTheirWidths() throws {
        try expectRejected(mtcnn, "short", mentioning: ["onet.dense6_3.weight", "[5, 256]", "[10, 256]"]) {
            $0.reshape("onet.dense6_3.weight", to: [5, 256]); $0.reshape("onet.dense6_3.bias", to: [5])
        }
        try expectRejected(mtcnn, "cls1", mentioning: ["rnet.dense5_1.weight"]) {
            $0.reshape("rnet.dense5_1.weight", to: [1, 128]); $0.reshape("rnet.dense5_1.bias", to: [1])
        }
        // A dense layer that does not read the whole 3×3×64 map.
        try expectRejected(mtcnn, "dense", mentioning: ["rnet.dense4.weight", "576"]) {
            $0.reshape("rnet.dense4.weight", to: [128, 500])
        }
        try expectRejected(mtcnn, "prelu", mentioning: ["onet.prelu5.weight", "[256]"]) {
            $0.reshape("onet.prelu5.weight", to: [200])
        }
    }

    /// Box offsets that overflow to infinity give no face, rather than `Int(nan)` in the crops.
    @Test func mtcnnDropsNonFiniteBoxes() throws {
        for (tag, offset) in [("inf", Float(3e38)), ("huge", 1e30), ("large", 1e6)] {
            var file = try SafeTensorsRewrite(mtcnn)
            // Every 12×12 window a face, with absurd box offsets.
            file.set("pnet.conv4_1.bias", at: 0, to: -100); file.set("pnet.conv4_1.bias", at: 1, to: 100)
            for k in 0..<4 { file.set("pnet.conv4_2.bias", at: k, to: k < 2 ? -offset : offset) }
            file.scale("pnet.conv4_2.weight", by: 1e4)
            let path = try file.write("offsets-\(tag)")
            defer { try? FileManager.default.removeItem(atPath: path) }
            let model = try MTCNN(weights: WeightFile(path: path))
            var pixels = [UInt8](repeating: 0, count: 80 * 64 * 3)
            for i in pixels.indices { pixels[i] = UInt8((i * 7) % 251) }
            let faces = model.detect(RGBImage(width: 80, height: 64, pixels: pixels))
            #expect(faces.allSatisfy { $0.isFinite }, "\(tag): \(faces.count) faces")
        }
    }

    // MARK: Labels

    @Test func labelsMustMatchTheClassifier() throws {
        let eight = ["a", "b", "c", "d", "e", "f", "g", "h"]
        try expectRejected(miniXception, "labels8", mentioning: ["affect.labels", "8", "7"]) { try $0.labels(eight) }
        try expectRejected(miniXception, "labels6", mentioning: ["affect.labels", "6"]) { try $0.labels(Array(eight.prefix(6))) }
        try expectRejected(efficientNet, "labels", mentioning: ["affect.labels", "classifier.weight"]) { try $0.labels(eight) }
        try expectRejected(mobileFaceNet, "labels", mentioning: ["affect.labels", "fc.weight"]) { try $0.labels(eight) }
        try expectRejected(mobileViT, "labels", mentioning: ["affect.labels", "head.fc.weight"]) { try $0.labels(eight) }
        try expectRejected(roberta, "labels", mentioning: ["affect.labels", "classifier.out_proj.weight"]) { try $0.labels(eight) }
        try expectRejected(wav2vec2, "labels", mentioning: ["affect.labels", "lm_head.weight"]) { try $0.labels(eight) }
        try expectRejected(head, "labels", mentioning: ["affect.labels", "3", "8"]) { try $0.labels(["x", "y", "z"]) }
        // Valence and arousal with no expression class before them.
        var f = try SafeTensorsRewrite(mobileFaceNet)
        f.reshape("fc.weight", to: [2, 512]); f.reshape("fc.bias", to: [2])
        try f.labels(["Valence", "Arousal"])
        let path = try f.write("va-only")
        defer { try? FileManager.default.removeItem(atPath: path) }
        expectBadInput(path, mentioning: ["affect.labels"]) { _ = try EmotionRecognizer(weights: WeightFile(path: path)) }
    }

    // MARK: Values

    @Test func nonFiniteWeightsAreRejected() throws {
        try expectRejected(miniXception, "nan", mentioning: ["conv2d_1/kernel", "nan", "index 5"]) {
            $0.set("conv2d_1/kernel", at: 5, to: .nan)
        }
        try expectRejected(mtcnn, "inf", mentioning: ["onet.dense5.weight", "inf"]) {
            $0.set("onet.dense5.weight", at: 4000, to: .infinity)
        }
        try expectRejected(roberta, "ninf", mentioning: ["roberta.embeddings.word_embeddings.weight", "-inf"]) {
            $0.set("roberta.embeddings.word_embeddings.weight", at: 31_999, to: -.infinity)
        }
        // F64 values beyond Float's range become infinite when converted.
        try expectRejected(head, "f64", mentioning: ["2.bias", "inf"]) {
            let i = $0.tensors.firstIndex { $0.name == "2.bias" }!
            let doubles = [Double](repeating: 1e300, count: 8)
            $0.tensors[i] = ("2.bias", "F64", [8], doubles.withUnsafeBufferPointer { Data(buffer: $0) })
        }
        // A negative running variance folds to NaN.
        try expectRejected(efficientNet, "var", mentioning: ["bn1.running_var", "variance"]) {
            $0.set("bn1.running_var", at: 0, to: -1)
        }
        // An empty dimension.
        try expectRejected(mtcnn, "empty", mentioning: ["pnet.conv1.weight", "empty"]) {
            $0.reshape("pnet.conv1.weight", to: [0, 3, 3, 3])
        }
    }

    /// The vectorised scan finds the first NaN or infinity wherever it is (block boundaries, the scalar tail).
    @Test func scanFindsEveryNonFiniteValue() throws {
        for n in [1, 31, 1024, 1025, 5000] {
            for position in Set([0, n / 2, n - 1, min(1023, n - 1), min(1024, n - 1)]) {
                for bad in [Float.nan, .infinity, -.infinity, Float(bitPattern: 0x7FC0_0001)] {
                    var values = [Float](repeating: 1, count: n)
                    values[position] = bad
                    let path = Scratch.path("wv-scan.safetensors")
                    var w = SafeTensorsWriter(metadata: ["affect.arch": "layer", "affect.config": #"{"op": "linear"}"#])
                    w.add("weight", shape: [1, n], floats: values)
                    try w.write(to: path)
                    defer { try? FileManager.default.removeItem(atPath: path) }
                    expectBadInput(path, mentioning: ["`weight`", "index \(position)"]) { _ = try ModelLoader.load(path) }
                }
            }
        }
        // Largest finite values pass.
        let path = Scratch.path("wv-max.safetensors")
        var w = SafeTensorsWriter(metadata: ["affect.arch": "layer", "affect.config": #"{"op": "linear"}"#])
        w.add("weight", shape: [2, 1500], floats: (0..<3000).map { $0 % 2 == 0 ? .greatestFiniteMagnitude : -.greatestFiniteMagnitude })
        try w.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        _ = try ModelLoader.load(path)
    }

    // MARK: Config numbers

    @Test func imageSizesAreBounded() throws {
        for (tag, v) in [("0", 0 as Any), ("neg", -5 as Any), ("1e9", 1e9 as Any), ("frac", 2.5 as Any), ("str", "224" as Any)] {
            try expectRejected(efficientNet, "size\(tag)", mentioning: ["input_size"]) { try $0.config { $0["input_size"] = v } }
            try expectRejected(efficientNet, "pre\(tag)", mentioning: ["input_size"]) { try $0.preprocess { $0["input_size"] = v } }
            try expectRejected(miniXception, "size\(tag)", mentioning: ["input_size"]) { try $0.config { $0["input_size"] = v } }
        }
        // Loads, but the recognizer sizes its crops from the preprocessing: 1e9 would be a 4 TB allocation.
        var f = try SafeTensorsRewrite(efficientNet)
        try f.preprocess { $0["input_size"] = 1e9 }
        let path = try f.write("recognizer")
        defer { try? FileManager.default.removeItem(atPath: path) }
        expectBadInput(path, mentioning: ["input_size", "1000000000"]) { _ = try EmotionRecognizer(weights: WeightFile(path: path)) }
        // MobileFaceNet's GDC reads the whole last map: only sizes that bring it to one pixel work.
        try expectRejected(mobileFaceNet, "size", mentioning: ["input_size", "96"]) { try $0.config { $0["input_size"] = 96 } }
        try expectRejected(mobileFaceNet, "pre", mentioning: ["input_size", "128"]) { try $0.preprocess { $0["input_size"] = 128 } }
        try expectRejected(mobileViT, "size", mentioning: ["input_size", "16"]) { try $0.config { $0["input_size"] = 16 } }
        try expectRejected(mobileViT, "std", mentioning: ["std"]) { try $0.preprocess { $0["std"] = [0.5, 0, 0.5] } }
    }

    @Test func architectureNumbersAreBounded() throws {
        try expectRejected(mobileViT, "heads0", mentioning: ["num_heads", "0"]) { try $0.config { $0["num_heads"] = 0 } }
        try expectRejected(mobileViT, "heads3", mentioning: ["num_heads"]) { try $0.config { $0["num_heads"] = 3 } }
        try expectRejected(mobileViT, "patch0", mentioning: ["patch_size", "0"]) { try $0.config { $0["patch_size"] = 0 } }
        try expectRejected(efficientNet, "stride", mentioning: ["stage_strides[2]", "-2"]) {
            try $0.config { $0["stage_strides"] = [1, 2, -2, 2, 1, 2, 1] }
        }
        try expectRejected(efficientNet, "eps", mentioning: ["bn_eps"]) { try $0.config { $0["bn_eps"] = -1e-3 } }
        try expectRejected(miniXception, "pool", mentioning: ["pool", "1000000000000"]) {
            try $0.config { c in
                var m = c["modules"] as! [[String: Any]]
                m[0]["pool"] = 1e12
                c["modules"] = m
            }
        }
        // A square 3×3 residual conv where the module reads a 1×1.
        try expectRejected(miniXception, "residual", mentioning: ["conv2d_3/kernel"]) {
            $0.reshape("conv2d_3/kernel", to: [3, 3, 8, 16])
        }
        try expectRejected(head, "width", mentioning: ["input_width", "-3"]) { try $0.config { $0["input_width"] = -3 } }
    }

    @Test func audioConfigIsBounded() throws {
        for rate in [0, -16000, 1 << 40] {
            try expectRejected(wav2vec2, "rate\(rate)", mentioning: ["sampling_rate", "\(rate)"]) {
                try $0.preprocess { $0["sampling_rate"] = rate }
            }
        }
        try expectRejected(wav2vec2, "poskernel", mentioning: ["num_conv_pos_embeddings", "-16"]) {
            try $0.config { $0["num_conv_pos_embeddings"] = -16 }
        }
        try expectRejected(hubert, "poskernel0", mentioning: ["num_conv_pos_embeddings", "0"]) {
            try $0.config { $0["num_conv_pos_embeddings"] = 0 }
        }
        try expectRejected(wav2vec2, "hidden0", mentioning: ["hidden_size", "0"]) { try $0.config { $0["hidden_size"] = 0 } }
        try expectRejected(wav2vec2, "groups0", mentioning: ["num_conv_pos_embedding_groups", "0"]) {
            try $0.config { $0["num_conv_pos_embedding_groups"] = 0 }
        }
        try expectRejected(wav2vec2, "stride", mentioning: ["conv_stride", "0"]) {
            try $0.config { $0["conv_stride"] = [5, 2, 2, 0, 2, 2, 2] }
        }
        try expectRejected(wav2vec2, "hop", mentioning: ["conv_stride"]) {
            try $0.config { $0["conv_stride"] = [64, 64, 64, 64, 64, 64, 64] }
        }
        try expectRejected(wav2vec2, "ffn", mentioning: ["intermediate_size", "47", "48"]) {
            try $0.config { $0["intermediate_size"] = 47 }
        }
        try expectRejected(wav2vec2, "blank", mentioning: ["pad_token_id", "-1"]) { try $0.config { $0["pad_token_id"] = -1 } }
        try expectRejected(hubert, "width", mentioning: ["hubert.encoder.layers.1.attention.q_proj.weight", "[16, 16]", "[32, 32]"]) {
            for n in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                $0.reshape("hubert.encoder.layers.1.attention.\(n).weight", to: [16, 16])
                $0.reshape("hubert.encoder.layers.1.attention.\(n).bias", to: [16])
            }
        }
    }

    @Test func textConfigIsBounded() throws {
        try expectRejected(roberta, "pad", mentioning: ["pad_token_id", "-1000"]) { try $0.config { $0["pad_token_id"] = -1000 } }
        try expectRejected(roberta, "padhigh", mentioning: ["pad_token_id", "129"]) { try $0.config { $0["pad_token_id"] = 129 } }
        try expectRejected(roberta, "maxlen", mentioning: ["max_seq_length", "-4"]) { try $0.config { $0["max_seq_length"] = -4 } }
        try expectRejected(roberta, "hidden0", mentioning: ["hidden_size", "0"]) { try $0.config { $0["hidden_size"] = 0 } }
        try expectRejected(roberta, "heads0", mentioning: ["num_attention_heads", "0"]) { try $0.config { $0["num_attention_heads"] = 0 } }
        try expectRejected(roberta, "heads3", mentioning: ["num_attention_heads", "3"]) { try $0.config { $0["num_attention_heads"] = 3 } }
        try expectRejected(roberta, "types", mentioning: ["type_vocab_size", "5"]) { try $0.config { $0["type_vocab_size"] = 5 } }
        try expectRejected(roberta, "layers", mentioning: ["num_hidden_layers", "encoder.layer.1"]) {
            try $0.config { $0["num_hidden_layers"] = 1 }
        }
        try expectRejected(roberta, "eps", mentioning: ["layer_norm_eps"]) { try $0.config { $0["layer_norm_eps"] = 0 } }
        // A layer narrower than the embeddings (TransformerEncoder's forward pass would trap on it).
        try expectRejected(roberta, "width", mentioning: ["roberta.encoder.layer.1.attention.self.query.weight", "[4, 4]", "[8, 8]"]) {
            let p = "roberta.encoder.layer.1"
            for n in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                $0.reshape("\(p).\(n).weight", to: [4, 4]); $0.reshape("\(p).\(n).bias", to: [4])
            }
            for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
                $0.reshape("\(p).\(n).weight", to: [4]); $0.reshape("\(p).\(n).bias", to: [4])
            }
            $0.reshape("\(p).intermediate.dense.weight", to: [16, 4]); $0.reshape("\(p).output.dense.weight", to: [4, 16])
            $0.reshape("\(p).output.dense.bias", to: [4])
        }
        // A position table too short for the pad offset.
        try expectRejected(roberta, "positions", mentioning: ["position_embeddings", "3 rows"]) {
            $0.reshape("roberta.embeddings.position_embeddings.weight", to: [3, 8])
            try $0.config { $0["max_position_embeddings"] = 3 }
        }
    }

    // MARK: run inputs

    @Test func textInputsAreChecked() throws {
        let model = try ModelLoader.load(roberta)
        func run(_ ints: [String: IntTensor]) throws { _ = try model.run(ModelInputs(ints: ints), source: "ref.safetensors") }
        func ids(_ v: [Int64]) -> IntTensor { IntTensor(shape: [1, v.count], values: v) }
        expectBadInput("ref.safetensors", mentioning: ["input_ids", "[1, 0]"]) { try run(["input_ids": IntTensor(shape: [1, 0], values: [])]) }
        expectBadInput("ref.safetensors", mentioning: ["input_ids", "[0, 4]"]) { try run(["input_ids": IntTensor(shape: [0, 4], values: [])]) }
        expectBadInput("ref.safetensors", mentioning: ["input_ids", "4000"]) { try run(["input_ids": ids([0, 4000, 2])]) }
        expectBadInput("ref.safetensors", mentioning: ["input_ids", "-1"]) { try run(["input_ids": ids([0, -1, 2])]) }
        expectBadInput("ref.safetensors", mentioning: ["input_ids", "\(Int64.max)"]) { try run(["input_ids": ids([0, .max, 2])]) }
        expectBadInput("ref.safetensors", mentioning: ["attention_mask", "\(1 << 62)"]) {
            try run(["input_ids": ids([0, 5, 2]), "attention_mask": ids([1, 1 << 62, 1])])
        }
        expectBadInput("ref.safetensors", mentioning: ["token_type_ids", "7"]) {
            try run(["input_ids": ids([0, 5, 2]), "token_type_ids": ids([0, 7, 0])])
        }
        _ = try run(["input_ids": ids([0, 5, 2]), "attention_mask": ids([1, 1, 0])])
        let text = model as! TextTransformer
        expectBadInput("t", mentioning: ["0×3"]) { _ = try text.hiddenStates(ids: [], mask: [], batch: 0, length: 3, source: "t") }
    }

    @Test func audioInputsAreChecked() throws {
        let model = try ModelLoader.load(hubert)
        let x = Tensor.zeros([2, 800])
        func run(_ floats: [String: Tensor], _ ints: [String: IntTensor] = [:]) throws {
            _ = try model.run(ModelInputs(floats: floats, ints: ints), source: "ref.safetensors")
        }
        var mask = [Int64](repeating: 1, count: 1600)
        mask[3] = 1 << 62
        expectBadInput("ref.safetensors", mentioning: ["attention_mask", "\(1 << 62)"]) {
            try run(["input_values": x], ["attention_mask": IntTensor(shape: [2, 800], values: mask)])
        }
        mask[3] = -1
        expectBadInput("ref.safetensors", mentioning: ["attention_mask", "-1"]) {
            try run(["input_values": x], ["attention_mask": IntTensor(shape: [2, 800], values: mask)])
        }
        let nan = Tensor.zeros([1, 800]); nan.data[17] = .nan
        expectBadInput("ref.safetensors", mentioning: ["input_values", "nan"]) { try run(["input_values": nan]) }
        expectBadInput("ref.safetensors", mentioning: ["input_values", "[0, 800]"]) { try run(["input_values": Tensor.zeros([0, 800])]) }
        var half = [Int64](repeating: 1, count: 1600)
        for i in 1200..<1600 { half[i] = 0 }
        try run(["input_values": x], ["attention_mask": IntTensor(shape: [2, 800], values: half)])
    }

    @Test func imageInputsAreChecked() throws {
        func run(_ path: String, _ name: String, _ t: Tensor) throws {
            _ = try ModelLoader.load(path).run(ModelInputs(floats: [name: t]), source: "ref.safetensors")
        }
        expectBadInput("ref.safetensors", mentioning: ["pixels", "[1, 4, 64, 64]"]) { try run(efficientNet, "pixels", Tensor.zeros([1, 4, 64, 64])) }
        expectBadInput("ref.safetensors", mentioning: ["pixels", "[0, 3, 64, 64]"]) { try run(efficientNet, "pixels", Tensor.zeros([0, 3, 64, 64])) }
        expectBadInput("ref.safetensors", mentioning: ["pixels", "[1, 3, 1, 5000]"]) { try run(mobileViT, "pixels", Tensor.zeros([1, 3, 1, 5000])) }
        let inf = Tensor.zeros([1, 1, 64, 64]); inf.data[100] = .infinity
        expectBadInput("ref.safetensors", mentioning: ["pixels", "inf"]) { try run(miniXception, "pixels", inf) }
        expectBadInput("ref.safetensors", mentioning: ["pixels", "[1, 1, 4, 64]"]) { try run(miniXception, "pixels", Tensor.zeros([1, 1, 4, 64])) }
        expectBadInput("ref.safetensors", mentioning: ["pnet", "[0, 3, 20, 20]"]) { try run(mtcnn, "pnet", Tensor.zeros([0, 3, 20, 20])) }
        expectBadInput("ref.safetensors", mentioning: ["rnet", "[1, 3, 23, 24]"]) { try run(mtcnn, "rnet", Tensor.zeros([1, 3, 23, 24])) }
        expectBadInput("ref.safetensors", mentioning: ["features"]) { try run(head, "features", Tensor.zeros([2, 31])) }
        let nan = Tensor.zeros([1, 32]); nan.data[0] = .nan
        expectBadInput("ref.safetensors", mentioning: ["features", "nan"]) { try run(head, "features", nan) }
    }

    /// Box corners become pixels without trapping; boxes that are not finite are flagged.
    @Test func faceBoxesBecomePixelsSafely() {
        #expect(FaceDetection.pixel(12.9) == 12 && FaceDetection.pixel(-3.7) == -3)
        #expect(FaceDetection.pixel(.nan) == 0)
        #expect(FaceDetection.pixel(.infinity) == 1 << 24 && FaceDetection.pixel(-1e30) == -(1 << 24))
        let box = FaceDetection(x1: 1, y1: 2, x2: .nan, y2: 4, probability: 0.9, landmarks: [])
        #expect(!box.isFinite)
        #expect(FaceDetection(x1: 1, y1: 2, x2: 3, y2: 4, probability: 0.9, landmarks: [(1, 2)]).isFinite)
    }
}
