import Foundation
import Testing
import AffectKernels
import AffectModels
import AffectTestSupport

private let kerasFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/keras").path

/// EmotiEffLib's engagement head (Tests/Fixtures/keras, Tools/make_keras_fixtures.py): Keras's predictions on
/// EmotiEffLib's windows of EfficientNet-B0 features of a real clip, and the window rules.
@Suite struct EngagementTests {
    func floats(_ f: SafeTensorsFile, _ name: String) throws -> Tensor {
        let info = try #require(f.info(name))
        return try f.tensor(info)
    }

    /// Random weights (feature width 1280, hidden 16) on 24 frames of EfficientNet-B0 features of
    /// Tests/Fixtures/media/talking.mp4, windows of 8: within 1e-5 of tf_keras.
    @Test func matchesKerasOnRealFeatures() throws {
        let model = try EngagementModel(path: "\(kerasFixtures)/engagement_b0_h5.safetensors")
        #expect(model.featureWidth == 1280 && model.hiddenWidth == 16 && model.labels == ["Distracted", "Engaged"])
        let ref = try SafeTensorsFile(path: "\(kerasFixtures)/engagement_b0.ref.safetensors")
        let x = try floats(ref, "input.features"), want = try floats(ref, "output.scores")
        let got = try model.classifyEngagement(x, slidingWindowWidth: 8)
        #expect(got.scores.shape == want.shape)
        #expect(got.scores.shape == [x.shape[0] - 8, 2])
        var worst: Float = 0
        for i in 0..<want.count { worst = max(worst, abs(got.scores.data[i] - want.data[i])) }
        #expect(worst <= 1e-5, "max abs error \(worst)")
        #expect(got.labels.count == want.shape[0])
    }

    /// The forward pass written out naively in Double from EmotiEffLib's model (concatenate [std | frame], Dense 1,
    /// softmax over the window, weighted sum, Dense ReLU, Dense softmax) agrees with the model.
    @Test func matchesANaiveForwardPass() throws {
        let path = "\(kerasFixtures)/engagement_h5.safetensors"
        let model = try EngagementModel(path: path)
        let file = try SafeTensorsFile(path: path)
        let (k, kb) = (try floats(file, "e/kernel"), try floats(file, "e/bias"))
        let (h, hb) = (try floats(file, "hidden_FC/kernel"), try floats(file, "hidden_FC/bias"))
        let (o, ob) = (try floats(file, "dense/kernel"), try floats(file, "dense/bias"))
        let d = model.featureWidth, hw = model.hiddenWidth, frames = 11, width = 5
        let x = Tensor(shape: [frames, d], values: (0..<(frames * d)).map { Float(sin(Double($0) * 0.7)) * 2 })
        let got = try model.classifyEngagement(x, slidingWindowWidth: width)
        #expect(got.scores.shape == [frames - width, 2])
        for w in 0..<(frames - width) {
            var mean = [Double](repeating: 0, count: d), sd = [Double](repeating: 0, count: d)
            for i in 0..<width { for j in 0..<d { mean[j] += Double(x.data[(w + i) * d + j]) / Double(width) } }
            for i in 0..<width { for j in 0..<d { sd[j] += pow(Double(x.data[(w + i) * d + j]) - mean[j], 2) / Double(width) } }
            sd = sd.map { $0.squareRoot() }
            let rows = (0..<width).map { i in sd + (0..<d).map { Double(x.data[(w + i) * d + $0]) } }
            let e = rows.map { r in (0..<(2 * d)).reduce(Double(kb.data[0])) { $0 + r[$1] * Double(k.data[$1]) } }
            let m = e.max()!, z = e.reduce(0) { $0 + exp($1 - m) }
            let alpha = e.map { exp($0 - m) / z }
            let c = (0..<(2 * d)).map { j in (0..<width).reduce(0.0) { $0 + alpha[$1] * rows[$1][j] } }
            let hidden = (0..<hw).map { u in max(0, (0..<(2 * d)).reduce(Double(hb.data[u])) { $0 + c[$1] * Double(h.data[$1 * hw + u]) }) }
            let logits = (0..<2).map { v in (0..<hw).reduce(Double(ob.data[v])) { $0 + hidden[$1] * Double(o.data[$1 * 2 + v]) } }
            let lm = logits.max()!, lz = logits.reduce(0) { $0 + exp($1 - lm) }
            for v in 0..<2 {
                #expect(abs(Double(got.scores.data[w * 2 + v]) - exp(logits[v] - lm) / lz) < 1e-6, "window \(w) class \(v)")
            }
        }
    }

    /// EmotiEffLib's windows: starts 0 … F − W − 1; fewer than W + 1 frames is an error naming the source.
    @Test func windowRules() throws {
        let model = try EngagementModel(path: "\(kerasFixtures)/engagement_h5.safetensors")
        #expect(model.window == 128)
        let d = model.featureWidth
        let x = Tensor(shape: [6, d], values: (0..<(6 * d)).map { Float($0 % 5) * 0.1 })
        #expect(try model.classifyEngagement(x, slidingWindowWidth: 5).scores.shape == [1, 2])
        for width in [6, 7, 128] {
            #expect {
                try model.classifyEngagement(x, slidingWindowWidth: width, source: "clip.features")
            } throws: { e in
                (e as? AffectError)?.description.contains("clip.features: not enough frames") == true
            }
        }
        #expect(throws: AffectError.self) { try model.classifyEngagement(x, slidingWindowWidth: 0) }
        let wrong = Tensor(shape: [20, d + 1], values: [Float](repeating: 0, count: 20 * (d + 1)))
        #expect(throws: AffectError.self) { try model.classifyEngagement(wrong, slidingWindowWidth: 5) }
        var bad = (0..<(20 * d)).map { Float($0 % 3) }
        bad[17] = .nan
        #expect(throws: AffectError.self) { try model.classifyEngagement(Tensor(shape: [20, d], values: bad), slidingWindowWidth: 5) }
        // Through `affect run`'s interface: the file's window (128) needs 129 frames.
        #expect(throws: AffectError.self) { try model.run(ModelInputs(floats: ["features": x]), source: "in.safetensors") }
        let long = Tensor(shape: [130, d], values: (0..<(130 * d)).map { Float($0 % 11) * 0.05 })
        #expect(try model.run(ModelInputs(floats: ["features": long]), source: "in.safetensors")["scores"]?.shape == [2, 2])
    }

    /// Load-time validation: shapes against each other and the config, the config's numbers in range.
    @Test func malformedWeightFilesAreRefused() throws {
        let good = try SafeTensorsFile(path: "\(kerasFixtures)/engagement_h5.safetensors")
        let dir = Scratch.path("engagement-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func variant(_ name: String, config: String? = nil, reshape: (String, [Int])? = nil) throws -> String {
            var w = SafeTensorsWriter(metadata: good.metadata)
            if let config { w.metadata["affect.config"] = config }
            for t in good.tensors {
                let v = try good.tensor(t)
                let values = Array(UnsafeBufferPointer(start: v.data, count: v.count))
                if let (n, shape) = reshape, n == t.name {
                    w.add(t.name, shape: shape, floats: Array(values.prefix(shape.reduce(1, *))))
                } else {
                    w.add(t.name, shape: t.shape, floats: values)
                }
            }
            let path = "\(dir)/\(name).safetensors"
            try w.write(to: path)
            return path
        }
        let cases: [(String, String)] = [
            (try variant("short", reshape: ("hidden_FC/kernel", [15, 4])), "hidden_FC/kernel"),
            (try variant("classes", reshape: ("dense/kernel", [4, 1])), "classes"),
            (try variant("window", config: #"{"attention": "e", "hidden": "hidden_FC", "output": "dense", "feature_width": 8, "hidden_width": 4, "window": 0}"#), "window"),
            (try variant("width", config: #"{"attention": "e", "hidden": "hidden_FC", "output": "dense", "feature_width": 9, "hidden_width": 4, "window": 128}"#), "e/kernel"),
            (try variant("names", config: #"{"attention": "x", "hidden": "hidden_FC", "output": "dense", "feature_width": 8, "hidden_width": 4}"#), "x/kernel"),
        ]
        for (path, word) in cases {
            #expect {
                try EngagementModel(path: path)
            } throws: { e in
                guard let m = (e as? AffectError)?.description else { return false }
                return m.hasPrefix(path) && m.contains(word)
            }
        }
    }
}
