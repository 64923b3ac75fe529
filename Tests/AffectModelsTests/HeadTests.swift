import Foundation
import Testing
import AffectKernels
import AffectModels
import AffectTestSupport

private let fusionFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/fusion").path

/// Heads trained briefly in PyTorch, tf_keras and scikit-learn, converted by Tools/converters/head.py
/// (fixtures from `Tools/make_reference.py fusion_fixtures Tests/Fixtures/fusion`).
@Suite struct HeadTests {
    static let heads = ["head_torch", "head_torch_au", "head_keras", "head_keras_ah", "head_sklearn_binary", "head_sklearn_multi"]

    @Test(arguments: heads)
    func matchesFramework(_ name: String) throws {
        let model = try ModelLoader.load("\(fusionFixtures)/\(name).safetensors")
        #expect(model is MLPHead)
        let ref = try ReferenceFile(path: "\(fusionFixtures)/\(name).b5.ref.safetensors")
        let (compared, missing) = try Verification.verify(model, ref)
        #expect(missing.isEmpty)
        #expect(compared.count == 1)
        for c in compared {
            #expect(c.shapesMatch, "\(name): \(c.shape) vs \(c.referenceShape)")
            #expect(c.maxAbsError <= 1e-5, "\(name): max abs error \(c.maxAbsError)")
        }
    }

    @Test func shapesAndActivations() throws {
        let keras = try MLPHead(path: "\(fusionFixtures)/head_keras.safetensors")
        #expect(keras.inputWidth == 32 && keras.outputWidth == 8 && keras.output == "softmax")
        let ah = try MLPHead(path: "\(fusionFixtures)/head_keras_ah.safetensors")
        #expect(ah.outputWidth == 1 && ah.output == "sigmoid")
        let au = try MLPHead(path: "\(fusionFixtures)/head_torch_au.safetensors")
        #expect(au.outputWidth == 12 && au.output == "sigmoid")
        let lr = try MLPHead(path: "\(fusionFixtures)/head_sklearn_binary.safetensors")
        #expect(lr.outputWidth == 2 && lr.labels == ["0", "1"])
        // Softmax rows sum to 1; sklearn_binary rows too.
        let x = Tensor(shape: [3, 32], values: (0..<96).map { Float($0 % 7) * 0.3 - 0.9 })
        for h in [keras, lr] {
            let p = try h.predict(x)
            for r in 0..<3 { #expect(abs((0..<p.shape[1]).reduce(Float(0)) { $0 + p.data[r * p.shape[1] + $1] } - 1) < 1e-5) }
        }
    }

    @Test func wrongWidthIsAClearError() throws {
        let head = try MLPHead(path: "\(fusionFixtures)/head_keras.safetensors")
        let x = Tensor(shape: [2, 31], values: [Float](repeating: 0.1, count: 62))
        #expect {
            try head.predict(x, source: "face.features")
        } throws: { e in
            guard let e = e as? AffectError, case .badInput(let m) = e else { return false }
            return m.contains("face.features") && m.contains("width 32") && m.contains("2×31") && m.contains("head_keras.safetensors")
        }
        // Through the InferenceModel interface too.
        #expect(throws: AffectError.self) { try head.run(ModelInputs(floats: ["features": x]), source: "in.safetensors") }
        #expect(throws: AffectError.self) { try head.run(ModelInputs(), source: "in.safetensors") }
    }

    @Test func otherArchitecturesAreRejected() throws {
        let models = URL(fileURLWithPath: fusionFixtures).deletingLastPathComponent().appendingPathComponent("models/efficientnet_tiny.safetensors").path
        #expect(throws: AffectError.self) { try MLPHead(path: models) }
    }

    @Test func malformedConfigIsAClearError() throws {
        // A head file whose config names a tensor that is not there.
        let path = Scratch.path("head-bad.safetensors")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var w = SafeTensorsWriter(metadata: [
            "affect.format": "1", "affect.arch": "head",
            "affect.config": #"{"input_width": 4, "output": "softmax", "layers": [{"weight": "w", "bias": "b", "layout": "out_in"}]}"#,
        ])
        w.add("w", shape: [3, 5], floats: [Float](repeating: 0, count: 15))
        try w.write(to: path)
        #expect {
            try MLPHead(path: path)
        } throws: { e in "\(e)".contains("`w` has shape [3, 5]") }
        var w2 = SafeTensorsWriter(metadata: ["affect.format": "1", "affect.arch": "head",
                                              "affect.config": #"{"input_width": 4, "output": "magic", "layers": []}"#])
        w2.add("w", shape: [1], floats: [0])
        try w2.write(to: path)
        #expect(throws: AffectError.self) { try MLPHead(path: path) }
    }
}
